package capture

import (
	"encoding/binary"
	"fmt"
	"net"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// snapLen is the most of a frame the filter keeps and the reader reads.
// What roamd decodes is small (ARP and RARP 60 bytes, the NS, NA and RS of
// a guest ~90), so a standard MTU's worth is plenty; the reader's buffer is
// per port, and a jumbo frame's (9 KiB) cost 37 MB at 4,096 ports. A
// longer NDP message is cut here and then refused as malformed.
const snapLen = 1536

// trafficSnapLen is what the discovery filter keeps of an ordinary IP
// packet: Ethernet and IP headers, enough for the source address.
const trafficSnapLen = 64

// Offsets in an untagged Ethernet frame, for the filter.
const (
	offEthSrc      = 6
	offEtherType   = 12
	offIPv6Next    = 14 + 6
	offICMPv6Type  = 14 + 40
	etherTypeARP   = 0x0806
	etherTypeRARP  = 0x8035
	etherTypeIPv6  = 0x86dd
	etherTypeIPv4  = 0x0800
	protoICMPv6    = 58
	icmpv6RS       = 133
	icmpv6NS       = 135
	icmpv6NA       = 136
	labelDrop      = "drop"
	labelAccept    = "accept"
	labelEtherType = "ethertype"
	labelTraffic   = "traffic"
)

// filterProgram is the classic BPF program attached to every port socket. It
// keeps only what a VM says about itself:
//
//   - drops frames the host itself sends out of the port (packet type
//     PACKET_OUTGOING), so roamd never hears its own RAs, NAs and ARPs;
//   - drops frames whose VLAN tag the kernel moved into metadata (a VM port
//     is untagged);
//   - drops frames whose Ethernet source is ignore (the anycast gateway MAC);
//   - accepts ARP (0x0806), RARP (0x8035) and IPv6 whose next header is
//     ICMPv6 of type 133 (RS), 135 (NS) or 136 (NA).
//
// With discover set it also keeps the headers of ordinary IPv4 and IPv6
// packets: on a port where roamd knows no VM yet (it restarted and missed the
// VM's announcements), any packet the VM sends reveals its address. A port
// with a known VM does not pay for copying its traffic.
//
// The socket is bound to all ethertypes: one bound to 0x8035 on a bridge
// port sees nothing.
func filterProgram(ignore net.HardwareAddr, discover bool) []bpf.Instruction {
	var a assembler
	a.add(bpf.LoadExtension{Num: bpf.ExtType})
	a.jumpIf(bpf.JumpEqual, unix.PACKET_OUTGOING, labelDrop)
	a.add(bpf.LoadExtension{Num: bpf.ExtVLANTagPresent})
	a.jumpIf(bpf.JumpNotEqual, 0, labelDrop)
	if len(ignore) == 6 {
		a.add(bpf.LoadAbsolute{Off: offEthSrc, Size: 4})
		a.jumpIf(bpf.JumpNotEqual, binary.BigEndian.Uint32(ignore[0:4]), labelEtherType)
		a.add(bpf.LoadAbsolute{Off: offEthSrc + 4, Size: 2})
		a.jumpIf(bpf.JumpEqual, uint32(binary.BigEndian.Uint16(ignore[4:6])), labelDrop)
	}
	a.label(labelEtherType)
	a.add(bpf.LoadAbsolute{Off: offEtherType, Size: 2})
	a.jumpIf(bpf.JumpEqual, etherTypeARP, labelAccept)
	a.jumpIf(bpf.JumpEqual, etherTypeRARP, labelAccept)
	notNDP := labelDrop
	if discover {
		notNDP = labelTraffic
		a.jumpIf(bpf.JumpEqual, etherTypeIPv4, labelTraffic)
	}
	a.jumpIf(bpf.JumpNotEqual, etherTypeIPv6, labelDrop)
	a.add(bpf.LoadAbsolute{Off: offIPv6Next, Size: 1})
	a.jumpIf(bpf.JumpNotEqual, protoICMPv6, notNDP)
	a.add(bpf.LoadAbsolute{Off: offICMPv6Type, Size: 1})
	a.jumpIf(bpf.JumpEqual, icmpv6RS, labelAccept)
	a.jumpIf(bpf.JumpEqual, icmpv6NS, labelAccept)
	a.jumpIf(bpf.JumpEqual, icmpv6NA, labelAccept)
	if discover {
		a.jumpIf(bpf.JumpNotEqual, 0xffff, labelTraffic) // other ICMPv6: traffic
	}
	a.label(labelDrop)
	a.add(bpf.RetConstant{Val: 0})
	a.label(labelAccept)
	a.add(bpf.RetConstant{Val: snapLen})
	if discover {
		a.label(labelTraffic)
		a.add(bpf.RetConstant{Val: trafficSnapLen})
	}
	return a.program()
}

// assembleFilter assembles filterProgram for the kernel.
func assembleFilter(ignore net.HardwareAddr, discover bool) ([]bpf.RawInstruction, error) {
	raw, err := bpf.Assemble(filterProgram(ignore, discover))
	if err != nil {
		return nil, fmt.Errorf("capture: assembling the frame filter: %w", err)
	}
	return raw, nil
}

// assembler resolves forward jumps to labels; x/net/bpf wants relative skip
// counts, which are easy to get wrong by hand.
type assembler struct {
	ins    []bpf.Instruction
	jumps  map[int]string // instruction index → label of its true branch
	labels map[string]int
}

func (a *assembler) add(i bpf.Instruction) { a.ins = append(a.ins, i) }

// jumpIf jumps to label when the condition holds and falls through otherwise.
func (a *assembler) jumpIf(cond bpf.JumpTest, val uint32, label string) {
	if a.jumps == nil {
		a.jumps = map[int]string{}
	}
	a.jumps[len(a.ins)] = label
	a.add(bpf.JumpIf{Cond: cond, Val: val})
}

func (a *assembler) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.ins)
}

func (a *assembler) program() []bpf.Instruction {
	for at, label := range a.jumps {
		to, ok := a.labels[label]
		if !ok || to <= at {
			panic(fmt.Sprintf("capture: filter jump at %d to undefined or backward label %q", at, label))
		}
		j := a.ins[at].(bpf.JumpIf)
		j.SkipTrue = uint8(to - at - 1)
		a.ins[at] = j
	}
	return a.ins
}
