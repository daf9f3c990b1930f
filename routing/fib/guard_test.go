package fib

import (
	"net"
	"testing"
	"time"

	"github.com/roamd/roamd/labs/nstest"
)

// TestGuardKeepsVMsAwayFromRoamdPorts: UDP to a guarded port is dropped when
// it comes from a VM port (here: to the VM's own gateway address), and still
// delivered when it comes from the underlay.
func TestGuardKeepsVMsAwayFromRoamdPorts(t *testing.T) {
	hv := newNS(t, "hv")
	ul := newNS(t, "ul")
	ip(t, hv, "addr add 198.51.100.11/32 dev lo")
	cfg := testConfig(rid1)
	cfg.GuardUDPPorts = []int{4790}
	f := newFIB(t, hv, cfg)
	if err := f.Setup(); err != nil {
		t.Fatal(err)
	}
	vm, mac := addVM(t, hv, "tapvm1", "vm")
	if err := f.PreparePort("tapvm1", "default"); err != nil {
		t.Fatal(err)
	}
	if err := f.InstallHost("default", vm4, "tapvm1", mac); err != nil {
		t.Fatal(err)
	}
	nstest.Veth(t, hv, "ul0", ul, "eth0")
	ip(t, hv, "addr add 203.0.113.1/24 dev ul0")
	ip(t, ul, "addr add 203.0.113.2/24 dev eth0")

	var srv *net.UDPConn
	if err := hv.Do(func() (err error) {
		srv, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 4790})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	got := make(chan string, 16)
	go func() {
		buf := make([]byte, 64)
		for {
			n, _, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	send := func(from interface{ Do(func() error) error }, to, msg string) {
		t.Helper()
		if err := from.Do(func() error {
			c, err := net.Dial("udp4", to)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte(msg))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitPing(t, vm, "192.0.2.1") // the VM reaches its gateway: the port works
	send(vm, "192.0.2.1:4790", "from-vm")
	send(ul, "203.0.113.1:4790", "from-underlay")
	select {
	case m := <-got:
		if m != "from-underlay" {
			t.Fatalf("received %q first: the guard let a VM's datagram through", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the underlay's datagram was not delivered")
	}
	send(vm, "198.51.100.11:4790", "from-vm-to-router-id")
	send(ul, "203.0.113.1:4790", "from-underlay-again")
	if m := <-got; m != "from-underlay-again" {
		t.Fatalf("received %q: the guard let a VM's datagram through", m)
	}
}
