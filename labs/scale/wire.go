package scale

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Decoding of what the benchmarks capture: ARP and RARP from VM ports, and
// the BGP UPDATE messages in a TCP stream. By hand, because the only BGP
// parser at hand (GoBGP) is reserved to routing/ by the design, and these
// are a few dozen lines of fixed layouts.

// Ethertypes the captures look at.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeRARP = 0x8035
)

// ARP is an ARP or RARP packet's sender.
type ARP struct {
	RARP      bool
	Op        uint16
	SenderMAC net.HardwareAddr
	SenderIP  netip.Addr
	TargetIP  netip.Addr
}

// DecodeARP decodes an Ethernet/IPv4 ARP or RARP packet.
func DecodeARP(p Packet) (ARP, bool) {
	b := p.Data
	if (p.Protocol != EtherTypeARP && p.Protocol != EtherTypeRARP) || len(b) < 28 ||
		binary.BigEndian.Uint16(b[0:2]) != 1 || binary.BigEndian.Uint16(b[2:4]) != EtherTypeIPv4 || b[4] != 6 || b[5] != 4 {
		return ARP{}, false
	}
	return ARP{
		RARP:      p.Protocol == EtherTypeRARP,
		Op:        binary.BigEndian.Uint16(b[6:8]),
		SenderMAC: net.HardwareAddr(slices.Clone(b[8:14])),
		SenderIP:  netip.AddrFrom4([4]byte(b[14:18])),
		TargetIP:  netip.AddrFrom4([4]byte(b[24:28])),
	}, true
}

// Flow identifies one direction of a TCP connection.
type Flow struct {
	Src, Dst netip.AddrPort
}

// Segment is a TCP segment's payload in its flow.
type Segment struct {
	Seq  uint32 // of the first payload byte
	Time time.Time
	Data []byte
}

// TCPFlows splits the IPv4 TCP packets by flow direction, keeping the
// payload of each segment.
func TCPFlows(pkts []Packet) map[Flow][]Segment {
	flows := map[Flow][]Segment{}
	for _, p := range pkts {
		b := p.Data
		if p.Protocol != EtherTypeIPv4 || len(b) < 20 || b[0]>>4 != 4 || b[9] != 6 {
			continue
		}
		ihl := int(b[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[2:4]))
		if total > len(b) || ihl+20 > total {
			continue // truncated by the snap length
		}
		tcp := b[ihl:total]
		off := int(tcp[12]>>4) * 4
		if off < 20 || off > len(tcp) {
			continue
		}
		f := Flow{
			Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[12:16])), binary.BigEndian.Uint16(tcp[0:2])),
			Dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[16:20])), binary.BigEndian.Uint16(tcp[2:4])),
		}
		seq := binary.BigEndian.Uint32(tcp[4:8])
		if tcp[13]&0x02 != 0 { // SYN takes one sequence number
			seq++
		}
		if len(tcp) > off {
			flows[f] = append(flows[f], Segment{Seq: seq, Time: p.Time, Data: tcp[off:]})
		}
	}
	return flows
}

// BGPUpdate is one UPDATE message, timed by the capture of the segment
// that completed it.
type BGPUpdate struct {
	Time      time.Time
	Announced []netip.Prefix
	Withdrawn []netip.Prefix
	// Seq is the MAC Mobility sequence number, when present.
	Seq uint32
}

// BGPUpdates reassembles a flow's byte stream and returns its UPDATE
// messages in order. Retransmitted bytes keep their first capture time; a
// gap (bytes the capture missed) is skipped up to the next BGP marker.
func BGPUpdates(segs []Segment) []BGPUpdate {
	if len(segs) == 0 {
		return nil
	}
	base := segs[0].Seq
	for _, s := range segs {
		if int32(s.Seq-base) < 0 {
			base = s.Seq
		}
	}
	type piece struct {
		off  int64
		time time.Time
		data []byte
	}
	pieces := make([]piece, 0, len(segs))
	for _, s := range segs {
		pieces = append(pieces, piece{off: int64(s.Seq - base), time: s.Time, data: s.Data})
	}
	slices.SortStableFunc(pieces, func(a, b piece) int { return cmp.Compare(a.off, b.off) })

	var out []BGPUpdate
	var buf []byte
	var ends []int64 // end offset (in buf) of each piece in buf
	var times []time.Time
	var end int64 // stream offset of buf's end
	flush := func() {
		out = append(out, parseUpdates(buf, ends, times)...)
		buf, ends, times = buf[:0], ends[:0], times[:0]
	}
	for _, p := range pieces {
		pEnd := p.off + int64(len(p.data))
		switch {
		case len(buf) == 0 && end == 0:
			end = p.off
		case pEnd <= end:
			continue // retransmitted
		case p.off > end:
			flush() // the capture missed bytes: start over at the next marker
			end = p.off
		}
		skip := end - p.off
		buf = append(buf, p.data[skip:]...)
		end = pEnd
		ends = append(ends, int64(len(buf)))
		times = append(times, p.time)
	}
	flush()
	return out
}

var bgpMarker = bytes.Repeat([]byte{0xff}, 16)

// parseUpdates walks BGP messages in buf; ends/times say when each byte
// range was captured.
func parseUpdates(buf []byte, ends []int64, times []time.Time) []BGPUpdate {
	var out []BGPUpdate
	at := func(lastByte int) time.Time {
		i, _ := slices.BinarySearch(ends, int64(lastByte)+1)
		if i >= len(times) {
			i = len(times) - 1
		}
		return times[i]
	}
	pos := 0
	for pos+19 <= len(buf) {
		if !bytes.Equal(buf[pos:pos+16], bgpMarker) {
			next := bytes.Index(buf[pos+1:], bgpMarker)
			if next < 0 {
				break
			}
			pos += 1 + next
			continue
		}
		n := int(binary.BigEndian.Uint16(buf[pos+16 : pos+18]))
		if n < 19 || n > 65535 {
			pos++
			continue
		}
		if pos+n > len(buf) {
			break // incomplete at the end of the capture
		}
		if buf[pos+18] == 2 {
			if u, ok := decodeUpdate(buf[pos+19 : pos+n]); ok {
				u.Time = at(pos + n - 1)
				out = append(out, u)
			}
		}
		pos += n
	}
	return out
}

// decodeUpdate decodes an UPDATE body without ADD-PATH path identifiers
// (roamd only receives them): IPv4 NLRI and withdrawn routes, MP_REACH and
// MP_UNREACH for IPv6 unicast, and the MAC Mobility sequence.
func decodeUpdate(b []byte) (BGPUpdate, bool) {
	var u BGPUpdate
	if len(b) < 4 {
		return u, false
	}
	wl := int(binary.BigEndian.Uint16(b[0:2]))
	if 2+wl+2 > len(b) {
		return u, false
	}
	var ok bool
	if u.Withdrawn, ok = prefixes(b[2:2+wl], 4); !ok {
		return u, false
	}
	al := int(binary.BigEndian.Uint16(b[2+wl : 4+wl]))
	attrs := b[4+wl:]
	if al > len(attrs) {
		return u, false
	}
	nlri := attrs[al:]
	attrs = attrs[:al]
	for len(attrs) >= 3 {
		flags, typ := attrs[0], attrs[1]
		hl, l := 3, int(attrs[2])
		if flags&0x10 != 0 {
			if len(attrs) < 4 {
				return u, false
			}
			hl, l = 4, int(binary.BigEndian.Uint16(attrs[2:4]))
		}
		if hl+l > len(attrs) {
			return u, false
		}
		v := attrs[hl : hl+l]
		switch typ {
		case 14: // MP_REACH_NLRI: AFI, SAFI, next hop, reserved, NLRI
			if len(v) >= 5 && binary.BigEndian.Uint16(v[0:2]) == 2 && v[2] == 1 && 5+int(v[3]) <= len(v) {
				ps, _ := prefixes(v[5+int(v[3]):], 16)
				u.Announced = append(u.Announced, ps...)
			}
		case 15: // MP_UNREACH_NLRI: AFI, SAFI, withdrawn
			if len(v) >= 3 && binary.BigEndian.Uint16(v[0:2]) == 2 && v[2] == 1 {
				ps, _ := prefixes(v[3:], 16)
				u.Withdrawn = append(u.Withdrawn, ps...)
			}
		case 16: // extended communities
			for i := 0; i+8 <= len(v); i += 8 {
				if v[i] == 0x06 && v[i+1] == 0x00 {
					u.Seq = binary.BigEndian.Uint32(v[i+4 : i+8])
				}
			}
		}
		attrs = attrs[hl+l:]
	}
	ps, ok := prefixes(nlri, 4)
	u.Announced = append(ps, u.Announced...)
	return u, ok
}

// prefixes decodes a run of (length, prefix bytes) entries of an address
// family whose addresses have size bytes.
func prefixes(b []byte, size int) ([]netip.Prefix, bool) {
	var out []netip.Prefix
	for len(b) > 0 {
		bits := int(b[0])
		n := (bits + 7) / 8
		if bits > size*8 || 1+n > len(b) {
			return out, false
		}
		var a [16]byte
		copy(a[:], b[1:1+n])
		addr := netip.AddrFrom16(a)
		if size == 4 {
			addr = netip.AddrFrom4([4]byte(a[:4]))
		}
		out = append(out, netip.PrefixFrom(addr, bits))
		b = b[1+n:]
	}
	return out, true
}
