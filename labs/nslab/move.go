package nslab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/detect/frames"
)

// MoveKind says how a VM shows up at its destination.
type MoveKind int

// Move kinds.
const (
	// Live is a live migration: the VM resumes on the destination with its
	// state intact and QEMU announces it with RARP frames.
	Live MoveKind = iota
	// Cold is an HA restart: the VM boots on the destination and its OS
	// announces itself with one gratuitous ARP.
	Cold
)

func (k MoveKind) String() string {
	if k == Cold {
		return "cold"
	}
	return "live"
}

// RARPSchedule is when QEMU sends its RARP announcements after a VM resumes
// (announce-self: initial 50 ms, step 100 ms, 5 rounds).
var RARPSchedule = []time.Duration{0, 50 * time.Millisecond, 200 * time.Millisecond, 450 * time.Millisecond, 800 * time.Millisecond}

// Move describes moving a VM to another hypervisor.
type Move struct {
	// VM is the VM node; its one link leads to its port on a hypervisor.
	VM string
	// To is the destination hypervisor node.
	To   string
	Kind MoveKind
	// Pause is how long the port stays away (parked) between leaving its
	// hypervisor and appearing on the destination: the migration's
	// switchover, or the seconds an HA restart takes.
	Pause time.Duration
	// Away, if set, runs while the port is parked (a test checks what the
	// old site did); the port stays away for at least Pause and until Away
	// returns. An error from Away ends the move with the port parked.
	Away func(ctx context.Context) error
	// Boot is the time from the port coming up on the destination to the
	// VM's first frame (for a cold move, the guest's boot; QEMU announces a
	// live VM as soon as it resumes).
	Boot time.Duration
	// GARP makes a live move send a gratuitous ARP with each RARP, as a
	// virtio guest does on a migration.
	GARP bool
}

// MoveReport says when each step of a move happened.
type MoveReport struct {
	Move
	From string
	Port string
	// Start is when the port started to leave From; Left when it was gone
	// from From (in the parking namespace).
	Start, Left time.Time
	// Arrived is when the port was in To and up; CarrierUp when the VM's
	// own interface had carrier again (a veth takes a few to several
	// hundred ms to pass carrier on; a real tap is up long before the VM
	// resumes, so the announcements start only then).
	Arrived, CarrierUp time.Time
	// Frames are the announcements the VM sent after arriving.
	Frames []SentFrame
}

// SentFrame is one frame a VM sent to announce itself.
type SentFrame struct {
	Kind string // "rarp" or "garp"
	At   time.Time
}

// vmLink returns the VM node's interface and the name of its port (the
// other end of its one link).
func (l *Lab) vmLink(vm string) (vmIface, port string, err error) {
	n := l.nodes[vm]
	if n == nil {
		return "", "", fmt.Errorf("no node %q", vm)
	}
	var found []string
	for _, link := range l.Topology.Links {
		switch vm {
		case link.A.Node:
			vmIface, port = link.A.Interface, link.B.Interface
			found = append(found, link.B.String())
		case link.B.Node:
			vmIface, port = link.B.Interface, link.A.Interface
			found = append(found, link.A.String())
		}
	}
	if len(found) != 1 {
		return "", "", fmt.Errorf("VM %s must have exactly one link (to its port on a hypervisor), has %v", vm, found)
	}
	return vmIface, port, nil
}

// PortLocation returns the node whose namespace holds the VM's port now
// ("" while it is parked between hypervisors).
func (l *Lab) PortLocation(vm string) (string, error) {
	_, port, err := l.vmLink(vm)
	if err != nil {
		return "", err
	}
	for _, n := range l.Nodes() {
		if _, err := n.Handle.LinkByName(port); err == nil {
			return n.Name, nil
		}
	}
	return "", nil
}

// Unplug takes the VM's port away from the hypervisor holding it into the
// parking namespace, as when the source tap of a migration or the old
// host's VM disappears: the hypervisor sees the port go.
func (l *Lab) Unplug(vm string) (from string, at time.Time, err error) {
	src, link, err := l.portLink(vm)
	if err != nil {
		return "", time.Time{}, err
	}
	at, err = l.unplug(src, link)
	return src.Name, at, err
}

// portLink finds the hypervisor holding the VM's port and the port itself.
func (l *Lab) portLink(vm string) (*Node, netlink.Link, error) {
	_, port, err := l.vmLink(vm)
	if err != nil {
		return nil, nil, err
	}
	from, err := l.PortLocation(vm)
	if err != nil {
		return nil, nil, err
	}
	if from == "" {
		return nil, nil, fmt.Errorf("port %s of %s is not on a hypervisor", port, vm)
	}
	src := l.nodes[from]
	link, err := src.Handle.LinkByName(port)
	if err != nil {
		return nil, nil, fmt.Errorf("finding %s in %s: %w", port, src.NS, err)
	}
	return src, link, nil
}

// unplug is the one netlink call that takes the port away.
func (l *Lab) unplug(src *Node, link netlink.Link) (time.Time, error) {
	if err := src.Handle.LinkSetNsFd(link, l.park.Fd()); err != nil {
		return time.Time{}, fmt.Errorf("moving %s out of %s: %w", link.Attrs().Name, src.NS, err)
	}
	return time.Now(), nil
}

// Plug moves the VM's parked port into hypervisor to and sets it up, as
// libvirt and QEMU bring a tap up.
func (l *Lab) Plug(vm, to string) (time.Time, error) {
	_, port, err := l.vmLink(vm)
	if err != nil {
		return time.Time{}, err
	}
	dst, err := l.nodeWithRole(to, RoleRoamd)
	if err != nil {
		return time.Time{}, err
	}
	link, err := l.park.Handle.LinkByName(port)
	if err != nil {
		return time.Time{}, fmt.Errorf("port %s of %s is not parked (unplug it first): %w", port, vm, err)
	}
	if err := l.park.Handle.LinkSetNsFd(link, dst.Fd()); err != nil {
		return time.Time{}, fmt.Errorf("moving %s into %s: %w", port, dst.NS, err)
	}
	link, err = dst.Handle.LinkByName(port)
	if err == nil {
		err = dst.Handle.LinkSetUp(link)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("bringing %s up in %s: %w", port, dst.NS, err)
	}
	return time.Now(), nil
}

// Move moves a VM to another hypervisor, as the move looks from the network:
// the port leaves its hypervisor, is parked for m.Pause, appears on m.To
// and comes up, then the VM announces itself (live: RARPs on QEMU's
// schedule; cold: one gratuitous ARP after m.Boot). The VM namespace keeps
// its addresses, MAC, routes, neighbour entries and sockets throughout (its
// veth loses carrier while the port is parked, which flushes nothing). Move
// returns when the last announcement is sent.
func (l *Lab) Move(ctx context.Context, m Move) (*MoveReport, error) {
	vm := l.nodes[m.VM]
	if vm == nil {
		return nil, fmt.Errorf("no node %q", m.VM)
	}
	vmIface, port, err := l.vmLink(m.VM)
	if err != nil {
		return nil, err
	}
	id, err := vmIdentity(vm, vmIface)
	if err != nil {
		return nil, err
	}
	conn, err := vm.OpenSender(vmIface)
	if err != nil {
		return nil, err
	}
	defer conn.Close()

	if _, err := l.nodeWithRole(m.To, RoleRoamd); err != nil {
		return nil, err
	}
	src, link, err := l.portLink(m.VM)
	if err != nil {
		return nil, err
	}
	if src.Name == m.To {
		return nil, fmt.Errorf("%s is already on %s", m.VM, m.To)
	}

	// Everything is looked up: from here on the report's timestamps are
	// the move's own steps.
	r := &MoveReport{Move: m, From: src.Name, Port: port, Start: time.Now()}
	if r.Left, err = l.unplug(src, link); err != nil {
		return r, err
	}
	if m.Away != nil {
		if err := m.Away(ctx); err != nil {
			return r, err
		}
	}
	if err := Sleep(ctx, time.Until(r.Left.Add(m.Pause))); err != nil {
		return r, err
	}
	if r.Arrived, err = l.Plug(m.VM, m.To); err != nil {
		return r, err
	}
	if m.Kind == Cold {
		// A guest that boots starts with an empty neighbour table.
		if err := flushNeighbours(vm, id.link); err != nil {
			return r, err
		}
	}
	if r.CarrierUp, err = waitCarrier(ctx, vm, id.link.Attrs().Name); err != nil {
		return r, err
	}
	if err := Sleep(ctx, m.Boot); err != nil {
		return r, err
	}

	send := func(kind string, frame []byte) error {
		// Stamped before the write: the kernel hands the frame to roamd's
		// socket within the call, so a stamp after it can follow roamd's.
		at := time.Now()
		if _, err := conn.WriteTo(frame, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
			return fmt.Errorf("sending %s from %s: %w", kind, m.VM, err)
		}
		r.Frames = append(r.Frames, SentFrame{Kind: kind, At: at})
		return nil
	}
	if m.Kind == Cold {
		return r, send("garp", frames.GratuitousARP(id.mac, id.addr))
	}
	first := time.Now()
	for _, at := range RARPSchedule {
		if err := Sleep(ctx, time.Until(first.Add(at))); err != nil {
			return r, err
		}
		if err := send("rarp", frames.RARP(id.mac)); err != nil {
			return r, err
		}
		if m.GARP && id.addr.IsValid() {
			if err := send("garp", frames.GratuitousARP(id.mac, id.addr)); err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

// Announce makes the VM send one gratuitous ARP, as a guest does when its
// interface comes up (e.g. once the lab is up, to place it on its first
// hypervisor).
func (l *Lab) Announce(vmName string) error {
	vm := l.nodes[vmName]
	if vm == nil {
		return fmt.Errorf("no node %q", vmName)
	}
	vmIface, _, err := l.vmLink(vmName)
	if err != nil {
		return err
	}
	id, err := vmIdentity(vm, vmIface)
	if err != nil {
		return err
	}
	conn, err := vm.OpenSender(vmIface)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.WriteTo(frames.GratuitousARP(id.mac, id.addr), &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
		return fmt.Errorf("sending a gratuitous ARP from %s: %w", vmName, err)
	}
	return nil
}

type identity struct {
	link netlink.Link
	mac  net.HardwareAddr
	addr netip.Addr // first global IPv4 address
}

// waitCarrier polls the VM's interface until it is operationally up: frames
// sent before that are dropped by the veth, which no real tap would do.
func waitCarrier(ctx context.Context, vm *Node, iface string) (time.Time, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		link, err := vm.Handle.LinkByName(iface)
		if err != nil {
			return time.Time{}, fmt.Errorf("finding %s in %s: %w", iface, vm.NS, err)
		}
		if link.Attrs().OperState == netlink.OperUp {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s in %s has no carrier 5 s after its port came up", iface, vm.NS)
		}
		if err := Sleep(ctx, time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

func vmIdentity(vm *Node, iface string) (identity, error) {
	link, err := vm.Handle.LinkByName(iface)
	if err != nil {
		return identity{}, fmt.Errorf("finding %s in %s: %w", iface, vm.NS, err)
	}
	id := identity{link: link, mac: link.Attrs().HardwareAddr}
	addrs, err := vm.Handle.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return identity{}, fmt.Errorf("listing addresses of %s in %s: %w", iface, vm.NS, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && a.Scope == unix.RT_SCOPE_UNIVERSE {
			id.addr = ip.Unmap()
			break
		}
	}
	if !id.addr.IsValid() {
		return identity{}, fmt.Errorf("VM %s has no IPv4 address on %s to announce", vm.Name, iface)
	}
	return id, nil
}

// OpenSender opens a send-only packet socket (protocol 0 receives nothing)
// on the node's interface iface, inside its namespace: how a VM sends
// frames of its own making.
func (n *Node) OpenSender(iface string) (*packet.Conn, error) {
	var conn *packet.Conn
	err := n.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		conn, err = packet.Listen(ifi, packet.Raw, 0, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening a packet socket on %s in %s: %w", iface, n.NS, err)
	}
	return conn, nil
}

func flushNeighbours(vm *Node, link netlink.Link) error {
	ns, err := vm.Handle.NeighList(link.Attrs().Index, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("listing neighbours in %s: %w", vm.NS, err)
	}
	for _, n := range ns {
		if n.State&netlink.NUD_PERMANENT != 0 || n.State == netlink.NUD_NOARP {
			continue
		}
		if err := vm.Handle.NeighDel(&n); err != nil {
			return fmt.Errorf("flushing neighbour %s in %s: %w", n.IP, vm.NS, err)
		}
	}
	return nil
}

// Sleep waits for d; it returns early, with ctx's cause, when ctx ends
// first.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
