package nslab

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/detect/frames"
)

// allNodesMAC is the Ethernet address of ff02::1.
var allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}

// AnnounceIPv6 makes the VM send an unsolicited neighbour advertisement
// (Override set, to ff02::1) for each global IPv6 address of its interface,
// as a guest does when its interface comes up or after a migration. It
// returns the addresses announced; a VM without global IPv6 addresses is an
// error.
func (l *Lab) AnnounceIPv6(vmName string) ([]netip.Addr, error) {
	vm := l.nodes[vmName]
	if vm == nil {
		return nil, fmt.Errorf("no node %q", vmName)
	}
	vmIface, _, err := l.vmLink(vmName)
	if err != nil {
		return nil, err
	}
	link, err := vm.Handle.LinkByName(vmIface)
	if err != nil {
		return nil, fmt.Errorf("finding %s in %s: %w", vmIface, vm.NS, err)
	}
	as, err := vm.Handle.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("listing addresses of %s in %s: %w", vmIface, vm.NS, err)
	}
	var addrs []netip.Addr
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && a.Scope == unix.RT_SCOPE_UNIVERSE {
			addrs = append(addrs, ip)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("VM %s has no global IPv6 address on %s to announce", vmName, vmIface)
	}
	conn, err := vm.OpenSender(vmIface)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	mac := link.Attrs().HardwareAddr
	for _, a := range addrs {
		if _, err := conn.WriteTo(frames.UnsolicitedNA(mac, a, false), &packet.Addr{HardwareAddr: allNodesMAC}); err != nil {
			return nil, fmt.Errorf("sending a neighbour advertisement for %s from %s: %w", a, vmName, err)
		}
	}
	return addrs, nil
}
