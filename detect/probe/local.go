package probe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/detect/frames"
)

var _ Conn = (*packet.Conn)(nil)

// local asks the owner on its port: ARP request or neighbour solicitation
// from the gateway, answer expected from the owner's MAC.
func (p *Prober) local(r Request) (exchange, error) {
	if len(p.opts.GatewayMAC) != 6 {
		return exchange{}, errors.New("probe: no gateway MAC for local probes")
	}
	if len(r.MAC) != 6 {
		return exchange{}, fmt.Errorf("probe: owner MAC %q is not an Ethernet address", r.MAC)
	}
	addr := r.Addr.Unmap()
	var src netip.Addr
	if p.opts.Source != nil {
		src = p.opts.Source(r.Port, addr)
	}
	var frame []byte
	if addr.Is4() {
		if !src.Is4() {
			src = netip.IPv4Unspecified()
		}
		frame = frames.ARPRequest(p.opts.GatewayMAC, src, addr)
	} else {
		if !src.Is6() || src.Is4In6() {
			src = netip.IPv6Unspecified()
		}
		frame = frames.NeighborSolicit(p.opts.GatewayMAC, src, addr.WithZone(""))
	}
	conn, err := p.opts.ListenLink(r.Port, r.MAC)
	if err != nil {
		return exchange{}, err
	}
	dst := &packet.Addr{HardwareAddr: frame[:6]}
	return exchange{
		conn:    conn,
		to:      dst,
		request: func(int) []byte { return frame },
		answers: func(b []byte, _ net.Addr) bool { return ownerAnswer(b, addr, r.MAC) },
	}, nil
}

// ownerAnswer reports whether frame shows mac using addr: an ARP reply (or
// any ARP, or neighbour advertisement, in which mac claims addr) from mac.
// Probes from the owner (ARP from 0.0.0.0, DAD) claim nothing and do not
// count.
func ownerAnswer(frame []byte, addr netip.Addr, mac net.HardwareAddr) bool {
	o, err := frames.Decode(frame)
	if err != nil {
		return false
	}
	switch o.Kind {
	case frames.KindARPReply, frames.KindGratuitousARP, frames.KindARPRequest, frames.KindNeighborAdvert:
	default:
		return false
	}
	return o.Addr == addr && bytes.Equal(o.SrcMAC, mac) && bytes.Equal(o.MAC, mac)
}

// listenLink opens a packet socket on port that receives only frames from
// owner (ARP and IPv6), in the calling thread's namespace.
func listenLink(port string, owner net.HardwareAddr) (Conn, error) {
	ifi, err := net.InterfaceByName(port)
	if err != nil {
		return nil, fmt.Errorf("probe: port %s: %w (%w)", port, ErrNoPort, err)
	}
	filter, err := bpf.Assemble(ownerFilter(owner))
	if err != nil {
		return nil, fmt.Errorf("probe: assembling the filter: %w", err)
	}
	// All ethertypes, filtered in the kernel: a socket bound to one
	// ethertype sees nothing on a bridge port.
	conn, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: filter})
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
		return nil, fmt.Errorf("probe: port %s: %w (%w)", port, ErrNoPort, err)
	}
	if err != nil {
		return nil, fmt.Errorf("probe: opening a packet socket on %s: %w", port, err)
	}
	return conn, nil
}

// ownerFilter accepts frames arriving (not sent) with Ethernet source owner
// and ethertype ARP or IPv6.
func ownerFilter(owner net.HardwareAddr) []bpf.Instruction {
	const (
		offSrc       = 6
		offEtherType = 12
		snap         = 9216
	)
	hi := binary.BigEndian.Uint32(owner[0:4])
	lo := uint32(binary.BigEndian.Uint16(owner[4:6]))
	return []bpf.Instruction{
		/* 0 */ bpf.LoadExtension{Num: bpf.ExtType},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 7},
		/* 2 */ bpf.LoadAbsolute{Off: offSrc, Size: 4},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: hi, SkipTrue: 5},
		/* 4 */ bpf.LoadAbsolute{Off: offSrc + 4, Size: 2},
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: lo, SkipTrue: 3},
		/* 6 */ bpf.LoadAbsolute{Off: offEtherType, Size: 2},
		/* 7 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(ethernet.EtherTypeARP), SkipTrue: 2},
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(ethernet.EtherTypeIPv6), SkipTrue: 1},
		/* 9 */ bpf.RetConstant{Val: 0},
		/* 10 */ bpf.RetConstant{Val: snap},
	}
}
