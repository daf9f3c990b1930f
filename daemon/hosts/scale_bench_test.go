package hosts

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
)

// The cost of one input must not grow with the number of hosts the fabric
// announces: a hypervisor learns every other site's claims (100,000 in
// labs/scale) and still has to claim an arriving VM within a millisecond.
// Run: go test -run '^$' -bench . ./daemon/hosts/

// learnedTable returns a table holding n hosts claimed elsewhere, each with
// its own MAC, as the fabric's routes bring them.
func learnedTable(n int) *Table {
	t := New(Policy{
		Self:    self,
		Tenants: []TenantPolicy{{Name: "default", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Gateways: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}},
	})
	for i := range n {
		k, c := learnedClaim(i)
		t.Apply(RemoteClaims{Time: t0, Key: k, Claims: []Claim{c}})
	}
	t.Apply(PortUp{Time: t0, Port: "tap0", Tenant: "default"})
	return t
}

// learnedClaim is hv2's claim on the i-th learned host, 10.128.0.0 + i.
func learnedClaim(i int) (Key, Claim) {
	a := netip.AddrFrom4([4]byte{10, 128 + byte(i>>16), byte(i >> 8), byte(i)})
	m := net.HardwareAddr{0x52, 0x54, 0x01, byte(i >> 16), byte(i >> 8), byte(i)}
	return Key{Tenant: "default", Addr: a}, Claim{Origin: hvB, Seq: 1, MAC: m}
}

// BenchmarkLearnedClaim is one more route from the fabric.
func BenchmarkLearnedClaim(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 30_000} {
		b.Run(fmt.Sprintf("learned=%d", n), func(b *testing.B) {
			t := learnedTable(n)
			b.ResetTimer()
			for i := range b.N {
				k, c := learnedClaim(n + i)
				t.Apply(RemoteClaims{Time: t0, Key: k, Claims: []Claim{c}})
			}
		})
	}
}

// BenchmarkArrival is a new VM's gratuitous ARP (each its own MAC: one MAC
// with thousands of addresses would time that MAC's sibling loop instead).
func BenchmarkArrival(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 30_000} {
		b.Run(fmt.Sprintf("learned=%d", n), func(b *testing.B) {
			t := learnedTable(n)
			b.ResetTimer()
			for i := range b.N {
				a := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
				if a.As4()[3] == 0 || a.As4()[3] == 1 {
					continue
				}
				vm := net.HardwareAddr{0x52, 0x54, 0x02, byte(i >> 16), byte(i >> 8), byte(i)}
				acts := t.Apply(Frame{Time: t0, Port: "tap0", Source: SourceGARP, MAC: vm, Addr: a, EthSrc: vm})
				if len(acts) == 0 {
					b.Fatalf("no actions for the arrival of %s", a)
				}
			}
		})
	}
}

// BenchmarkLearnedMemory reports what the table holds per host learned from
// the fabric (labs/scale learns 100,000).
func BenchmarkLearnedMemory(b *testing.B) {
	const n = 100_000
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		t := learnedTable(n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/host")
		runtime.KeepAlive(t)
	}
}
