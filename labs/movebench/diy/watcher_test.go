package diy

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/detect/frames"
	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nstest"
)

var (
	gatewayMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	vmMAC      = net.HardwareAddr{0x52, 0x54, 0x00, 0x10, 0x00, 0x10}
	vmAddr     = netip.MustParseAddr("10.10.0.10")
)

// hostRoute returns the hypervisor's route for exactly the VM's /32, if any.
func hostRoute(t *testing.T, hv *nstest.NS) *netlink.Route {
	t.Helper()
	filter := &netlink.Route{Dst: &net.IPNet{IP: vmAddr.AsSlice(), Mask: net.CIDRMask(32, 32)}, Table: unix.RT_TABLE_MAIN}
	rs, err := hv.Handle.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) == 0 {
		return nil
	}
	return &rs[0]
}

// plugVM gives hv a VM port named port whose other end is the VM's eth0.
func plugVM(t *testing.T, hv *nstest.NS, port string, vm *nstest.NS) {
	t.Helper()
	nstest.Veth(t, hv, port, vm, "eth0")
	vm.MustRun(t, "ip", "link", "set", "eth0", "address", vmMAC.String())
	vm.MustRun(t, "ip", "addr", "add", "10.10.0.10/24", "dev", "eth0")
	vm.MustRun(t, "ip", "route", "add", "default", "via", "10.10.0.1")
}

func TestWatcherRoutesAnnouncedVMAndReplugsPorts(t *testing.T) {
	hv := nstest.New(t, "hv")
	uplink := nstest.New(t, "up")
	vm := nstest.New(t, "vm")
	// The hypervisor's default route points at its uplink, as at a leaf:
	// proxy ARP answers for addresses routed out of another interface.
	nstest.Veth(t, hv, "eth1", uplink, "eth1")
	hv.MustRun(t, "ip", "addr", "add", "198.51.100.3/31", "dev", "eth1")
	hv.MustRun(t, "ip", "addr", "add", "192.0.2.11/32", "dev", "lo")
	hv.MustRun(t, "ip", "route", "add", "default", "via", "198.51.100.2")
	uplink.MustRun(t, "ip", "addr", "add", "198.51.100.2/31", "dev", "eth1")
	if err := hv.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	plugVM(t, hv, "tapvm1", vm)

	w, err := Start(hv, hv.Handle, Config{Ports: "tap*", GatewayMAC: gatewayMAC, Hosts: map[string]netip.Addr{vmMAC.String(): vmAddr}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The port that was there before the watcher started is plumbed.
	err = nslab.Poll(ctx, "tapvm1 with the gateway MAC", func(context.Context) (bool, string, error) {
		l, err := hv.Handle.LinkByName("tapvm1")
		if err != nil {
			return false, "", err
		}
		return bytes.Equal(l.Attrs().HardwareAddr, gatewayMAC), l.Attrs().HardwareAddr.String(), w.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := hostRoute(t, hv); r != nil {
		t.Fatalf("a route for the VM before it announced itself: %v", r)
	}

	// The guest's boot announcement routes it; the VM then reaches the
	// hypervisor's loopback through its gateway (proxy ARP).
	announceUntilRouted(t, ctx, hv, vm, frames.GratuitousARP(vmMAC, vmAddr), "tapvm1")
	if out, err := vm.Run("ping", "-c", "1", "-W", "2", "192.0.2.11"); err != nil {
		t.Fatalf("the VM cannot reach the hypervisor through the routed port: %v\n%s", err, out)
	}
	neigh := vm.MustRun(t, "ip", "neigh", "show", "10.10.0.1")
	if !strings.Contains(neigh, gatewayMAC.String()) {
		t.Errorf("the VM's gateway entry %q does not hold the gateway MAC %s", neigh, gatewayMAC)
	}

	// The port goes (QEMU quit): the kernel drops the route. A port of the
	// same name comes back (the VM migrated back) and the VM's RARP routes
	// it there again.
	vm.MustRun(t, "ip", "link", "del", "eth0")
	if r := hostRoute(t, hv); r != nil {
		t.Fatalf("the route outlived its port: %v", r)
	}
	plugVM(t, hv, "tapvm1", vm)
	announceUntilRouted(t, ctx, hv, vm, frames.RARP(vmMAC), "tapvm1")

	ins := w.Installs()
	if len(ins) != 2 || ins[0].Trigger != "garp" || ins[1].Trigger != "rarp" {
		t.Errorf("installs %+v, want one on the gratuitous ARP, one on the RARP", ins)
	}
	if err := w.Err(); err != nil {
		t.Error(err)
	}
}

// announceUntilRouted sends frame from the VM (repeating while the watcher
// may still be opening its capture) until the hypervisor routes the VM to
// port with protocol static.
func announceUntilRouted(t *testing.T, ctx context.Context, hv, vm *nstest.NS, frame []byte, port string) {
	t.Helper()
	err := nslab.Poll(ctx, "the VM routed to "+port, func(context.Context) (bool, string, error) {
		if err := vm.SendFrame("eth0", frame); err != nil {
			return false, "", nslab.Abort(err)
		}
		r := hostRoute(t, hv)
		if r == nil {
			return false, "no route", nil
		}
		l, err := hv.Handle.LinkByIndex(r.LinkIndex)
		if err != nil {
			return false, "", err
		}
		return l.Attrs().Name == port && r.Protocol == unix.RTPROT_STATIC, r.String(), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
