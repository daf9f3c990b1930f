package scale

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/roamd/roamd/labs/nstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VM is one VM: its end of a veth pair in the VM namespace, whose other end
// is its port on a hypervisor.
type VM struct {
	Port    string // the port's name on the hypervisor
	Iface   string // the VM's interface in the VM namespace
	Ifindex int    // of Iface, in the VM namespace
	MAC     net.HardwareAddr
	Addr    netip.Addr
}

// QuietVMNamespace turns IPv6 off in a namespace that holds many VM ends,
// before they are created: thousands of interfaces doing DAD and router
// solicitation would flood the ports with frames no benchmark asked for.
func QuietVMNamespace(ns *nstest.NS) error {
	for _, k := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"} {
		if err := ns.Sysctl(k, "1"); err != nil {
			return err
		}
	}
	return nil
}

// WireVMs creates n VMs: veth pairs with the port (portPrefix + i) up in
// the hypervisor namespace hv (a netlink handle there), and the VM end
// (ifPrefix + i, MAC 52:54:<i+1 in 4 bytes>, address first + i) up in vms.
// One netlink request per pair plus two for the VM end: 4,096 VMs take
// seconds, not the minutes `ip` would. Wiring the same VMs again with other
// prefixes gives each a second port with the same MAC (a migration's
// destination tap).
func WireVMs(tb testing.TB, hv *netlink.Handle, vms *nstest.NS, n int, portPrefix, ifPrefix string, first netip.Addr) []VM {
	tb.Helper()
	out := make([]VM, 0, n)
	addr := first
	for i := range n {
		id := uint32(i + 1)
		vm := VM{
			Port:  fmt.Sprintf("%s%d", portPrefix, i),
			Iface: fmt.Sprintf("%s%d", ifPrefix, i),
			MAC:   net.HardwareAddr{0x52, 0x54, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)},
			Addr:  addr,
		}
		addr = addr.Next()
		err := hv.LinkAdd(&netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: vm.Port, Flags: net.FlagUp},
			PeerName:         vm.Iface,
			PeerHardwareAddr: vm.MAC,
			PeerNamespace:    netlink.NsFd(vms.Fd()),
		})
		if err != nil {
			tb.Fatalf("adding veth %s/%s: %v", vm.Port, vm.Iface, err)
		}
		l, err := vms.Handle.LinkByName(vm.Iface)
		if err == nil {
			err = vms.Handle.LinkSetUp(l)
		}
		if err != nil {
			tb.Fatalf("bringing %s up in %s: %v", vm.Iface, vms.Name, err)
		}
		vm.Ifindex = l.Attrs().Index
		out = append(out, vm)
	}
	return out
}

// Sender writes raw Ethernet frames out of any interface of one namespace
// through a single packet socket: a VM "sending" a frame. (mdlayher/packet
// binds a socket to one interface; with thousands of VMs one unbound
// socket and sendto per frame is what scales.)
type Sender struct{ fd int }

// NewSender opens the socket in ns; Cleanup closes it.
func NewSender(tb testing.TB, ns *nstest.NS) *Sender {
	tb.Helper()
	s := &Sender{fd: -1}
	err := ns.Do(func() error {
		// Protocol 0: the socket receives nothing, it only sends.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		s.fd = fd
		return err
	})
	if err != nil {
		tb.Fatalf("opening a packet socket in %s: %v", ns.Name, err)
	}
	tb.Cleanup(func() { unix.Close(s.fd) })
	return s
}

// Send transmits frame out of the interface with index ifindex.
func (s *Sender) Send(ifindex int, frame []byte) error {
	to := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6}
	copy(to.Addr[:], frame[0:6])
	if err := unix.Sendto(s.fd, frame, 0, to); err != nil {
		return fmt.Errorf("sending a frame out of interface %d: %w", ifindex, err)
	}
	return nil
}
