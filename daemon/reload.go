package daemon

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"slices"

	"github.com/roamd/roamd/daemon/config"
)

// Reload applies a new configuration without a restart where it can: BGP
// peers (only changed sessions are reset), VM port patterns (ports that now
// match are adopted, ports that no longer match are released), configured
// hosts and pins, and the duplicate-detection limits. Anything else that
// changed (router ID, ASN, gateway MAC or addresses, prefixes, tables,
// tenants, kernel and forwarding settings, sockets, timers) needs a restart:
// it is kept as it was and listed in the returned notes.
func (d *Daemon) Reload(ctx context.Context, next *config.Config) ([]string, error) {
	var notes []string
	var rerr error
	if err := d.do(ctx, func() { notes, rerr = d.reload(ctx, next) }); err != nil {
		return nil, err
	}
	if rerr == nil && d.resync != nil {
		d.resync()
	}
	return notes, rerr
}

// reload runs on the engine goroutine.
func (d *Daemon) reload(ctx context.Context, next *config.Config) ([]string, error) {
	cur := d.cfg
	var notes []string
	restart := func(what string) { notes = append(notes, what+" changed: needs a restart, keeping the running value") }

	if next.RouterID != cur.RouterID || next.ASN != cur.ASN || !slices.Equal(next.GatewayMAC, cur.GatewayMAC) {
		restart("router_id, asn or gateway_mac")
	}
	for _, pair := range []struct {
		name      string
		old, next any
	}{
		{"kernel", cur.Kernel, next.Kernel}, {"bgp", cur.BGP, next.BGP}, {"forwarding", cur.Forwarding, next.Forwarding},
		{"state", cur.State, next.State}, {"api", cur.API, next.API}, {"metrics", cur.Metrics, next.Metrics},
		{"timers", cur.Timers, next.Timers}, {"log.format", cur.Log.Format, next.Log.Format},
		{"safety.frames_per_second", cur.Safety.FramesPerSecond, next.Safety.FramesPerSecond},
	} {
		if !reflect.DeepEqual(pair.old, pair.next) {
			restart(pair.name)
		}
	}
	if len(next.Tenants) != len(cur.Tenants) {
		return nil, fmt.Errorf("tenants added or removed: restart roamd to apply")
	}

	merged := *cur
	merged.Tenants = slices.Clone(cur.Tenants)
	merged.Safety.FreezeMoves, merged.Safety.FreezeWindow = next.Safety.FreezeMoves, next.Safety.FreezeWindow
	merged.Hosts = next.Hosts
	merged.Log.Level = next.Log.Level
	for i, nt := range next.Tenants {
		ct := &merged.Tenants[i]
		if nt.Name != ct.Name || nt.ID != ct.ID || nt.Table != ct.Table {
			return nil, fmt.Errorf("tenants[%d]: name, id or table changed: restart roamd to apply", i)
		}
		if !reflect.DeepEqual(nt.Gateways, ct.Gateways) || !reflect.DeepEqual(nt.Prefixes, ct.Prefixes) ||
			!reflect.DeepEqual(nt.Uplinks, ct.Uplinks) || nt.IPv6NextHop != ct.IPv6NextHop {
			restart(fmt.Sprintf("tenants[%d] gateways, prefixes, uplinks or ipv6_next_hop", i))
		}
		if !reflect.DeepEqual(nt.Peers, ct.Peers) {
			if err := d.routers[ct.Name].SetPeers(ctx, nt.Peers); err != nil {
				return notes, fmt.Errorf("tenant %s: applying peers: %w", ct.Name, err)
			}
			notes = append(notes, fmt.Sprintf("tenant %s: peers applied", ct.Name))
			ct.Peers = nt.Peers
		}
		if !slices.Equal(nt.Ports, ct.Ports) {
			ct.Ports = nt.Ports
			notes = append(notes, fmt.Sprintf("tenant %s: port patterns %v applied", ct.Name, nt.Ports))
		}
	}

	d.table.SetFreeze(merged.Safety.FreezeMoves, merged.Safety.FreezeWindow)
	pins := map[string]bool{}
	for _, h := range merged.Hosts {
		d.table.Bind(h.Tenant, net.HardwareAddr(h.MAC), h.Addresses, h.Pinned)
		if h.Pinned {
			for _, a := range h.Addresses {
				pins[h.Tenant+"/"+a.String()] = true
			}
		}
	}
	d.table.KeepPins(func(tenant, addr string) bool { return pins[tenant+"/"+addr] })

	d.cfg = &merged
	d.current.Store(&merged)
	d.rematchPorts()
	d.log.Info("configuration reloaded", "notes", notes)
	return notes, nil
}

// rematchPorts applies changed port patterns to the ports roamd holds: a
// port that no longer matches is released as if removed, one that now
// belongs to another tenant is released and adopted again; the port
// watcher's resync adopts ports that match for the first time.
func (d *Daemon) rematchPorts() {
	tenantOf := map[string]string{}
	for _, p := range d.table.Ports() {
		tenantOf[p.Name] = p.Tenant
	}
	for name, idx := range d.portIndex {
		t := d.cfg.TenantForPort(name)
		if t != nil && t.Name == tenantOf[name] {
			continue
		}
		d.portEvent(PortEvent{Name: name, Index: idx})
		if t != nil {
			d.portEvent(PortEvent{Added: true, Name: name, Index: idx})
		}
	}
}
