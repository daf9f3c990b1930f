package probe

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/labs/nstest"
)

// TestProbeRealVM probes a VM namespace behind a routed port: the kernel of
// the VM answers for its own addresses (ARP, NDP, echo) and nobody answers
// for a missing VM. Needs root.
func TestProbeRealVM(t *testing.T) {
	hv := nstest.New(t, "hv")
	vm := nstest.New(t, "vm")
	for _, ns := range []*nstest.NS{hv, vm} {
		for _, k := range []string{"all", "default"} {
			if err := ns.Do(func() error {
				return os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/accept_dad", []byte("0"), 0o644)
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	port := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: "tapvm1", HardwareAddr: gatewayMAC},
		PeerName:         "eth1",
		PeerHardwareAddr: ownerMAC,
		PeerNamespace:    netlink.NsFd(vm.Fd()),
	}
	if err := hv.Handle.LinkAdd(port); err != nil {
		t.Fatalf("creating the port: %v", err)
	}
	// The hypervisor side holds the gateway addresses, as roamd's routed
	// port does; the VM its own addresses.
	for _, c := range []struct {
		ns   *nstest.NS
		args []string
	}{
		{hv, []string{"ip", "addr", "add", "10.10.0.1/24", "dev", "tapvm1"}},
		{hv, []string{"ip", "addr", "add", "2001:db8:10::1/64", "dev", "tapvm1", "nodad"}},
		{hv, []string{"ip", "link", "set", "tapvm1", "up"}},
		{vm, []string{"ip", "addr", "add", "10.10.0.10/24", "dev", "eth1"}},
		{vm, []string{"ip", "addr", "add", "2001:db8:10::10/64", "dev", "eth1", "nodad"}},
		{vm, []string{"ip", "link", "set", "eth1", "up"}},
	} {
		if _, err := c.ns.Run(c.args...); err != nil {
			t.Fatal(err)
		}
	}
	waitUp(t, hv, "tapvm1")
	// A VM answers solicitations from link-local sources once it has its
	// own link-local address (and the route that comes with it).
	waitLinkLocal(t, vm, "eth1")

	p := New(Options{
		Interval:   150 * time.Millisecond,
		GatewayMAC: gatewayMAC,
		Source:     gatewaySource,
	})
	missing4 := netip.MustParseAddr("10.10.0.11")
	missing6 := netip.MustParseAddr("2001:db8:10::11")
	tests := []struct {
		name string
		req  Request
		want bool
	}{
		{"local IPv4 owner", Request{Addr: owner4, MAC: ownerMAC, Port: "tapvm1"}, true},
		{"local IPv6 owner", Request{Addr: owner6, MAC: ownerMAC, Port: "tapvm1"}, true},
		{"local IPv4 missing", Request{Addr: missing4, MAC: ownerMAC, Port: "tapvm1"}, false},
		{"local IPv6 missing", Request{Addr: missing6, MAC: ownerMAC, Port: "tapvm1"}, false},
		// The VM answers, but it is not the MAC the address is bound to.
		{"local IPv4 another MAC", Request{Addr: owner4, MAC: hostileMAC, Port: "tapvm1"}, false},
		{"local port gone", Request{Addr: owner4, MAC: ownerMAC, Port: "tapgone"}, false},
		{"remote IPv4 owner", Request{Addr: owner4, MAC: ownerMAC}, true},
		{"remote IPv6 owner", Request{Addr: owner6, MAC: ownerMAC}, true},
		{"remote IPv4 missing", Request{Addr: missing4, MAC: ownerMAC}, false},
		{"remote IPv6 missing", Request{Addr: missing6, MAC: ownerMAC}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got bool
			if err := hv.Do(func() error {
				got = p.Probe(context.Background(), tc.req)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Probe(%s) = %v, want %v", tc.req, got, tc.want)
			}
		})
	}
}

// waitUp waits until the port has carrier (the veth passes it on a little
// after both ends are up).
func waitUp(t *testing.T, ns *nstest.NS, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := ns.Handle.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if l.Attrs().OperState == netlink.OperUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no carrier after 5 s", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLinkLocal waits until the interface has an IPv6 link-local address
// that is no longer tentative.
func waitLinkLocal(t *testing.T, ns *nstest.NS, name string) {
	t.Helper()
	l, err := ns.Handle.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		as, err := ns.Handle.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if a.IP.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s has no IPv6 link-local address after 10 s: %v", name, ns.Name, as)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
