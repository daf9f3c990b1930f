package fib

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roamd/roamd/labs/nstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// routedHV builds hv with a VM behind port tapvm1, the router ID on
// loopback, and an uplink to a "fabric" namespace carrying the default route
// (so proxy ARP has somewhere to route the VM's other subnet addresses).
func routedHV(t *testing.T) (hv, vm *nstest.NS, vmMAC net.HardwareAddr, f *FIB) {
	t.Helper()
	hv = newNS(t, "hv")
	fab := newNS(t, "fab")
	vm, vmMAC = addVM(t, hv, "tapvm1", "vm")
	nstest.Veth(t, hv, "up0", fab, "eth0")
	ip(t, hv, "addr add 198.51.100.11/32 dev lo")
	ip(t, hv, "addr add 198.51.100.33/30 dev up0")
	ip(t, hv, "route add default via 198.51.100.34")
	ip(t, fab, "addr add 198.51.100.34/30 dev eth0")
	f = newFIB(t, hv, testConfig(rid1))
	mustOK(t, "Setup", f.Setup())
	mustOK(t, "PreparePort", f.PreparePort("tapvm1", "default"))
	return hv, vm, vmMAC, f
}

func TestRoutedPortAndHostRoute(t *testing.T) {
	hv, vm, vmMAC, f := routedHV(t)

	// Staging (a VM announced by the migration engine): permanent entries
	// for the MAC it is said to have. InstallHost below overwrites them.
	staged := net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0xbb, 0xcc}
	mustOK(t, "StageNeighbors", f.StageNeighbors("tapvm1", staged, []netip.Addr{vm4, vm6}))
	checkNeighbors(t, hv, staged)

	for range 2 { // the second round proves idempotence
		mustOK(t, "InstallHost v4", f.InstallHost("default", vm4, "tapvm1", vmMAC))
		mustOK(t, "InstallHost v6", f.InstallHost("default", vm6, "tapvm1", vmMAC))
		mustOK(t, "PreparePort again", f.PreparePort("tapvm1", "default"))
	}

	port, err := hv.Handle.LinkByName("tapvm1")
	mustOK(t, "tapvm1", err)
	if got := port.Attrs().HardwareAddr; !bytes.Equal(got, anycastMAC) {
		t.Errorf("port MAC = %s, want the anycast MAC %s", got, anycastMAC)
	}
	if got := port.Attrs().TxQLen; got != 10000 {
		t.Errorf("port txqueuelen = %d, want 10000", got)
	}
	for key, want := range map[string]string{
		"net/ipv4/conf/tapvm1/proxy_arp":    "1",
		"net/ipv4/neigh/tapvm1/proxy_delay": "0",
		"net/ipv6/conf/tapvm1/accept_ra":    "0",
		"net/ipv4/ip_forward":               "1",
		"net/ipv6/conf/all/forwarding":      "1",
	} {
		if got := readSysctl(t, hv, key); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	checkGatewayAddrs(t, hv, port)

	// The host routes: roamd's protocol, main table, dev tapvm1, scope link
	// and the router ID as source for IPv4.
	for _, a := range []netip.Addr{vm4, vm6} {
		rs := kernelRoutes(t, hv, a, unix.RT_TABLE_MAIN)
		if len(rs) != 1 {
			t.Fatalf("routes to %s: %v, want one", a, rs)
		}
		r := rs[0]
		if r.Protocol != testProto || r.LinkIndex != port.Attrs().Index || r.Table != unix.RT_TABLE_MAIN {
			t.Errorf("route to %s = %v, want proto %d dev tapvm1 table main", a, r, testProto)
		}
		if a.Is4() && (r.Scope != netlink.SCOPE_LINK || !r.Src.Equal(rid1.AsSlice())) {
			t.Errorf("route to %s: scope %v src %v, want scope link src %s", a, r.Scope, r.Src, rid1)
		}
	}
	checkNeighbors(t, hv, vmMAC)

	// What the VM sees: its gateways and the hypervisor's router ID answer.
	waitPing(t, vm, "192.0.2.1")
	waitPing(t, vm, "198.51.100.11")
	waitPing(t, vm, "2001:db8:10::1")
	waitPing(t, vm, "fe80::1%eth0")

	// Proxy ARP: another address of the VM's subnet resolves to the anycast
	// MAC, so the VM routes everything through the hypervisor.
	_, _ = vm.Run("ping", "-c1", "-W0.2", "192.0.2.20") // makes the VM ARP
	waitNeighbor(t, vm, "eth0", netip.MustParseAddr("192.0.2.20"), anycastMAC)

	// ICMP errors for the VM come from the router ID, not the shared gateway.
	out, _ := vm.Run("ping", "-c1", "-W1", "-t1", "198.51.100.34")
	if !strings.Contains(out, "From 198.51.100.11") {
		t.Errorf("time exceeded should come from the router ID 198.51.100.11:\n%s", out)
	}

	// RemoveHost removes the route; a second RemoveHost is no error.
	for range 2 {
		mustOK(t, "RemoveHost v4", f.RemoveHost("default", vm4))
		mustOK(t, "RemoveHost v6", f.RemoveHost("default", vm6))
	}
	for _, a := range []netip.Addr{vm4, vm6} {
		if rs := kernelRoutes(t, hv, a, unix.RT_TABLE_MAIN); len(rs) != 0 {
			t.Errorf("route to %s still there after RemoveHost: %v", a, rs)
		}
	}
	noPing(t, vm, "198.51.100.11")

	// Without the router ID on the hypervisor, host routes go without a
	// preferred source instead of failing.
	ip(t, hv, "addr del 198.51.100.11/32 dev lo")
	mustOK(t, "InstallHost without a local router ID", f.InstallHost("default", vm4, "tapvm1", vmMAC))
	if rs := kernelRoutes(t, hv, vm4, unix.RT_TABLE_MAIN); len(rs) != 1 || rs[0].Src != nil {
		t.Errorf("route to %s without a local router ID: %v, want one without source", vm4, rs)
	}
	waitPing(t, vm, "192.0.2.1")
}

// checkNeighbors checks for permanent neighbour entries of the VM's two
// addresses with mac on tapvm1.
func checkNeighbors(t *testing.T, hv *nstest.NS, mac net.HardwareAddr) {
	t.Helper()
	port, err := hv.Handle.LinkByName("tapvm1")
	mustOK(t, "tapvm1", err)
	for _, a := range []netip.Addr{vm4, vm6} {
		neighs, err := hv.Handle.NeighList(port.Attrs().Index, familyOf(a))
		mustOK(t, "NeighList", err)
		i := slices.IndexFunc(neighs, func(n netlink.Neigh) bool { return n.IP.Equal(a.AsSlice()) })
		if i < 0 || neighs[i].State != netlink.NUD_PERMANENT || !bytes.Equal(neighs[i].HardwareAddr, mac) {
			t.Errorf("neighbour %s on tapvm1: %v, want permanent %s", a, neighs, mac)
		}
	}
}

func checkGatewayAddrs(t *testing.T, hv *nstest.NS, port netlink.Link) {
	t.Helper()
	addrs, err := hv.Handle.AddrList(port, netlink.FAMILY_ALL)
	mustOK(t, "AddrList", err)
	want := map[string]int{ // prefix → flags that must be set
		"192.0.2.1/32":       0,
		"fe80::1/64":         unix.IFA_F_NODAD,
		"2001:db8:10::1/128": unix.IFA_F_NODAD | unix.IFA_F_NOPREFIXROUTE,
	}
	for _, a := range addrs {
		p := a.IPNet.String()
		if flags, ok := want[p]; ok && a.Flags&flags == flags {
			delete(want, p)
		}
	}
	if len(want) != 0 {
		t.Errorf("gateway addresses missing or without nodad/noprefixroute on tapvm1: %v; have %v", want, addrs)
	}
	// No subnet route may point at the port: the VM's subnet is routed.
	routes, err := hv.Handle.RouteList(port, netlink.FAMILY_V4)
	mustOK(t, "RouteList", err)
	for _, r := range routes {
		if ones, _ := r.Dst.Mask.Size(); ones < 32 {
			t.Errorf("subnet route on the port: %v", r)
		}
	}
}

// waitNeighbor waits until ns resolves a on dev to mac.
func waitNeighbor(t *testing.T, ns *nstest.NS, dev string, a netip.Addr, mac net.HardwareAddr) {
	t.Helper()
	l, err := ns.Handle.LinkByName(dev)
	mustOK(t, dev, err)
	var neighs []netlink.Neigh
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		neighs, err = ns.Handle.NeighList(l.Attrs().Index, familyOf(a))
		mustOK(t, "NeighList", err)
		for _, n := range neighs {
			if n.IP.Equal(a.AsSlice()) && bytes.Equal(n.HardwareAddr, mac) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not a wait for a result
	}
	t.Fatalf("%s never resolved %s to %s: %v", ns.Name, a, mac, neighs)
}

func TestPortRecreatedUnderSameName(t *testing.T) {
	hv := newNS(t, "hv")
	vm, vmMAC := addVM(t, hv, "tapvm1", "vm")
	f := newFIB(t, hv, testConfig(rid1))
	mustOK(t, "Setup", f.Setup())
	mustOK(t, "PreparePort", f.PreparePort("tapvm1", "default"))
	mustOK(t, "InstallHost", f.InstallHost("default", vm4, "tapvm1", vmMAC))
	waitPing(t, vm, "192.0.2.1")

	// The hypervisor deletes the port and creates a new one of the same name
	// (a VM restarted); the FIB still has the old index cached.
	ip(t, hv, "link del tapvm1")
	vmMAC = plugVM(t, hv, "tapvm1", vm)
	port, err := hv.Handle.LinkByName("tapvm1")
	mustOK(t, "tapvm1", err)
	if port.Attrs().TxQLen == 10000 {
		t.Fatal("a fresh veth already has txqueuelen 10000: the test cannot tell")
	}
	mustOK(t, "InstallHost on the recreated port", f.InstallHost("default", vm4, "tapvm1", vmMAC))
	rs := kernelRoutes(t, hv, vm4, unix.RT_TABLE_MAIN)
	if len(rs) != 1 || rs[0].LinkIndex != port.Attrs().Index {
		t.Fatalf("route to %s: %v, want it on the new tapvm1 (index %d)", vm4, rs, port.Attrs().Index)
	}
	mustOK(t, "PreparePort on the recreated port", f.PreparePort("tapvm1", "default"))
	port, err = hv.Handle.LinkByName("tapvm1")
	mustOK(t, "tapvm1", err)
	if port.Attrs().TxQLen != 10000 || !bytes.Equal(port.Attrs().HardwareAddr, anycastMAC) {
		t.Errorf("recreated port: txqueuelen %d MAC %s, want 10000 and %s", port.Attrs().TxQLen, port.Attrs().HardwareAddr, anycastMAC)
	}
	waitPing(t, vm, "192.0.2.1")
}

func TestPortChangesTenant(t *testing.T) {
	hv := newNS(t, "hv")
	addVM(t, hv, "tapvm1", "vm")
	f := newFIB(t, hv, testConfig(rid1,
		TenantConfig{Name: "default", ID: 1, Table: 254, Gateways: []netip.Addr{vmGW4}},
		TenantConfig{Name: "blue", ID: 2, Table: 100, Gateways: []netip.Addr{vmGW4}},
	))
	rules := func(fam string) string { return hv.MustRun(t, "ip", fam, "rule", "show", "iif", "tapvm1") }
	for range 2 {
		mustOK(t, "PreparePort blue", f.PreparePort("tapvm1", "blue"))
	}
	for _, fam := range []string{"-4", "-6"} {
		if got := rules(fam); strings.Count(got, "iif tapvm1 lookup 100 proto 77") != 1 {
			t.Errorf("ip %s rule after PreparePort into blue:\n%s\nwant exactly one iif tapvm1 lookup 100 proto 77", fam, got)
		}
	}
	mustOK(t, "PreparePort default", f.PreparePort("tapvm1", "default"))
	for _, fam := range []string{"-4", "-6"} {
		if got := rules(fam); strings.TrimSpace(got) != "" {
			t.Errorf("ip %s rule after moving the port to the main table: %s, want none", fam, got)
		}
	}
}

func TestSetupRepairsForwardDevice(t *testing.T) {
	hv := newNS(t, "hv")
	f := newFIB(t, hv, testConfig(rid1,
		TenantConfig{Name: "red", ID: 101, Table: 101, Uplinks: []string{"up0"}},
	))
	isGPE := func() int {
		t.Helper()
		l, err := hv.Handle.LinkByName("roamd-fwd")
		mustOK(t, "roamd-fwd", err)
		v, ok := l.(*netlink.Vxlan)
		if !ok || !v.FlowBased || v.Learning || v.Port != 4789 || v.EncapType != "none" || v.Flags&net.FlagUp == 0 {
			t.Fatalf("roamd-fwd is not an up VXLAN-GPE metadata device on 4789 without learning: %+v", l)
		}
		return l.Attrs().Index
	}
	ip(t, hv, "link add name up0 type veth peer name up0p")
	// A plain VXLAN of that name (an older roamd, an operator) is replaced.
	ip(t, hv, "link add name roamd-fwd type vxlan id 5 dstport 4789")
	mustOK(t, "Setup", f.Setup())
	idx := isGPE()
	mustOK(t, "Setup again", f.Setup())
	if again := isGPE(); again != idx {
		t.Errorf("a second Setup recreated the right device (index %d → %d)", idx, again)
	}
	out := hv.MustRun(t, "ip", "rule")
	for _, want := range []string{"iif roamd-fwd tun_id 101 lookup 101 proto 77", "iif up0 lookup 101 proto 77"} {
		if strings.Count(out, want) != 1 {
			t.Errorf("ip rule:\n%s\nwant exactly one %q", out, want)
		}
	}
	if out := hv.MustRun(t, "ip", "route", "show", "table", "101"); !strings.Contains(out, "unreachable default proto 77 metric 4278198272") {
		t.Errorf("table 101 has no unreachable default:\n%s", out)
	}

	// Deleted under roamd's feet: ForwardHost brings it back.
	ip(t, hv, "link del roamd-fwd")
	mustOK(t, "ForwardHost without device", f.ForwardHost("red", vm4, rid2))
	isGPE()

	// Something else of that name is not roamd's to delete.
	ip(t, hv, "link del roamd-fwd")
	ip(t, hv, "link add name roamd-fwd type veth peer name other")
	if err := f.Setup(); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("Setup with a veth named roamd-fwd: err = %v, want a refusal", err)
	}
}
