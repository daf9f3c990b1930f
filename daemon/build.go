package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/daemon/config"
	"github.com/roamd/roamd/daemon/hosts"
	"github.com/roamd/roamd/daemon/journal"
	"github.com/roamd/roamd/detect/capture"
	"github.com/roamd/roamd/detect/frames"
	"github.com/roamd/roamd/detect/ports"
	"github.com/roamd/roamd/detect/probe"
	"github.com/roamd/roamd/routing/bgp"
	"github.com/roamd/roamd/routing/fib"
	"github.com/roamd/roamd/routing/notify"
	"github.com/vishvananda/netns"
)

// Build makes a daemon with the real kernel, BGP, capture and port watcher
// from cfg, in the current network namespace. reg receives the metrics (nil:
// none). Nothing is programmed or announced until Run.
func Build(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, version string) (*Daemon, error) {
	kern, err := fib.New(fibConfig(cfg), netns.None(), nil, log.With("part", "fib"))
	if err != nil {
		return nil, err
	}

	jr, entries, skipped, err := journal.Open(cfg.State.Journal)
	if err != nil {
		return nil, err
	}
	if skipped > 0 {
		log.Warn("journal had malformed lines; skipped", "lines", skipped)
	}
	remembered := map[hosts.Key]Remembered{}
	for _, e := range entries {
		remembered[hosts.Key{Tenant: e.Tenant, Addr: e.Addr}] = Remembered{Seq: e.Seq, MAC: e.MAC}
	}
	// A journal with entries means roamd ran here since boot: peers may be
	// holding our routes under graceful restart.
	restarting := len(entries) > 0

	routers := map[string]Router{}
	for _, t := range cfg.Tenants {
		s, err := bgp.New(bgpConfig(cfg, t, restarting, log.With("part", "bgp", "tenant", t.Name)))
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", t.Name, err)
		}
		routers[t.Name] = &speaker{s: s, tenantID: t.ID}
	}

	capEvents := make(chan capture.Event, 1024)
	capt := capture.NewManager(capEvents, capture.Options{
		RatePerSecond: cfg.Safety.FramesPerSecond,
		IgnoreMAC:     net.HardwareAddr(cfg.GatewayMAC),
		Logger:        log.With("part", "capture"),
	})
	portEvents := make(chan ports.Event, 1024)
	var d *Daemon
	watcher := ports.NewWatcher(func(name string) bool { return d.current.Load().TenantForPort(name) != nil },
		portEvents, log.With("part", "ports"))

	m := NewMetrics(reg)
	if reg != nil {
		registerCaptureMetrics(reg, capt)
	}
	o := Options{
		Config: cfg, Logger: log, Kernel: fibKernel{kern}, Routers: routers, Capture: capt,
		Journal: jr, Restored: remembered, Metrics: m, Version: version,
	}
	o.Prober = ownerProber{probe.New(probe.Options{
		GatewayMAC: net.HardwareAddr(cfg.GatewayMAC),
		Source:     func(port string, addr netip.Addr) netip.Addr { return probeSource(d.current.Load(), port, addr) },
		Logger:     log.With("part", "probe"),
	})}
	var nc *notify.Conn
	if cfg.Forwarding.NotifyPort != 0 {
		nc, err = notify.Listen(cfg.RouterID, cfg.Forwarding.NotifyPort, []byte(cfg.Forwarding.NotifyKey), log.With("part", "notify"))
		if err != nil {
			return nil, err
		}
		o.Notifier = notifier{nc}
	}
	d, err = New(o)
	if err != nil {
		return nil, err
	}
	d.tasks = append(d.tasks,
		watcher.Run,
		func(ctx context.Context) error { return d.readFrames(ctx, capEvents) },
		func(ctx context.Context) error { return d.readPorts(ctx, portEvents) },
	)
	d.resync = watcher.Resync
	d.closers = append(d.closers, capt.Close, jr.Close)
	if nc != nil {
		d.tasks = append(d.tasks, func(ctx context.Context) error {
			return nc.Run(ctx, func(msg notify.Message) { d.notified(ctx, msg) })
		})
	}
	return d, nil
}

func fibConfig(cfg *config.Config) fib.Config {
	c := fib.Config{
		Protocol:      cfg.Kernel.RouteProtocol,
		GatewayMAC:    net.HardwareAddr(cfg.GatewayMAC),
		RouterID:      cfg.RouterID,
		RulePriority:  cfg.Kernel.RulePriority,
		TxQueueLen:    cfg.Kernel.TxQueueLen,
		ForwardDevice: cfg.Forwarding.Device,
		ForwardPort:   cfg.Forwarding.Port,
		GuardUDPPorts: []int{cfg.Forwarding.Port},
	}
	if cfg.Forwarding.NotifyPort != 0 {
		c.GuardUDPPorts = append(c.GuardUDPPorts, cfg.Forwarding.NotifyPort)
	}
	for _, t := range cfg.Tenants {
		c.Tenants = append(c.Tenants, fib.TenantConfig{Name: t.Name, ID: t.ID, Table: t.Table, Gateways: t.Gateways, Uplinks: t.Uplinks})
	}
	return c
}

func bgpConfig(cfg *config.Config, t config.Tenant, restarting bool, log *slog.Logger) bgp.Config {
	community, _ := config.ParseCommunity(cfg.BGP.Community)
	c := bgp.Config{
		RouterID:        cfg.RouterID,
		ASN:             cfg.ASN,
		ListenPort:      cfg.BGP.ListenPort,
		TenantID:        t.ID,
		Community:       community,
		Prefixes:        t.Prefixes,
		IPv6NextHop:     t.IPv6NextHop,
		GracefulRestart: cfg.BGP.GracefulRestart,
		Restarting:      restarting,
		Logger:          log,
	}
	c.Peers = bgpPeers(t.Peers)
	return c
}

func bgpPeers(peers []config.Peer) []bgp.PeerConfig {
	var out []bgp.PeerConfig
	for _, p := range peers {
		pc := bgp.PeerConfig{
			Address: p.Address, ASN: p.ASN, LocalAddress: p.LocalAddress, Port: p.Port, Password: p.Password,
			HoldTime: p.HoldTime, Keepalive: p.Keepalive, ConnectRetry: p.ConnectRetry,
			MaxPrefixes: p.MaxPrefixes, BFD: p.BFD,
		}
		for _, f := range p.Families {
			if fam, err := bgp.ParseFamily(f); err == nil {
				pc.Families = append(pc.Families, fam)
			}
		}
		out = append(out, pc)
	}
	return out
}

// readFrames turns captured frames into table inputs.
func (d *Daemon) readFrames(ctx context.Context, in <-chan capture.Event) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-in:
			d.answerNDP(ev)
			f, ok := frameInput(ev)
			if !ok {
				continue
			}
			select {
			case d.frames <- frameIn{frame: f, read: ev.Time}:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// frameInput converts an observation into the claim it makes, if any.
// Probes (ARP from 0.0.0.0, DAD) claim nothing yet: the address is only
// tentative. IPv6 link-local addresses are never routed.
func frameInput(ev capture.Event) (hosts.Frame, bool) {
	o := ev.Obs
	f := hosts.Frame{Time: ev.Time, Port: ev.Port, MAC: o.MAC, Addr: o.Addr, EthSrc: o.SrcMAC}
	switch o.Kind {
	case frames.KindRARP:
		f.Source, f.Addr = hosts.SourceRARP, netip.Addr{}
		return f, true
	case frames.KindGratuitousARP:
		f.Source = hosts.SourceGARP
	case frames.KindARPRequest:
		f.Source = hosts.SourceARPRequest
	case frames.KindARPReply:
		f.Source = hosts.SourceARPReply
	case frames.KindNeighborAdvert:
		f.Source = hosts.SourceNA
	case frames.KindNeighborSolicit:
		f.Source = hosts.SourceNS
	case frames.KindRouterSolicit:
		f.Source = hosts.SourceRS
	case frames.KindTraffic:
		f.Source = hosts.SourceTraffic
	default:
		return f, false
	}
	if !f.Addr.IsValid() || f.Addr.IsLinkLocalUnicast() {
		return f, false
	}
	return f, true
}

// readPorts turns port watcher events into engine port events.
func (d *Daemon) readPorts(ctx context.Context, in <-chan ports.Event) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-in:
			var pe PortEvent
			switch ev.Kind {
			case ports.Added, ports.Changed:
				pe = PortEvent{Added: true, Name: ev.Name, Index: ev.Index}
			case ports.Removed:
				pe = PortEvent{Name: ev.Name, Index: ev.Index}
			default:
				continue
			}
			select {
			case d.ports <- pe:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// notified turns a verified move notification into a table input.
func (d *Daemon) notified(ctx context.Context, m notify.Message) {
	tenant, ok := d.tenantOf[m.TenantID]
	if !ok {
		d.log.Warn("move notification for an unknown tenant id", "tenantID", m.TenantID, "from", m.Origin)
		return
	}
	if m.Kind == notify.Ack {
		d.acks.deliver(ackKey{tenant: tenant, addr: m.Addr, seq: m.Seq, from: m.Origin})
		return
	}
	in := hosts.Notified{Time: time.Now(), Key: hosts.Key{Tenant: tenant, Addr: m.Addr},
		Claim: hosts.Claim{Origin: m.Origin, Seq: m.Seq, Sticky: m.Sticky, MAC: m.MAC}}
	select {
	case d.inputs <- in:
	case <-ctx.Done():
	}
}

// fibKernel adapts routing/fib to Kernel.
type fibKernel struct{ f *fib.FIB }

func (k fibKernel) Setup() error                          { return k.f.Setup() }
func (k fibKernel) PreparePort(port, tenant string) error { return k.f.PreparePort(port, tenant) }
func (k fibKernel) InstallHost(t string, a netip.Addr, port string, mac net.HardwareAddr) error {
	return k.f.InstallHost(t, a, port, mac)
}
func (k fibKernel) ForwardHost(t string, a, to netip.Addr) error { return k.f.ForwardHost(t, a, to) }
func (k fibKernel) RemoveHost(t string, a netip.Addr) error      { return k.f.RemoveHost(t, a) }
func (k fibKernel) StageNeighbors(port string, mac net.HardwareAddr, addrs []netip.Addr) error {
	return k.f.StageNeighbors(port, mac, addrs)
}

func (k fibKernel) Routes() ([]KernelRoute, error) {
	rs, err := k.f.Routes()
	out := make([]KernelRoute, len(rs))
	for i, r := range rs {
		out[i] = KernelRoute(r)
	}
	return out, err
}

func (k fibKernel) Sync(want []KernelRoute) error {
	rs := make([]fib.Route, len(want))
	for i, r := range want {
		rs[i] = fib.Route(r)
	}
	return k.f.Sync(rs)
}

// speaker adapts routing/bgp to Router.
type speaker struct {
	s        *bgp.Speaker
	tenantID uint16
	claims   chan ClaimSet
}

func (r *speaker) Connect(ctx context.Context) error { return r.s.Connect(ctx) }
func (r *speaker) Ready() error                      { return r.s.Ready() }
func (r *speaker) Synced() <-chan struct{}           { return r.s.Synced() }
func (r *speaker) Stop(ctx context.Context) error    { return r.s.Stop(ctx) }
func (r *speaker) Detach(ctx context.Context) error  { return r.s.Detach(ctx) }
func (r *speaker) Withdraw(p netip.Prefix) error     { return r.s.Withdraw(p) }
func (r *speaker) SetPeers(ctx context.Context, peers []config.Peer) error {
	return r.s.SetPeers(ctx, bgpPeers(peers))
}
func (r *speaker) Announce(p Path) error {
	return r.s.Announce(bgp.Route{Prefix: p.Prefix, Seq: p.Seq, Sticky: p.Sticky, MAC: p.MAC})
}

func (r *speaker) Announced() []Path {
	var out []Path
	for _, x := range r.s.Announced() {
		out = append(out, Path{Prefix: x.Prefix, Seq: x.Seq, Sticky: x.Sticky, MAC: x.MAC})
	}
	return out
}

// Claims converts the speaker's claim sets; it must be called once.
func (r *speaker) Claims() <-chan ClaimSet {
	if r.claims == nil {
		r.claims = make(chan ClaimSet, 256)
		go func() {
			for set := range r.s.Claims() {
				r.claims <- r.convert(set)
			}
			close(r.claims)
		}()
	}
	return r.claims
}

func (r *speaker) AllClaims() ([]ClaimSet, error) {
	sets, err := r.s.AllClaims()
	out := make([]ClaimSet, 0, len(sets))
	for _, s := range sets {
		out = append(out, r.convert(s))
	}
	return out, err
}

func (r *speaker) Redeliver(prefixes []netip.Prefix) { r.s.Redeliver(prefixes) }

// convert keeps the claims of this tenant: a path tagged with another
// tenant's id (a leaking fabric) is not a claim here.
func (r *speaker) convert(s bgp.ClaimSet) ClaimSet {
	out := ClaimSet{Prefix: s.Prefix}
	for _, c := range s.Claims {
		if c.Origin.IsValid() && c.TenantID != r.tenantID {
			continue
		}
		out.Claims = append(out.Claims, hosts.Claim{Origin: c.Origin, Seq: c.Seq, Sticky: c.Sticky, MAC: c.MAC})
	}
	return out
}

func (r *speaker) Peers() []api.Peer {
	var out []api.Peer
	for _, p := range r.s.Peers() {
		v := api.Peer{Address: p.Address.String(), ASN: p.ASN, State: p.State, Since: p.Since,
			Received: p.Received, Accepted: p.Accepted, Rejected: p.Rejected, Advertised: p.Advertised,
			AddPathRx: p.AddPathRx, LastError: p.LastError}
		for _, f := range p.Families {
			v.Families = append(v.Families, f.String())
		}
		out = append(out, v)
	}
	return out
}

// ownerProber adapts detect/probe to Prober.
type ownerProber struct{ p *probe.Prober }

func (o ownerProber) Probe(ctx context.Context, a hosts.ProbeOwner) bool {
	return o.p.Probe(ctx, probe.Request{Addr: a.Key.Addr, MAC: a.MAC, Port: a.Port})
}

// probeSource is the address a local probe out of port is sent from: the
// port's tenant gateway in addr's family (link-local first for IPv6).
func probeSource(cfg *config.Config, port string, addr netip.Addr) netip.Addr {
	t := cfg.TenantForPort(port)
	switch {
	case t == nil:
		return netip.Addr{}
	case addr.Is4():
		return gateway4(t)
	case !addr.Is6():
		return netip.Addr{}
	}
	if ll := linkLocalGateway(t); ll.IsValid() {
		return ll
	}
	return globalGateway6(t)
}

// notifier adapts routing/notify to Notifier.
type notifier struct{ c *notify.Conn }

func (n notifier) Notify(to netip.Addr, tenantID uint16, c hosts.Claim, addr netip.Addr) error {
	return n.c.Send(to, notify.Message{Kind: notify.Claim, TenantID: tenantID, Seq: c.Seq, Sticky: c.Sticky, Addr: addr, MAC: c.MAC})
}

func (n notifier) Ack(to netip.Addr, tenantID uint16, seq uint32, addr netip.Addr, mac net.HardwareAddr) error {
	return n.c.Send(to, notify.Message{Kind: notify.Ack, TenantID: tenantID, Seq: seq, Addr: addr, MAC: mac})
}

// registerCaptureMetrics exports the capture's frame counters (all ports).
func registerCaptureMetrics(reg prometheus.Registerer, c *capture.Manager) {
	total := func(f func(capture.Stats) uint64) func() float64 {
		return func() float64 { return float64(f(c.Stats()[capture.AllPorts])) }
	}
	for _, m := range []struct {
		name, help string
		value      func(capture.Stats) uint64
	}{
		{"frames_total", "Frames read from VM ports.", func(s capture.Stats) uint64 { return s.Frames }},
		{"frames_malformed_total", "Frames from VM ports that did not decode.", func(s capture.Stats) uint64 { return s.Malformed }},
		{"frames_rate_limited_total", "Frames dropped by the per-port rate limit.", func(s capture.Stats) uint64 { return s.RateLimited }},
		{"frames_dropped_total", "Frames dropped because roamd fell behind.", func(s capture.Stats) uint64 { return s.Dropped }},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "roamd", Subsystem: "capture", Name: m.name, Help: m.help,
		}, total(m.value)))
	}
}
