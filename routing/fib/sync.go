package fib

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"
)

// Route is one host route roamd owns: local delivery through a port, or
// forwarding to another site.
type Route struct {
	Tenant string
	Addr   netip.Addr
	// Port is the VM port for local delivery; "" for a forwarding route.
	Port string
	// ForwardTo is the underlay address packets are tunnelled to; valid only
	// for a forwarding route.
	ForwardTo netip.Addr
}

func (r Route) String() string {
	if r.Port != "" {
		return fmt.Sprintf("%s %s dev %s", r.Tenant, r.Addr, r.Port)
	}
	return fmt.Sprintf("%s %s forward to %s", r.Tenant, r.Addr, r.ForwardTo)
}

// ownedRoute is a route with roamd's protocol in a tenant table, as the
// kernel has it or as roamd wants it.
type ownedRoute struct {
	Route
	Dst    netip.Prefix
	Table  int
	Metric int
	Src    netip.Addr
	VNI    uint64
	// Exact says scope and metric are those roamd writes.
	Exact bool
}

type routeKey struct {
	Table int
	Dst   netip.Prefix
}

func (r ownedRoute) key() routeKey { return routeKey{r.Table, r.Dst} }

// same reports whether the kernel's route have already is want.
func same(have, want ownedRoute) bool {
	return have.Exact && have.Metric == want.Metric && have.Route == want.Route && have.Src == want.Src && have.VNI == want.VNI
}

// defaultMetric is the metric the kernel gives a route written without one.
func defaultMetric(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 0
	}
	return 1024 // IP6_RT_PRIO_USER
}

// Routes lists the host routes roamd owns: its protocol, in its tenants'
// tables, sorted by tenant and address.
func (f *FIB) Routes() ([]Route, error) {
	owned, err := f.ownedRoutes()
	if err != nil {
		return nil, err
	}
	var out []Route
	for _, r := range owned {
		if r.Dst.IsSingleIP() {
			out = append(out, r.Route)
		}
	}
	slices.SortFunc(out, func(a, b Route) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), a.Addr.Compare(b.Addr))
	})
	return out, nil
}

// ownedRoutes reads every unicast route with roamd's protocol in a tenant
// table, host routes or not.
func (f *FIB) ownedRoutes() ([]ownedRoute, error) {
	routes, err := dump("listing routes", f.raw.routes)
	if err != nil {
		return nil, err
	}
	byTable := map[int]string{}
	for _, t := range f.cfg.Tenants {
		byTable[t.Table] = t.Name
	}
	var names map[int]string
	var out []ownedRoute
	for _, kr := range routes {
		tenant, ok := byTable[kr.Table]
		if !ok || kr.Protocol != f.cfg.Protocol || kr.Type != unix.RTN_UNICAST {
			continue
		}
		if names == nil {
			if names, err = f.linkNames(); err != nil {
				return nil, err
			}
		}
		o := ownedRoute{
			Route:  Route{Tenant: tenant, Addr: kr.Dst.Addr()},
			Dst:    kr.Dst,
			Table:  kr.Table,
			Metric: kr.Priority,
			Src:    kr.PrefSrc,
		}
		wantScope := unix.RT_SCOPE_UNIVERSE
		if kr.Dst.Addr().Is4() {
			wantScope = unix.RT_SCOPE_LINK
		}
		o.Exact = kr.Scope == wantScope && kr.Priority == defaultMetric(kr.Dst)
		switch {
		case kr.Encap != nil:
			o.ForwardTo = kr.Encap.Dst
			o.VNI = kr.Encap.ID
		case kr.EncapType == 0:
			o.Port = names[kr.OIF]
		}
		out = append(out, o)
	}
	return out, nil
}

func (f *FIB) linkNames() (map[int]string, error) {
	return dump("listing interfaces", f.raw.linkNames)
}

// Sync makes roamd's host routes exactly want: it adds what is missing,
// rewrites what differs and removes roamd's routes that are not wanted. It
// never touches a route of another protocol or outside the tenant tables; a
// missing route is added without overwriting (a foreign route in its place is
// reported, not replaced). It keeps going past an item's error and returns
// the errors joined. Sync writes routes only: neighbour entries are
// InstallHost's.
func (f *FIB) Sync(want []Route) error {
	f.refreshSource()
	have, err := f.ownedRoutes()
	if err != nil {
		return fmt.Errorf("syncing routes: %w", err)
	}
	var errs []error
	desired := make([]ownedRoute, 0, len(want))
	// keep holds keys that are wanted even when the item is bad, so a bad
	// item never deletes the route that is there.
	keep := map[routeKey]bool{}
	for _, w := range want {
		d, err := f.desired(w)
		if d.Table != 0 && d.Dst.IsValid() {
			if keep[d.key()] {
				errs = append(errs, fmt.Errorf("syncing %s: %s wanted twice", w, d.Dst))
				continue
			}
			keep[d.key()] = true
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("syncing %s: %w", w, err))
			continue
		}
		desired = append(desired, d)
	}
	for _, op := range plan(have, desired, keep) {
		if err := f.apply(op); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// desired is the route roamd writes for w. Table and Dst are filled in as
// far as w allows, even on error.
func (f *FIB) desired(w Route) (ownedRoute, error) {
	d := ownedRoute{Route: w, Exact: true}
	t, err := f.tenant(w.Tenant)
	if err != nil {
		return d, err
	}
	d.Table = t.Table
	if err := checkHostAddr(w.Addr); err != nil {
		return d, err
	}
	d.Addr = w.Addr.Unmap()
	d.Dst = hostPrefix(w.Addr)
	d.Metric = defaultMetric(d.Dst)
	switch {
	case w.Port != "" && w.ForwardTo.IsValid():
		return d, errors.New("both a port and a forwarding address")
	case w.Port != "":
		if src, ok := f.source(); ok && d.Addr.Is4() {
			d.Src = src
		}
	case w.ForwardTo.IsValid():
		if f.cfg.ForwardDevice == "" {
			return d, errors.New("no forward device configured")
		}
		d.ForwardTo = w.ForwardTo.Unmap()
		d.VNI = uint64(t.ID)
	default:
		return d, errors.New("neither a port nor a forwarding address")
	}
	return d, nil
}

type opKind int

const (
	opAdd     opKind = iota // create, never overwriting (NLM_F_EXCL)
	opReplace               // overwrite roamd's own route with the same metric
	opDelete
)

type routeOp struct {
	Kind  opKind
	Route ownedRoute
}

// plan computes the writes that turn have into want. Writes come before
// deletions so a route being fixed never disappears in between; routes whose
// key is in keep are never deleted.
func plan(have, want []ownedRoute, keep map[routeKey]bool) []routeOp {
	byKey := map[routeKey][]ownedRoute{}
	for _, h := range have {
		byKey[h.key()] = append(byKey[h.key()], h)
	}
	var writes, deletes []routeOp
	for _, w := range want {
		cur := byKey[w.key()]
		delete(byKey, w.key())
		kept := slices.IndexFunc(cur, func(h ownedRoute) bool { return same(h, w) })
		if kept < 0 {
			// A route of ours with the same metric is overwritten in place;
			// otherwise the new one is added next to the old ones.
			kind := opAdd
			if kept = slices.IndexFunc(cur, func(h ownedRoute) bool { return h.Metric == w.Metric }); kept >= 0 {
				kind = opReplace
			}
			writes = append(writes, routeOp{kind, w})
		}
		for i, h := range cur {
			if i != kept {
				deletes = append(deletes, routeOp{opDelete, h})
			}
		}
	}
	for k, hs := range byKey {
		if keep[k] {
			continue
		}
		for _, h := range hs {
			deletes = append(deletes, routeOp{opDelete, h})
		}
	}
	slices.SortFunc(deletes, func(a, b routeOp) int {
		return cmp.Or(cmp.Compare(a.Route.Table, b.Route.Table), a.Route.Dst.Addr().Compare(b.Route.Dst.Addr()),
			cmp.Compare(a.Route.Dst.Bits(), b.Route.Dst.Bits()), cmp.Compare(a.Route.Metric, b.Route.Metric))
	})
	return append(writes, deletes...)
}

func (f *FIB) apply(op routeOp) error {
	r := op.Route
	if op.Kind == opDelete {
		return f.deleteRoute(r.Dst, r.Table, r.Metric)
	}
	write := f.h.RouteAdd
	if op.Kind == opReplace {
		write = f.h.RouteReplace
	}
	t, err := f.tenant(r.Tenant)
	if err != nil {
		return err
	}
	if r.Port != "" {
		return f.withLink(r.Port, func(idx int) error {
			nr := f.hostRoute(t, r.Addr, idx)
			if r.Src.IsValid() {
				nr.Src = r.Src.AsSlice()
			}
			return f.writeRoute(nr, r.Port, write)
		})
	}
	return f.withLink(f.cfg.ForwardDevice, func(idx int) error {
		return f.writeRoute(f.forwardRoute(t, r.Addr, r.ForwardTo, idx), f.cfg.ForwardDevice, write)
	})
}
