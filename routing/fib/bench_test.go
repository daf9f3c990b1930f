package fib

import (
	"testing"
)

// benchFIB is a hypervisor namespace with a prepared port and the forward
// device, as before a move.
func benchFIB(b *testing.B) *FIB {
	b.Helper()
	hv := newNS(b, "hv")
	addVM(b, hv, "tapvm1", "vm")
	ip(b, hv, "addr add 198.51.100.11/32 dev lo")
	f := newFIB(b, hv, testConfig(rid1))
	mustOK(b, "Setup", f.Setup())
	mustOK(b, "PreparePort", f.PreparePort("tapvm1", "default"))
	return f
}

// BenchmarkInstallHost measures the arriving side of a move: neighbour entry
// plus route replace for a host whose route is forwarding elsewhere.
func BenchmarkInstallHost(b *testing.B) {
	f := benchFIB(b)
	mac := []byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	for b.Loop() {
		b.StopTimer()
		mustOK(b, "ForwardHost", f.ForwardHost("default", vm4, rid2))
		b.StartTimer()
		if err := f.InstallHost("default", vm4, "tapvm1", mac); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForwardHost measures the leaving side: replacing the local route
// by the tunnel to the new site.
func BenchmarkForwardHost(b *testing.B) {
	f := benchFIB(b)
	mac := []byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	for b.Loop() {
		b.StopTimer()
		mustOK(b, "InstallHost", f.InstallHost("default", vm4, "tapvm1", mac))
		b.StartTimer()
		if err := f.ForwardHost("default", vm4, rid2); err != nil {
			b.Fatal(err)
		}
	}
}
