package fib

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/roamd/roamd/labs/nstest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Helpers shared by the privileged tests: namespaces, FIBs inside them,
// and checks a user would make (ping, neighbour tables, sysctls).

const testProto = 77

var anycastMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}

var (
	vmGW4 = netip.MustParseAddr("192.0.2.1")
	vmGW6 = netip.MustParseAddr("2001:db8:10::1")
	vmLL  = netip.MustParseAddr("fe80::1")
	vm4   = netip.MustParseAddr("192.0.2.10")
	vm6   = netip.MustParseAddr("2001:db8:10::10")
	rid1  = netip.MustParseAddr("198.51.100.11")
	rid2  = netip.MustParseAddr("198.51.100.12")
)

func testConfig(routerID netip.Addr, tenants ...TenantConfig) Config {
	if len(tenants) == 0 {
		tenants = []TenantConfig{{Name: "default", ID: 1, Table: 254, Gateways: []netip.Addr{vmGW4, vmLL, vmGW6}}}
	}
	return Config{
		Protocol:      testProto,
		GatewayMAC:    anycastMAC,
		RouterID:      routerID,
		RulePriority:  1000,
		TxQueueLen:    10000,
		ForwardDevice: "roamd-fwd",
		ForwardPort:   4789,
		Tenants:       tenants,
	}
}

// newNS creates a namespace with IPv6 DAD off, so addresses are usable at once.
func newNS(t testing.TB, name string) *nstest.NS {
	t.Helper()
	ns := nstest.New(t, name)
	for _, k := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
		if err := ns.Sysctl(k, "0"); err != nil {
			t.Fatalf("%s in %s: %v", k, ns.Name, err)
		}
	}
	return ns
}

// newFIB returns a FIB programming ns, with sysctls written inside ns.
func newFIB(t testing.TB, ns *nstest.NS, cfg Config) *FIB {
	t.Helper()
	sysctl := func(key, value string) error {
		return ns.Do(func() error { return ProcSysctl(key, value) })
	}
	f, err := New(cfg, netns.NsHandle(ns.Fd()), sysctl, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return f
}

// ip runs one ip(8) command (written as one string) in ns.
func ip(t testing.TB, ns *nstest.NS, cmd string) {
	t.Helper()
	ns.MustRun(t, append([]string{"ip"}, strings.Fields(cmd)...)...)
}

// addVM attaches a "VM" namespace to hv through a veth whose hv end is the
// port. It returns the namespace and the VM's MAC.
func addVM(t testing.TB, hv *nstest.NS, port, name string) (*nstest.NS, net.HardwareAddr) {
	t.Helper()
	vm := newNS(t, name)
	return vm, plugVM(t, hv, port, vm)
}

// plugVM (re)creates the veth between hv's port and vm's eth0 and configures
// the VM: 192.0.2.10/24 and 2001:db8:10::10/64, default routes via the
// anycast gateways. It returns the VM's MAC.
func plugVM(t testing.TB, hv *nstest.NS, port string, vm *nstest.NS) net.HardwareAddr {
	t.Helper()
	_, eth := nstest.Veth(t, hv, port, vm, "eth0")
	ip(t, vm, "addr add 192.0.2.10/24 dev eth0")
	ip(t, vm, "route add default via 192.0.2.1")
	ip(t, vm, "-6 addr add 2001:db8:10::10/64 dev eth0 nodad")
	ip(t, vm, "-6 route add default via fe80::1 dev eth0")
	return eth.Attrs().HardwareAddr
}

// waitPing pings dst from ns until one echo comes back or 5 s pass.
func waitPing(t testing.TB, ns *nstest.NS, dst string, args ...string) string {
	t.Helper()
	var out string
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		out, err = ns.Run(append(append([]string{"ping", "-c1", "-W1"}, args...), dst)...)
		if err == nil {
			return out
		}
	}
	t.Fatalf("no echo from %s in %s: %v\n%s", dst, ns.Name, err, out)
	return ""
}

// noPing asserts that dst does not answer from ns.
func noPing(t testing.TB, ns *nstest.NS, dst string) {
	t.Helper()
	if out, err := ns.Run("ping", "-c1", "-W0.5", dst); err == nil {
		t.Fatalf("%s answered from %s, want no answer:\n%s", dst, ns.Name, out)
	}
}

// readSysctl reads a sysctl (slash form) inside ns.
func readSysctl(t testing.TB, ns *nstest.NS, key string) string {
	t.Helper()
	var v []byte
	err := ns.Do(func() (err error) {
		v, err = os.ReadFile("/proc/sys/" + key)
		return err
	})
	if err != nil {
		t.Fatalf("reading %s in %s: %v", key, ns.Name, err)
	}
	return strings.TrimSpace(string(v))
}

// kernelRoutes lists the routes to dst in table of ns, through the library.
func kernelRoutes(t testing.TB, ns *nstest.NS, dst netip.Addr, table int) []netlink.Route {
	t.Helper()
	filter := &netlink.Route{Table: table, Dst: ipNet(hostPrefix(dst))}
	rs, err := ns.Handle.RouteListFiltered(familyOf(dst), filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
	if err != nil {
		t.Fatalf("listing routes to %s table %d in %s: %v", dst, table, ns.Name, err)
	}
	return rs
}

// linkStats returns a link's counters in ns.
func linkStats(t testing.TB, ns *nstest.NS, name string) *netlink.LinkStatistics {
	t.Helper()
	l, err := ns.Handle.LinkByName(name)
	if err != nil {
		t.Fatalf("%s in %s: %v", name, ns.Name, err)
	}
	return l.Attrs().Statistics
}

func mustOK(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
