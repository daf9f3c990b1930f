package daemon

import (
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/roamd/roamd/daemon/config"
	"github.com/roamd/roamd/daemon/hosts"
	"github.com/roamd/roamd/detect/capture"
	"github.com/roamd/roamd/detect/frames"
)

// raLifetime is the default-router lifetime roamd advertises for the IPv6
// anycast gateway.
const raLifetime = 1800 * time.Second

// The IPv6 side of the anycast gateway that the kernel cannot serve:
//
//   - A VM solicits the other addresses of its /64 as on-link neighbours.
//     Kernel proxy NDP answers only for addresses with a proxy entry each
//     (there is no wildcard, unlike proxy ARP), which would mean one entry per
//     possible neighbour on every port. roamd answers those solicitations
//     itself with the anycast MAC: robust whatever the VM asks for, and no
//     per-address state to keep in sync. Solicitations for the gateway
//     addresses themselves (local on the port) are the kernel's.
//   - A VM that boots sends router solicitations; with forwarding on and no
//     radvd the kernel sends no advertisements, so roamd answers.
//   - After an arrival roamd advertises the gateway (RA and unsolicited NA),
//     so the guest's default-router entry stays valid at the new site.

// answerNDP answers a neighbour or router solicitation from a VM port.
func (d *Daemon) answerNDP(ev capture.Event) {
	o := ev.Obs
	if o.Kind != frames.KindNeighborSolicit && o.Kind != frames.KindRouterSolicit {
		return
	}
	cfg := d.current.Load() // not on the engine goroutine
	t := cfg.TenantForPort(ev.Port)
	if t == nil {
		return
	}
	ll := linkLocalGateway(t)
	if !ll.IsValid() {
		return // no IPv6 gateway configured for this tenant
	}
	gwMAC := net.HardwareAddr(cfg.GatewayMAC)
	var frame []byte
	switch o.Kind {
	case frames.KindRouterSolicit:
		frame = frames.RouterAdvert(gwMAC, ll, raLifetime, t.Prefixes...)
	case frames.KindNeighborSolicit:
		target := o.Target
		if !o.Addr.IsValid() || !target.Is6() || target == o.Addr || !t.Contains(target) ||
			slices.Contains(t.Gateways, target) || len(o.SrcMAC) != 6 {
			return
		}
		frame = frames.SolicitedNA(gwMAC, ll, o.SrcMAC, o.Addr, target, true)
	}
	if err := d.capture.Send(ev.Port, frame); err != nil {
		d.log.Debug("answering neighbour discovery", "port", ev.Port, "err", err)
	}
}

// announceGateway advertises the IPv6 gateway on port after an arrival.
func (d *Daemon) announceGateway(port string) {
	t := d.cfg.TenantForPort(port)
	if t == nil {
		return
	}
	ll := linkLocalGateway(t)
	if !ll.IsValid() {
		return
	}
	gwMAC := net.HardwareAddr(d.cfg.GatewayMAC)
	out := [][]byte{frames.RouterAdvert(gwMAC, ll, raLifetime, t.Prefixes...)}
	for _, g := range t.Gateways {
		if g.Is6() {
			out = append(out, frames.UnsolicitedNA(gwMAC, g, true))
		}
	}
	for _, f := range out {
		if err := d.capture.Send(port, f); err != nil {
			d.log.Debug("announcing the gateway", "port", port, "err", err)
			return
		}
	}
}

// gateway4 returns the tenant's first IPv4 gateway address.
func gateway4(t *config.Tenant) netip.Addr {
	return firstGateway(t, netip.Addr.Is4)
}

// globalGateway6 returns the tenant's first IPv6 gateway address that is
// not link-local.
func globalGateway6(t *config.Tenant) netip.Addr {
	return firstGateway(t, func(g netip.Addr) bool { return g.Is6() && !g.IsLinkLocalUnicast() })
}

func firstGateway(t *config.Tenant, ok func(netip.Addr) bool) netip.Addr {
	for _, g := range t.Gateways {
		if ok(g) {
			return g
		}
	}
	return netip.Addr{}
}

// linkLocalGateway returns the tenant's IPv6 link-local gateway address.
func linkLocalGateway(t *config.Tenant) netip.Addr {
	return firstGateway(t, func(g netip.Addr) bool { return g.Is6() && g.IsLinkLocalUnicast() })
}

// repairNeighbours announces a departed host's address with the anycast MAC
// on the port it left: on a bridged segment the neighbours left behind then
// send to the gateway, which routes to the new site. On a routed tap only the
// departed VM was behind the port, and the frames are harmless.
func (d *Daemon) repairNeighbours(a hosts.RepairNeighbours) {
	gwMAC := net.HardwareAddr(d.cfg.GatewayMAC)
	var frame []byte
	if a.Key.Addr.Is4() {
		frame = frames.GratuitousARP(gwMAC, a.Key.Addr)
	} else {
		frame = frames.UnsolicitedNA(gwMAC, a.Key.Addr, true)
	}
	if err := d.capture.Send(a.Port, frame); err != nil {
		d.log.Debug("repairing neighbour caches", "port", a.Port, "host", a.Key.String(), "err", err)
	}
}
