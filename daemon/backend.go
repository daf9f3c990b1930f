package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/daemon/hosts"
)

var _ api.Backend = (*Daemon)(nil)

// Status implements api.Backend.
func (d *Daemon) Status(ctx context.Context) (api.Status, error) {
	cfg := d.current.Load()
	s := api.Status{Version: d.version, RouterID: cfg.RouterID.String(), ASN: cfg.ASN, Hosts: map[string]int{}}
	err := d.do(ctx, func() {
		s.Started = d.started // set by Run before the engine starts
		for st, n := range d.table.Counts() {
			s.Hosts[st.String()] = n
		}
		for _, p := range d.table.Ports() {
			s.Ports = append(s.Ports, api.Port{Name: p.Name, Tenant: p.Tenant})
		}
	})
	return s, err
}

// Hosts implements api.Backend.
func (d *Daemon) Hosts(ctx context.Context) ([]api.Host, error) {
	out := []api.Host{}
	err := d.do(ctx, func() {
		for _, h := range d.table.Hosts() {
			out = append(out, hostView(h))
		}
	})
	return out, err
}

// Host implements api.Backend.
func (d *Daemon) Host(ctx context.Context, tenant, address string) (api.HostDetail, error) {
	addr, err := netip.ParseAddr(address)
	if err != nil {
		return api.HostDetail{}, fmt.Errorf("%w: address %q: %v", api.ErrBadRequest, address, err)
	}
	if tenant == "" || tenant == "-" {
		tenant = d.current.Load().Tenants[0].Name
	}
	key := hosts.Key{Tenant: tenant, Addr: addr}
	var out api.HostDetail
	found := false
	err = d.do(ctx, func() {
		h, ok := d.table.Host(key)
		claims := d.table.RemoteClaimsOf(key)
		if !ok && len(claims) == 0 {
			return
		}
		found = true
		if ok {
			out.Host = hostView(h)
		} else {
			out.Host = api.Host{Tenant: tenant, Address: addr.String(), State: "remote"}
		}
		out.History = []api.Move{}
		for _, m := range h.History {
			out.History = append(out.History, historyView(key, m, d.cfg.RouterID)) // on the engine goroutine
		}
		out.RemoteClaims = []api.Claim{}
		for _, c := range claims {
			out.RemoteClaims = append(out.RemoteClaims, api.Claim{Origin: addrString(c.Origin), Sequence: c.Seq, Sticky: c.Sticky, MAC: macString(c.MAC)})
		}
	})
	if err == nil && !found {
		err = fmt.Errorf("%w: no host %s in tenant %q", api.ErrNotFound, addr, tenant)
	}
	return out, err
}

// Peers implements api.Backend.
func (d *Daemon) Peers(context.Context) ([]api.Peer, error) {
	out := []api.Peer{}
	for _, t := range d.current.Load().Tenants {
		for _, p := range d.routers[t.Name].Peers() {
			p.Tenant = t.Name
			out = append(out, p)
		}
	}
	return out, nil
}

// Moves implements api.Backend.
func (d *Daemon) Moves(ctx context.Context) ([]api.Move, error) {
	var out []api.Move
	err := d.do(ctx, func() { out = d.moves.list() })
	if out == nil {
		out = []api.Move{}
	}
	return out, err
}

// Hint implements api.Backend.
func (d *Daemon) Hint(ctx context.Context, h api.Hint) (api.HintResult, error) {
	in, err := d.parseHint(h)
	if err != nil {
		return api.HintResult{}, err
	}
	res := api.HintResult{Hosts: []api.Host{}}
	var waits []pendingAck
	start := time.Now()
	err = d.do(ctx, func() {
		now := time.Now()
		in.Time = now
		if in.Tenant == "" {
			in.Tenant = d.defaultTenant(in.Port)
		}
		acts := d.table.Apply(in)
		for _, a := range acts {
			switch a := a.(type) {
			case hosts.Refused:
				res.Refused = append(res.Refused, refusedText(a))
			case hosts.NotifyOld:
				if d.notify != nil {
					k := ackKey{tenant: a.Key.Tenant, addr: a.Key.Addr, seq: a.Seq, from: a.To}
					waits = append(waits, pendingAck{key: k, ch: d.acks.expect(k)})
				}
			}
		}
		d.execute(acts, now)
		addrs := in.Addrs
		if len(addrs) == 0 {
			addrs = d.table.Binding(in.Tenant, in.MAC)
		}
		for _, a := range addrs {
			if hv, ok := d.table.Host(hosts.Key{Tenant: in.Tenant, Addr: a}); ok {
				res.Hosts = append(res.Hosts, hostView(hv))
			}
		}
	})
	if err == nil && len(res.Hosts) == 0 && len(res.Refused) > 0 {
		err = fmt.Errorf("%w: %s", api.ErrBadRequest, res.Refused[0])
	}
	if err == nil {
		res.OldSites = d.awaitAcks(ctx, waits, start)
	}
	return res, err
}

type pendingAck struct {
	key ackKey
	ch  <-chan struct{}
}

// ackWait bounds how long a switch waits for the old sites to confirm that
// they forward; a lost datagram costs this much, not the switch.
const ackWait = 100 * time.Millisecond

// awaitAcks waits for the old sites' acknowledgements of a switch.
func (d *Daemon) awaitAcks(ctx context.Context, waits []pendingAck, start time.Time) []api.OldSite {
	out := []api.OldSite{}
	deadline := time.NewTimer(ackWait)
	defer deadline.Stop()
	for _, w := range waits {
		o := api.OldSite{Address: w.key.addr.String(), Site: w.key.from.String()}
		select {
		case <-w.ch:
			o.Forwarding = true
			o.ConfirmedUS = time.Since(start).Microseconds()
		case <-deadline.C:
			d.acks.forget(w.key)
		case <-ctx.Done():
			d.acks.forget(w.key)
		}
		out = append(out, o)
	}
	return out
}

func (d *Daemon) parseHint(h api.Hint) (hosts.Hint, error) {
	var in hosts.Hint
	switch h.Kind {
	case "arrive":
		in.Kind = hosts.HintArrive
	case "switch":
		in.Kind = hosts.HintSwitch
	case "depart":
		in.Kind = hosts.HintDepart
	default:
		return in, fmt.Errorf("%w: kind %q: want arrive, switch or depart", api.ErrBadRequest, h.Kind)
	}
	in.Tenant, in.Port = h.Tenant, h.Port
	if in.Tenant != "" && d.current.Load().Tenant(in.Tenant) == nil {
		return in, fmt.Errorf("%w: tenant %q is not configured", api.ErrBadRequest, in.Tenant)
	}
	if h.MAC != "" {
		mac, err := net.ParseMAC(h.MAC)
		if err != nil || len(mac) != 6 {
			return in, fmt.Errorf("%w: mac %q is not an Ethernet MAC", api.ErrBadRequest, h.MAC)
		}
		in.MAC = mac
	}
	for _, s := range h.Addresses {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return in, fmt.Errorf("%w: address %q: %v", api.ErrBadRequest, s, err)
		}
		in.Addrs = append(in.Addrs, a)
	}
	if len(in.MAC) == 0 && len(in.Addrs) == 0 {
		return in, fmt.Errorf("%w: a hint needs a mac or addresses", api.ErrBadRequest)
	}
	if in.Kind == hosts.HintArrive && (len(in.MAC) == 0 || in.Port == "") {
		return in, fmt.Errorf("%w: arrive needs the VM's mac and the port it will use", api.ErrBadRequest)
	}
	return in, nil
}

// defaultTenant picks the tenant of a hint that names none: the port's, or
// the only one configured.
func (d *Daemon) defaultTenant(port string) string {
	if t := d.cfg.TenantForPort(port); port != "" && t != nil {
		return t.Name
	}
	return d.cfg.Tenants[0].Name
}

// Freeze implements api.Backend.
func (d *Daemon) Freeze(ctx context.Context, r api.FreezeRequest) (api.Host, error) {
	addr, err := netip.ParseAddr(r.Address)
	if err != nil {
		return api.Host{}, fmt.Errorf("%w: address %q: %v", api.ErrBadRequest, r.Address, err)
	}
	if r.Tenant == "" {
		r.Tenant = d.current.Load().Tenants[0].Name
	}
	key := hosts.Key{Tenant: r.Tenant, Addr: addr}
	var out api.Host
	found := false
	err = d.do(ctx, func() {
		now := time.Now()
		if _, ok := d.table.Host(key); !ok {
			return
		}
		found = true
		d.execute(d.table.Apply(hosts.Freeze{Time: now, Key: key, Frozen: r.Frozen}), now)
		h, _ := d.table.Host(key)
		out = hostView(h)
	})
	if err == nil && !found {
		err = fmt.Errorf("%w: no host %s in tenant %q", api.ErrNotFound, addr, r.Tenant)
	}
	return out, err
}

func hostView(h hosts.Host) api.Host {
	v := api.Host{
		Tenant: h.Tenant, Address: h.Addr.String(), MAC: macString(h.MAC), Port: h.Port,
		State: h.State.String(), Sequence: h.Seq, Pinned: h.Pinned, Frozen: h.Frozen,
		Since: h.Since, LastSeen: h.LastSeen,
	}
	if h.LastSource != 0 {
		v.LastSource = h.LastSource.String()
	}
	if h.ForwardTo.IsValid() {
		v.ForwardTo = h.ForwardTo.String()
		v.ForwardUntil = h.ForwardUntil
	}
	v.PathKept = h.PathKept
	return v
}

func historyView(key hosts.Key, m hosts.Move, self netip.Addr) api.Move {
	dir := "arrived"
	if m.From == self {
		dir = "departed"
	}
	return api.Move{Time: m.Time, Tenant: key.Tenant, Address: key.Addr.String(), Direction: dir,
		From: addrString(m.From), To: addrString(m.To), Sequence: m.Seq, Source: m.Source.String(), Port: m.Port}
}

func refusedText(r hosts.Refused) string {
	s := string(r.Reason)
	if r.Key.Addr.IsValid() {
		s = r.Key.Addr.String() + ": " + s
	}
	return s
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func macString(m net.HardwareAddr) string {
	if len(m) == 0 {
		return ""
	}
	return m.String()
}
