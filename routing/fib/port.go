package fib

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// PreparePort makes port a routed port of tenant: anycast gateway MAC,
// txqueuelen, proxy ARP answering at once, no IPv6 autoconfiguration, the
// tenant's gateway addresses, up, and (for a tenant with its own table) the
// rules `iif <port> lookup <table>`. It looks the port up afresh, so a port
// recreated under the same name is picked up. It keeps going past a failing
// step and returns all failures joined.
func (f *FIB) PreparePort(port, tenant string) error {
	t, err := f.tenant(tenant)
	if err != nil {
		return fmt.Errorf("preparing port %s: %w", port, err)
	}
	l, err := f.lookupLink(port)
	if err != nil {
		return fmt.Errorf("preparing port %s: %w", port, err)
	}
	var errs []error
	if err := f.guardPort(port); err != nil {
		errs = append(errs, err)
	}
	// proxy_delay defaults to up to 0.8 s of random delay before a proxy
	// ARP reply; a moved VM cannot wait that long.
	if err := f.setSysctls(
		"net/ipv4/conf/"+port+"/proxy_arp", "1",
		"net/ipv4/neigh/"+port+"/proxy_delay", "0",
		"net/ipv4/conf/"+port+"/forwarding", "1",
		"net/ipv4/conf/"+port+"/rp_filter", "0",
		"net/ipv6/conf/"+port+"/accept_ra", "0",
		"net/ipv6/conf/"+port+"/accept_dad", "0",
		"net/ipv6/conf/"+port+"/forwarding", "1",
	); err != nil {
		errs = append(errs, err)
	}
	// MAC before up: the VM must only ever see the anycast MAC.
	if !bytes.Equal(l.Attrs().HardwareAddr, f.cfg.GatewayMAC) {
		if err := f.setMAC(l); err != nil {
			errs = append(errs, err)
		}
	}
	if f.cfg.TxQueueLen > 0 && l.Attrs().TxQLen != f.cfg.TxQueueLen {
		if err := f.h.LinkSetTxQLen(l, f.cfg.TxQueueLen); err != nil {
			errs = append(errs, fmt.Errorf("setting txqueuelen %d on %s: %w", f.cfg.TxQueueLen, port, err))
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := f.h.LinkSetUp(l); err != nil {
			errs = append(errs, fmt.Errorf("setting %s up: %w", port, err))
		}
	}
	for _, g := range t.Gateways {
		if err := f.addGateway(l, g); err != nil {
			errs = append(errs, err)
		}
	}
	var want []ruleSpec
	if t.Table != mainTable {
		for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
			want = append(want, ruleSpec{Family: fam, Priority: f.cfg.RulePriority, IIF: port, Table: t.Table})
		}
	}
	// Also drops the rules of the tenant the port belonged to before.
	if err := f.ensureRules(want, func(r ruleSpec) bool { return r.IIF == port }); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("preparing port %s: %w", port, err)
	}
	return nil
}

// setMAC sets the anycast gateway MAC, taking the port down for it if the
// driver refuses to change the MAC of a running device.
func (f *FIB) setMAC(l netlink.Link) error {
	name := l.Attrs().Name
	err := f.h.LinkSetHardwareAddr(l, f.cfg.GatewayMAC)
	if errors.Is(err, unix.EBUSY) {
		if err = f.h.LinkSetDown(l); err == nil {
			err = f.h.LinkSetHardwareAddr(l, f.cfg.GatewayMAC)
			if uerr := f.h.LinkSetUp(l); err == nil {
				err = uerr
			}
		}
	}
	if err != nil {
		return fmt.Errorf("setting MAC %s on %s: %w", f.cfg.GatewayMAC, name, err)
	}
	return nil
}

// addGateway configures one gateway address on the port: IPv4 as /32 (no
// subnet route: the VM's subnet must not be on-link here), an IPv6
// link-local as /64, a global IPv6 as /128 without prefix route, both
// without duplicate address detection (every port has the same address).
func (f *FIB) addGateway(l netlink.Link, g netip.Addr) error {
	g = g.Unmap()
	var p netip.Prefix
	flags := 0
	switch {
	case g.Is4():
		p = netip.PrefixFrom(g, 32)
	case g.IsLinkLocalUnicast():
		p = netip.PrefixFrom(g, 64)
		flags = unix.IFA_F_NODAD
	default:
		p = netip.PrefixFrom(g, 128)
		flags = unix.IFA_F_NODAD | unix.IFA_F_NOPREFIXROUTE
	}
	if err := f.h.AddrReplace(l, &netlink.Addr{IPNet: ipNet(p), Flags: flags}); err != nil {
		return fmt.Errorf("adding address %s to %s: %w", p, l.Attrs().Name, err)
	}
	return nil
}
