package fib

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/roamd/roamd/labs/nstest"
)

// twoSites joins hv1 and hv2 by an underlay link with routes between their
// loopbacks (router IDs 198.51.100.11/.12, IPv6 2001:db8:ff:1::11/::12).
// hv2 routes the client networks back through hv1.
func twoSites(t *testing.T) (hv1, hv2 *nstest.NS) {
	t.Helper()
	hv1, hv2 = newNS(t, "hv1"), newNS(t, "hv2")
	nstest.Veth(t, hv1, "u1", hv2, "u2")
	for _, c := range []struct {
		ns            *nstest.NS
		dev, self, lo string
		peer4, peer6  string
		peerLo4       string
		peerLo6       string
	}{
		{hv1, "u1", "1", "11", "198.51.100.2", "2001:db8:ff::2", "198.51.100.12/32", "2001:db8:ff:1::12/128"},
		{hv2, "u2", "2", "12", "198.51.100.1", "2001:db8:ff::1", "198.51.100.11/32", "2001:db8:ff:1::11/128"},
	} {
		ip(t, c.ns, "addr add 198.51.100."+c.self+"/30 dev "+c.dev)
		ip(t, c.ns, "-6 addr add 2001:db8:ff::"+c.self+"/64 dev "+c.dev+" nodad")
		ip(t, c.ns, "addr add 198.51.100."+c.lo+"/32 dev lo")
		ip(t, c.ns, "-6 addr add 2001:db8:ff:1::"+c.lo+"/128 dev lo")
		ip(t, c.ns, "route add "+c.peerLo4+" via "+c.peer4)
		ip(t, c.ns, "-6 route add "+c.peerLo6+" via "+c.peer6)
	}
	return hv1, hv2
}

// addClient attaches a client namespace to hv on dev, in net 198.51.100.<base>/27
// and 2001:db8:<net6>::/64, the hypervisor taking the first address.
func addClient(t *testing.T, hv *nstest.NS, dev, name, base, net6 string) *nstest.NS {
	t.Helper()
	cl := newNS(t, name)
	nstest.Veth(t, hv, dev, cl, "eth0")
	b := netip.MustParseAddr("198.51.100." + base)
	gw, self := b.Next(), b.Next().Next()
	ip(t, hv, "addr add "+gw.String()+"/27 dev "+dev)
	ip(t, hv, "-6 addr add 2001:db8:"+net6+"::1/64 dev "+dev+" nodad")
	ip(t, cl, "addr add "+self.String()+"/27 dev eth0")
	ip(t, cl, "route add default via "+gw.String())
	ip(t, cl, "-6 addr add 2001:db8:"+net6+"::2/64 dev eth0 nodad")
	ip(t, cl, "-6 route add default via 2001:db8:"+net6+"::1")
	return cl
}

func TestForwardToNewSite(t *testing.T) {
	hv1, hv2 := twoSites(t)
	cl := addClient(t, hv1, "cl0", "client", "64", "99")
	ip(t, hv2, "route add 198.51.100.64/27 via 198.51.100.1")
	ip(t, hv2, "-6 route add 2001:db8:99::/64 via 2001:db8:ff::1")

	// The VM runs behind hv2 ...
	_, vmMAC := addVM(t, hv2, "tapvm1", "vm")
	f2 := newFIB(t, hv2, testConfig(rid2))
	mustOK(t, "hv2 Setup", f2.Setup())
	mustOK(t, "hv2 PreparePort", f2.PreparePort("tapvm1", "default"))
	mustOK(t, "hv2 InstallHost", f2.InstallHost("default", vm4, "tapvm1", vmMAC))
	mustOK(t, "hv2 InstallHost", f2.InstallHost("default", vm6, "tapvm1", vmMAC))

	// ... and hv1, where it ran before, forwards what still arrives there.
	f1 := newFIB(t, hv1, testConfig(rid1))
	mustOK(t, "hv1 Setup", f1.Setup())
	for _, underlay := range []struct {
		name string
		to   netip.Addr
	}{{"IPv4 underlay", rid2}, {"IPv6 underlay", netip.MustParseAddr("2001:db8:ff:1::12")}} {
		t.Run(underlay.name, func(t *testing.T) {
			for range 2 {
				mustOK(t, "ForwardHost v4", f1.ForwardHost("default", vm4, underlay.to))
				mustOK(t, "ForwardHost v6", f1.ForwardHost("default", vm6, underlay.to))
			}
			routes, err := f1.Routes()
			mustOK(t, "Routes", err)
			want := []Route{
				{Tenant: "default", Addr: vm4, ForwardTo: underlay.to},
				{Tenant: "default", Addr: vm6, ForwardTo: underlay.to},
			}
			if d := cmp.Diff(want, routes, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); d != "" {
				t.Fatalf("hv1 routes: only forwarding, no local route (-want +got):\n%s", d)
			}
			before := linkStats(t, hv2, "roamd-fwd").RxPackets
			waitPing(t, cl, vm4.String())
			waitPing(t, cl, vm6.String())
			if after := linkStats(t, hv2, "roamd-fwd").RxPackets; after < before+2 {
				t.Errorf("hv2's forward device received %d packets, want the echoes tunnelled (>= 2)", after-before)
			}
		})
	}

	// Moving back: InstallHost replaces the forwarding route in place.
	ip(t, hv1, "link add name tapvm1 type veth peer name tapvm1p")
	mustOK(t, "hv1 PreparePort", f1.PreparePort("tapvm1", "default"))
	mustOK(t, "hv1 InstallHost", f1.InstallHost("default", vm4, "tapvm1", vmMAC))
	routes, err := f1.Routes()
	mustOK(t, "Routes", err)
	if len(routes) != 2 || routes[0] != (Route{Tenant: "default", Addr: vm4, Port: "tapvm1"}) {
		t.Errorf("hv1 routes after the host came back: %v, want %s local on tapvm1", routes, vm4)
	}
}
