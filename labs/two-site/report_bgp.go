package twosite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/labs/nslab"
)

// SentUpdate is a BGP UPDATE a hypervisor sent that announces the VM's
// /32, stamped by the kernel as it left.
type SentUpdate struct {
	Node string
	At   time.Time
}

// UpdateTap records when the hypervisors' BGP UPDATEs announcing the VM
// leave on their uplinks: the end of roamd's share as the fabric sees it,
// after GoBGP queued and encoded the path roamd handed it.
//
// A packet socket per uplink with kernel receive timestamps
// (SO_TIMESTAMPNS); the BGP messages are read from each TCP segment
// without reassembly, which suffices for the small UPDATEs a host route
// makes (they start a segment on an idle session).
type UpdateTap struct {
	stop atomic.Bool
	wg   sync.WaitGroup

	mu   sync.Mutex
	sent []SentUpdate
	errs []error
}

// tapPoll bounds how long a socket loop waits for a frame before checking
// whether to stop.
const tapPoll = 100 * time.Millisecond

// bgpFilter accepts IPv4 TCP segments (first fragments) to or from port 179.
var bgpFilter = []bpf.Instruction{
	bpf.LoadAbsolute{Off: 12, Size: 2}, // ethertype
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0800, SkipTrue: 9},
	bpf.LoadAbsolute{Off: 23, Size: 1}, // IP protocol
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.IPPROTO_TCP, SkipTrue: 7},
	bpf.LoadAbsolute{Off: 20, Size: 2}, // fragment offset
	bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 5},
	bpf.LoadMemShift{Off: 14},          // X = IP header length
	bpf.LoadIndirect{Off: 14, Size: 2}, // source port
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: 179, SkipTrue: 2},
	bpf.LoadIndirect{Off: 16, Size: 2}, // destination port
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 179, SkipTrue: 1},
	bpf.RetConstant{Val: 1 << 16},
	bpf.RetConstant{Val: 0},
}

// TapUpdates opens a capture on each hypervisor's uplink (the interface
// holding its Uplink address).
func TapUpdates(lab *nslab.Lab, hvs ...string) (*UpdateTap, error) {
	prog, err := bpf.Assemble(bgpFilter)
	if err != nil {
		return nil, fmt.Errorf("assembling the BGP capture filter: %w", err)
	}
	t := &UpdateTap{}
	for _, hv := range hvs {
		fd, err := openUplinkTap(lab, hv, prog)
		if err != nil {
			t.Close()
			return nil, err
		}
		t.wg.Add(1)
		go t.read(hv, fd)
	}
	return t, nil
}

func openUplinkTap(lab *nslab.Lab, hv string, prog []bpf.RawInstruction) (int, error) {
	n := lab.Node(hv)
	if n == nil {
		return -1, fmt.Errorf("no node %q", hv)
	}
	addrs, err := n.Handle.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return -1, fmt.Errorf("listing addresses in %s: %w", n.NS, err)
	}
	index := 0
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == Uplink[hv] {
			index = a.LinkIndex
		}
	}
	if index == 0 {
		return -1, fmt.Errorf("%s has no interface with its uplink address %s", n.NS, Uplink[hv])
	}
	fd := -1
	err = n.Do(func() error {
		proto := int(htons(unix.ETH_P_ALL))
		// Protocol 0 receives nothing until the filter is attached and the
		// socket bound.
		s, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		filter := make([]unix.SockFilter, len(prog))
		for i, ins := range prog {
			filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
		}
		tv := unix.NsecToTimeval(tapPoll.Nanoseconds())
		err = errors.Join(
			unix.SetsockoptSockFprog(s, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}),
			unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1),
			unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv),
			unix.Bind(s, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: index}),
		)
		if err != nil {
			unix.Close(s)
			return err
		}
		fd = s
		return nil
	})
	if err != nil {
		return -1, fmt.Errorf("opening a BGP capture on %s's uplink: %w", hv, err)
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (t *UpdateTap) read(hv string, fd int) {
	defer t.wg.Done()
	defer unix.Close(fd)
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(16))
	for !t.stop.Load() {
		n, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.fail(fmt.Errorf("capturing BGP on %s: %w", hv, err))
			return
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype != unix.PACKET_OUTGOING {
			continue
		}
		if !announcesVM(tcpPayload(buf[:n])) {
			continue
		}
		at, ok := kernelStamp(oob[:oobn])
		if !ok {
			t.fail(fmt.Errorf("capturing BGP on %s: no kernel timestamp", hv))
			return
		}
		t.mu.Lock()
		t.sent = append(t.sent, SentUpdate{Node: hv, At: at})
		t.mu.Unlock()
	}
}

func (t *UpdateTap) fail(err error) {
	t.mu.Lock()
	t.errs = append(t.errs, err)
	t.mu.Unlock()
}

// Close stops the captures; what they recorded stays readable.
func (t *UpdateTap) Close() {
	t.stop.Store(true)
	t.wg.Wait()
}

// Attach gives each move the UPDATEs sent from its start to the next
// move's start, and returns the errors the captures met.
func (t *UpdateTap) Attach(results []*MoveResult) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for r, end := range moveWindows(results) {
		r.Updates = nil
		for _, u := range t.sent {
			if !u.At.Before(r.Report.Start.Round(0)) && (end.IsZero() || u.At.Before(end.Round(0))) {
				r.Updates = append(r.Updates, u)
			}
		}
	}
	return errors.Join(t.errs...)
}

// kernelStamp returns the SCM_TIMESTAMPNS stamp among the control
// messages.
func kernelStamp(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}

// tcpPayload returns the TCP payload of an Ethernet frame holding an IPv4
// TCP segment (the capture filter admits only those), or nil.
func tcpPayload(frame []byte) []byte {
	const eth = 14
	if len(frame) < eth+20 {
		return nil
	}
	ip := frame[eth:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if ihl < 20 || total > len(ip) || total < ihl+20 {
		return nil
	}
	tcp := ip[ihl:total]
	off := int(tcp[12]>>4) * 4
	if off < 20 || off > len(tcp) {
		return nil
	}
	return tcp[off:]
}

// announcesVM reports whether the BGP messages at the start of a TCP
// payload include an UPDATE whose IPv4 NLRI holds the VM's /32 (a
// hypervisor sends without ADD-PATH: plain prefixes).
func announcesVM(payload []byte) bool {
	want := append([]byte{32}, VMAddr.AsSlice()...)
	for len(payload) >= 19 {
		for _, b := range payload[:16] {
			if b != 0xff {
				return false // not at a message boundary
			}
		}
		length := int(binary.BigEndian.Uint16(payload[16:18]))
		if length < 19 || length > len(payload) {
			return false
		}
		msg := payload[19:length]
		if payload[18] == 2 && len(msg) >= 4 {
			withdrawn := int(binary.BigEndian.Uint16(msg[0:2]))
			if 2+withdrawn+2 <= len(msg) {
				attrs := int(binary.BigEndian.Uint16(msg[2+withdrawn : 4+withdrawn]))
				if start := 4 + withdrawn + attrs; start <= len(msg) && containsPrefix(msg[start:], want) {
					return true
				}
			}
		}
		payload = payload[length:]
	}
	return false
}

// containsPrefix reports whether the NLRI list (length, prefix bytes)...
// holds the encoded prefix want.
func containsPrefix(nlri, want []byte) bool {
	for len(nlri) > 0 {
		n := 1 + (int(nlri[0])+7)/8
		if n > len(nlri) {
			return false
		}
		if string(nlri[:n]) == string(want) {
			return true
		}
		nlri = nlri[n:]
	}
	return false
}
