package fib

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// InstallHost programs addr as running behind port: a permanent neighbour
// entry for mac on the port (none when mac is nil), then the host route,
// which replaces whatever route roamd had for addr (a forwarding one too) in
// one atomic step. Two netlink writes and no dumps: it is on the hot path of
// a move.
func (f *FIB) InstallHost(tenant string, addr netip.Addr, port string, mac net.HardwareAddr) error {
	t, err := f.tenant(tenant)
	if err != nil {
		return fmt.Errorf("installing host %s: %w", addr, err)
	}
	if err := checkHostAddr(addr); err != nil {
		return fmt.Errorf("installing host: %w", err)
	}
	if mac != nil && len(mac) != 6 {
		return fmt.Errorf("installing host %s: MAC %q is not an Ethernet MAC", addr, mac)
	}
	return f.withLink(port, func(idx int) error {
		if mac != nil {
			if err := f.setNeighbor(idx, port, addr, mac); err != nil {
				return err
			}
		}
		return f.writeRoute(f.localRoute(t, addr, idx), port, f.h.RouteReplace)
	})
}

// ForwardHost replaces addr's route, in one step, by one that tunnels its
// packets to the site at underlay address to: `encap ip id <tenant id> dst
// <to> dev <forward device>`. Packets still reaching this site after the
// host moved are thus delivered, never bounced back into a fabric that may
// still point here.
func (f *FIB) ForwardHost(tenant string, addr, to netip.Addr) error {
	t, err := f.tenant(tenant)
	if err != nil {
		return fmt.Errorf("forwarding host %s: %w", addr, err)
	}
	if err := checkHostAddr(addr); err != nil {
		return fmt.Errorf("forwarding host: %w", err)
	}
	if !to.IsValid() || to.Zone() != "" {
		return fmt.Errorf("forwarding host %s: invalid underlay address %s", addr, to)
	}
	if f.cfg.ForwardDevice == "" {
		return fmt.Errorf("forwarding host %s: no forward device configured", addr)
	}
	dev := f.cfg.ForwardDevice
	write := func(idx int) error {
		return f.writeRoute(f.forwardRoute(t, addr, to, idx), dev, f.h.RouteReplace)
	}
	err = f.withLink(dev, write)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		// Someone deleted the device: recreate it rather than drop packets.
		if err := f.ensureForwardDevice(); err != nil {
			return fmt.Errorf("forwarding host %s: %w", addr, err)
		}
		err = f.withLink(dev, write)
	}
	return err
}

// RemoveHost removes roamd's route for addr in the tenant's table, local or
// forwarding. A route that is not there is not an error; routes of other
// protocols are never removed.
func (f *FIB) RemoveHost(tenant string, addr netip.Addr) error {
	t, err := f.tenant(tenant)
	if err != nil {
		return fmt.Errorf("removing host %s: %w", addr, err)
	}
	if err := checkHostAddr(addr); err != nil {
		return fmt.Errorf("removing host: %w", err)
	}
	return f.deleteRoute(hostPrefix(addr), t.Table, 0)
}

// StageNeighbors writes permanent neighbour entries for a VM that is about to
// arrive on port, so the first packets routed to it queue in the port instead
// of waiting for ARP/ND (which a paused VM cannot answer).
func (f *FIB) StageNeighbors(port string, mac net.HardwareAddr, addrs []netip.Addr) error {
	if len(mac) != 6 {
		return fmt.Errorf("staging neighbours on %s: MAC %q is not an Ethernet MAC", port, mac)
	}
	return f.withLink(port, func(idx int) error {
		var errs []error
		for _, a := range addrs {
			if err := checkHostAddr(a); err != nil {
				errs = append(errs, fmt.Errorf("staging neighbour on %s: %w", port, err))
				continue
			}
			err := f.setNeighbor(idx, port, a, mac)
			if errors.Is(err, unix.ENODEV) {
				return err // withLink looks the port up again
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
}

func checkHostAddr(a netip.Addr) error {
	a = a.Unmap()
	if !a.IsValid() || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() {
		return fmt.Errorf("%s is not a host address", a)
	}
	return nil
}

func (f *FIB) setNeighbor(idx int, port string, addr netip.Addr, mac net.HardwareAddr) error {
	addr = addr.Unmap()
	n := &netlink.Neigh{
		LinkIndex:    idx,
		Family:       familyOf(addr),
		State:        netlink.NUD_PERMANENT,
		IP:           addr.AsSlice(),
		HardwareAddr: mac,
	}
	if err := f.h.NeighSet(n); err != nil {
		return fmt.Errorf("adding neighbour %s lladdr %s dev %s: %w", addr, mac, port, err)
	}
	return nil
}

// localRoute is `<addr> dev <port> proto roamd table <t> scope link [src
// <router id>]`.
func (f *FIB) localRoute(t *TenantConfig, addr netip.Addr, idx int) *netlink.Route {
	r := f.hostRoute(t, addr, idx)
	if src, ok := f.source(); ok && r.Dst.IP.To4() != nil {
		r.Src = src.AsSlice()
	}
	return r
}

// forwardRoute is `<addr> encap ip id <tenant id> dst <to> dev <forward
// device> proto roamd table <t>`.
func (f *FIB) forwardRoute(t *TenantConfig, addr, to netip.Addr, idx int) *netlink.Route {
	r := f.hostRoute(t, addr, idx)
	r.Encap = &ipEncap{ID: uint64(t.ID), Dst: to.Unmap()}
	return r
}

func (f *FIB) hostRoute(t *TenantConfig, addr netip.Addr, idx int) *netlink.Route {
	r := &netlink.Route{
		LinkIndex: idx,
		Dst:       ipNet(hostPrefix(addr)),
		Protocol:  netlink.RouteProtocol(f.cfg.Protocol),
		Table:     t.Table,
		Type:      unix.RTN_UNICAST,
	}
	if familyOf(addr) == netlink.FAMILY_V4 {
		r.Scope = netlink.SCOPE_LINK // IPv6 routes have no scope
	}
	return r
}

// writeRoute sends r with op (RouteReplace, or RouteAdd where a foreign
// route must not be overwritten). If the kernel rejects the preferred source
// (the router ID is no longer local), it writes the route without one.
func (f *FIB) writeRoute(r *netlink.Route, dev string, op func(*netlink.Route) error) error {
	err := op(r)
	if errors.Is(err, unix.EINVAL) && r.Src != nil {
		f.mu.Lock()
		f.useSrc = false
		f.mu.Unlock()
		f.log.Warn("router ID rejected as preferred source; host routes go without it", "routerID", f.cfg.RouterID, "err", err)
		r.Src = nil
		err = op(r)
	}
	if err != nil {
		return fmt.Errorf("adding route %s: %w", describeRoute(r, dev), err)
	}
	return nil
}

// deleteRoute removes roamd's route to dst in table (metric 0: any). Gone
// already is fine.
func (f *FIB) deleteRoute(dst netip.Prefix, table, metric int) error {
	r := &netlink.Route{
		Dst:      ipNet(dst),
		Table:    table,
		Protocol: netlink.RouteProtocol(f.cfg.Protocol),
		Priority: metric,
		// Any scope; the library would otherwise send universe, which
		// does not match roamd's scope-link routes.
		Scope: netlink.SCOPE_NOWHERE,
	}
	if err := f.h.RouteDel(r); err != nil && !isNotFound(err) {
		return fmt.Errorf("removing route %s table %d: %w", dst, table, err)
	}
	return nil
}

// describeRoute renders r in ip-route(8) words for error messages.
func describeRoute(r *netlink.Route, dev string) string {
	s := r.Dst.String()
	if r.Encap != nil {
		s += " encap " + r.Encap.String()
	}
	s += fmt.Sprintf(" dev %s table %d", dev, r.Table)
	if r.Src != nil {
		s += " src " + r.Src.String()
	}
	return s
}
