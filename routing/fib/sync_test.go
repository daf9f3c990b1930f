package fib

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/roamd/roamd/labs/nstest"
	"github.com/vishvananda/netlink"
)

func TestRoutesAndSync(t *testing.T) {
	hv := newNS(t, "hv")
	vm := newNS(t, "vm")
	nstest.Veth(t, hv, "tapa", vm, "a")
	nstest.Veth(t, hv, "tapb", vm, "b")
	ip(t, hv, "addr add 198.51.100.11/32 dev lo")
	cfg := testConfig(rid1,
		TenantConfig{Name: "default", ID: 1, Table: 254, Gateways: []netip.Addr{vmGW4}},
		TenantConfig{Name: "blue", ID: 2, Table: 100, Gateways: []netip.Addr{vmGW4}},
	)
	f := newFIB(t, hv, cfg)
	mustOK(t, "Setup", f.Setup())
	mustOK(t, "PreparePort tapa", f.PreparePort("tapa", "default"))
	mustOK(t, "PreparePort tapb", f.PreparePort("tapb", "blue"))

	a := netip.MustParseAddr
	hop1, hop2 := a("198.51.100.12"), a("198.51.100.13")
	mustOK(t, "install", f.InstallHost("default", a("192.0.2.10"), "tapa", nil))
	mustOK(t, "install", f.InstallHost("default", a("2001:db8:10::10"), "tapa", nil))
	mustOK(t, "install", f.InstallHost("blue", a("192.0.2.10"), "tapb", nil))
	mustOK(t, "forward", f.ForwardHost("default", a("192.0.2.11"), hop1))
	mustOK(t, "forward", f.ForwardHost("blue", a("2001:db8:10::11"), hop1))
	// Routes roamd does not own: another protocol in a tenant table, and
	// roamd's protocol outside the tenant tables.
	ip(t, hv, "route add 192.0.2.99/32 dev tapa proto static")
	ip(t, hv, "route add 192.0.2.97/32 dev tapb table 100")
	ip(t, hv, "route add 192.0.2.98/32 dev tapa proto 77 table 200")

	got, err := f.Routes()
	mustOK(t, "Routes", err)
	want := []Route{
		{Tenant: "blue", Addr: a("192.0.2.10"), Port: "tapb"},
		{Tenant: "blue", Addr: a("2001:db8:10::11"), ForwardTo: hop1},
		{Tenant: "default", Addr: a("192.0.2.10"), Port: "tapa"},
		{Tenant: "default", Addr: a("192.0.2.11"), ForwardTo: hop1},
		{Tenant: "default", Addr: a("2001:db8:10::10"), Port: "tapa"},
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); d != "" {
		t.Fatalf("Routes() (-want +got):\n%s", d)
	}

	// Behind roamd's back: one owned route disappears, an extra one appears.
	ip(t, hv, "route del 192.0.2.10/32 table 100")
	ip(t, hv, "route add 192.0.2.50/32 dev tapa proto 77")

	want = []Route{
		{Tenant: "blue", Addr: a("192.0.2.10"), Port: "tapb"},            // restored
		{Tenant: "blue", Addr: a("192.0.2.12"), Port: "tapb"},            // new
		{Tenant: "blue", Addr: a("2001:db8:10::11"), ForwardTo: hop1},    // kept
		{Tenant: "default", Addr: a("192.0.2.10"), Port: "tapa"},         // kept
		{Tenant: "default", Addr: a("192.0.2.11"), ForwardTo: hop2},      // moved on
		{Tenant: "default", Addr: a("2001:db8:10::10"), ForwardTo: hop1}, // now forwarded
	}
	for range 2 {
		mustOK(t, "Sync", f.Sync(want))
		got, err = f.Routes()
		mustOK(t, "Routes", err)
		if d := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); d != "" {
			t.Fatalf("Routes() after Sync (-want +got):\n%s", d)
		}
	}
	checkForeign := func() {
		t.Helper()
		for _, c := range []struct {
			dst   string
			table int
			proto netlink.RouteProtocol
		}{{"192.0.2.99", 254, 4}, {"192.0.2.97", 100, 3}, {"192.0.2.98", 200, testProto}} {
			rs := kernelRoutes(t, hv, a(c.dst), c.table)
			if len(rs) != 1 || rs[0].Protocol != c.proto {
				t.Errorf("foreign route %s table %d: %v, want it untouched (proto %d)", c.dst, c.table, rs, c.proto)
			}
		}
	}
	checkForeign()

	// One bad item (a port that does not exist) and one blocked by a
	// foreign route do not stop the rest, and nothing foreign is overwritten.
	bad := append(want[:len(want):len(want)],
		Route{Tenant: "default", Addr: a("192.0.2.60"), Port: "tapzz"},
		Route{Tenant: "default", Addr: a("192.0.2.99"), Port: "tapa"},
		Route{Tenant: "default", Addr: a("192.0.2.61"), Port: "tapa"},
	)
	err = f.Sync(bad)
	if err == nil || !strings.Contains(err.Error(), "tapzz") ||
		!strings.Contains(err.Error(), "adding route 192.0.2.99/32 dev tapa table 254") || !strings.Contains(err.Error(), "file exists") {
		t.Fatalf("Sync with a missing port and a foreign route in the way: err = %v, want both reported", err)
	}
	if rs := kernelRoutes(t, hv, a("192.0.2.61"), 254); len(rs) != 1 || rs[0].Protocol != testProto {
		t.Errorf("the good item after the bad ones was not installed: %v", rs)
	}
	checkForeign()
}

func TestPlan(t *testing.T) {
	a := netip.MustParseAddr
	p := func(s string) netip.Prefix { return netip.PrefixFrom(a(s), a(s).BitLen()) }
	local := func(addr, port string, metric int) ownedRoute {
		return ownedRoute{Route: Route{Tenant: "t", Addr: a(addr), Port: port}, Dst: p(addr), Table: 100, Metric: metric, Exact: true}
	}
	fwd := func(addr, to string) ownedRoute {
		return ownedRoute{Route: Route{Tenant: "t", Addr: a(addr), ForwardTo: a(to)}, Dst: p(addr), Table: 100, Metric: defaultMetric(p(addr)), VNI: 7, Exact: true}
	}
	inexact := local("192.0.2.5", "tap1", 0)
	inexact.Exact = false
	tests := []struct {
		name       string
		have, want []ownedRoute
		keep       []string
		ops        []routeOp
	}{
		{name: "in sync", have: []ownedRoute{local("192.0.2.1", "tap1", 0)}, want: []ownedRoute{local("192.0.2.1", "tap1", 0)}},
		{name: "missing is added", want: []ownedRoute{local("192.0.2.1", "tap1", 0)},
			ops: []routeOp{{opAdd, local("192.0.2.1", "tap1", 0)}}},
		{name: "unwanted is deleted", have: []ownedRoute{local("192.0.2.1", "tap1", 0)},
			ops: []routeOp{{opDelete, local("192.0.2.1", "tap1", 0)}}},
		{name: "bad wanted item keeps its route", have: []ownedRoute{local("192.0.2.1", "tap1", 0)}, keep: []string{"192.0.2.1"}},
		{name: "other port is replaced in place",
			have: []ownedRoute{local("192.0.2.1", "tap1", 0)}, want: []ownedRoute{fwd("192.0.2.1", "198.51.100.2")},
			ops: []routeOp{{opReplace, fwd("192.0.2.1", "198.51.100.2")}}},
		{name: "wrong scope is rewritten", have: []ownedRoute{inexact}, want: []ownedRoute{local("192.0.2.5", "tap1", 0)},
			ops: []routeOp{{opReplace, local("192.0.2.5", "tap1", 0)}}},
		{name: "other metric: add the right one, then delete the old one",
			have: []ownedRoute{local("2001:db8::1", "tap1", 5)}, want: []ownedRoute{local("2001:db8::1", "tap1", 1024)},
			ops: []routeOp{{opAdd, local("2001:db8::1", "tap1", 1024)}, {opDelete, local("2001:db8::1", "tap1", 5)}}},
		{name: "duplicate beside the right one is deleted",
			have: []ownedRoute{local("2001:db8::1", "tap1", 1024), local("2001:db8::1", "tap2", 7)},
			want: []ownedRoute{local("2001:db8::1", "tap1", 1024)},
			ops:  []routeOp{{opDelete, local("2001:db8::1", "tap2", 7)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keep := map[routeKey]bool{}
			for _, k := range tc.keep {
				keep[routeKey{100, p(k)}] = true
			}
			got := plan(tc.have, tc.want, keep)
			if d := cmp.Diff(tc.ops, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y }),
				cmp.Comparer(func(x, y netip.Prefix) bool { return x == y })); d != "" {
				t.Errorf("plan (-want +got):\n%s", d)
			}
		})
	}
}
