package fib

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Setup prepares the namespace once at start and whenever a reconcile wants
// to repair it: IPv4 and IPv6 forwarding on, the forward device created (or
// recreated when it is not what roamd wants), the unreachable defaults of
// tenant tables, and the rules of tenant uplinks and of packets arriving
// through the forward device (tun_id). It keeps going past a failing step
// and returns all failures joined.
func (f *FIB) Setup() error {
	var errs []error
	if err := f.setSysctls(
		"net/ipv4/ip_forward", "1",
		"net/ipv6/conf/all/forwarding", "1",
	); err != nil {
		errs = append(errs, err)
	}
	if f.cfg.ForwardDevice != "" {
		if err := f.ensureForwardDevice(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := f.ensureTenantTables(); err != nil {
		errs = append(errs, err)
	}
	if err := f.ensureStaticRules(); err != nil {
		errs = append(errs, err)
	}
	if err := f.ensureGuard(); err != nil {
		errs = append(errs, err)
	}
	f.refreshSource()
	return errors.Join(errs...)
}

// ensureForwardDevice makes the forward device exist as roamd needs it:
// VXLAN-GPE, metadata mode, learning off, roamd's UDP port, up. A VXLAN
// device of that name that differs is replaced; a device of another kind is
// left alone and reported.
func (f *FIB) ensureForwardDevice() error {
	name := f.cfg.ForwardDevice
	l, err := f.h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		l = nil
	case err != nil:
		return fmt.Errorf("looking up forward device %s: %w", name, err)
	}
	if l != nil && !f.isForwardDevice(l) {
		if l.Type() != "vxlan" {
			return fmt.Errorf("forward device %s exists as a %s device: refusing to replace it", name, l.Type())
		}
		f.log.Warn("replacing forward device with different settings", "device", name)
		if err := f.h.LinkDel(l); err != nil && !errors.As(err, &notFound) {
			return fmt.Errorf("removing stale forward device %s: %w", name, err)
		}
		l = nil
	}
	if l == nil {
		if err := f.raw.addVXLANGPE(name, f.cfg.ForwardPort); err != nil {
			return err
		}
		f.log.Info("created forward device", "device", name, "port", f.cfg.ForwardPort)
	}
	f.forget(name)
	if l, err = f.lookupLink(name); err != nil {
		return err
	}
	var errs []error
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := f.h.LinkSetUp(l); err != nil {
			errs = append(errs, fmt.Errorf("setting %s up: %w", name, err))
		}
	}
	// Decapsulated packets come from anywhere: a reverse-path check against
	// the forward device would drop them.
	if err := f.setSysctls(
		"net/ipv4/conf/"+name+"/rp_filter", "0",
		"net/ipv4/conf/"+name+"/forwarding", "1",
		"net/ipv6/conf/"+name+"/forwarding", "1",
		"net/ipv6/conf/"+name+"/accept_ra", "0",
	); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// isForwardDevice reports whether l is the device ensureForwardDevice
// creates. A GPE device carries no Ethernet header: its link type is none.
func (f *FIB) isForwardDevice(l netlink.Link) bool {
	v, ok := l.(*netlink.Vxlan)
	return ok && v.FlowBased && !v.Learning && v.Port == f.cfg.ForwardPort && v.EncapType == "none"
}

// ensureTenantTables ends every tenant table of its own with an unreachable
// default (IPv4 and IPv6) at the highest metric, so a lookup that finds
// nothing there stops instead of falling through to main.
func (f *FIB) ensureTenantTables() error {
	var errs []error
	for _, t := range f.cfg.Tenants {
		if t.Table == mainTable {
			continue
		}
		for _, dst := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
			r := &netlink.Route{
				Dst:      ipNet(dst),
				Table:    t.Table,
				Type:     unix.RTN_UNREACHABLE,
				Protocol: netlink.RouteProtocol(f.cfg.Protocol),
				Priority: highestMetric,
			}
			if err := f.h.RouteReplace(r); err != nil {
				errs = append(errs, fmt.Errorf("adding route unreachable %s table %d metric %d: %w", dst, t.Table, highestMetric, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ensureStaticRules writes the rules that do not depend on ports: uplinks
// into their tenant's table, and packets from the forward device into the
// table of the tenant their VNI names. roamd's rules on those interfaces
// that are no longer wanted (a tenant's table or id changed) are removed.
func (f *FIB) ensureStaticRules() error {
	var want []ruleSpec
	managed := map[string]bool{}
	if f.cfg.ForwardDevice != "" {
		managed[f.cfg.ForwardDevice] = true
	}
	for _, t := range f.cfg.Tenants {
		if t.Table == mainTable {
			continue
		}
		for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
			if f.cfg.ForwardDevice != "" {
				want = append(want, ruleSpec{Family: fam, Priority: f.cfg.RulePriority, IIF: f.cfg.ForwardDevice, TunID: uint64(t.ID), Table: t.Table})
			}
			for _, up := range t.Uplinks {
				want = append(want, ruleSpec{Family: fam, Priority: f.cfg.RulePriority, IIF: up, Table: t.Table})
			}
		}
		for _, up := range t.Uplinks {
			managed[up] = true
		}
	}
	return f.ensureRules(want, func(r ruleSpec) bool { return managed[r.IIF] })
}

// ensureRules adds want, then removes roamd's rules selected by mine that
// are not in want. Adding first means traffic never sees a gap.
func (f *FIB) ensureRules(want []ruleSpec, mine func(ruleSpec) bool) error {
	var errs []error
	wanted := map[ruleSpec]bool{}
	for _, r := range want {
		wanted[r] = true
		if err := f.raw.addRule(r, f.cfg.Protocol); err != nil {
			errs = append(errs, err)
		}
	}
	have, err := f.ownRules()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, r := range have {
		if mine(r) && !wanted[r] {
			if err := f.raw.delRule(r, f.cfg.Protocol); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// ownRules lists the rules carrying roamd's protocol, both families.
func (f *FIB) ownRules() ([]ruleSpec, error) {
	var out []ruleSpec
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rules, err := dump("listing rules", func() ([]netlink.Rule, error) { return f.h.RuleListFiltered(fam, nil, 0) })
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			if int(r.Protocol) != f.cfg.Protocol {
				continue
			}
			out = append(out, ruleSpec{
				Family:   fam,
				Priority: r.Priority,
				IIF:      r.IifName,
				TunID:    ruleTunID(r.TunID),
				Table:    r.Table,
			})
		}
	}
	return out, nil
}
