package frames

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// DecodeTraffic reads the source of an ordinary IPv4 or IPv6 packet: what a
// VM uses as its address when it sends anything at all. roamd looks at such
// packets only on ports where it knows no VM yet (after a restart that missed
// the VM's announcements). Only the headers are needed: the capture keeps 64
// bytes. The IP headers are parsed by hand: only two fields are read, and the
// packet is usually truncated, which full parsers reject.
func DecodeTraffic(frame []byte) (Observation, error) {
	if len(frame) < ethHeaderLen {
		return Observation{}, fmt.Errorf("ethernet: frame of %d bytes is too short, want at least %d", len(frame), ethHeaderLen)
	}
	src := net.HardwareAddr(append([]byte(nil), frame[6:12]...))
	if isMulticastMAC(src) {
		return Observation{}, fmt.Errorf("ethernet: source %s is a multicast address", src)
	}
	ip := frame[ethHeaderLen:]
	var addr netip.Addr
	switch et := binary.BigEndian.Uint16(frame[12:14]); et {
	case 0x0800:
		if len(ip) < 20 {
			return Observation{}, fmt.Errorf("ipv4: header of %d bytes is too short, want 20", len(ip))
		}
		if v := ip[0] >> 4; v != 4 {
			return Observation{}, fmt.Errorf("ipv4: version %d, want 4", v)
		}
		if ihl := int(ip[0]&0x0f) * 4; ihl < 20 {
			return Observation{}, fmt.Errorf("ipv4: header length %d, want at least 20", ihl)
		}
		addr = netip.AddrFrom4([4]byte(ip[12:16]))
	case 0x86dd:
		if len(ip) < 40 {
			return Observation{}, fmt.Errorf("ipv6: header of %d bytes is too short, want 40", len(ip))
		}
		if v := ip[0] >> 4; v != 6 {
			return Observation{}, fmt.Errorf("ipv6: version %d, want 6", v)
		}
		addr = netip.AddrFrom16([16]byte(ip[8:24]))
	default:
		return Observation{}, fmt.Errorf("ethernet: ethertype %#04x: %w", et, ErrNotInteresting)
	}
	if !addr.IsGlobalUnicast() {
		return Observation{}, fmt.Errorf("ip: source %s is not a global unicast address: %w", addr, ErrNotInteresting)
	}
	return Observation{Kind: KindTraffic, SrcMAC: src, MAC: src, Addr: addr}, nil
}
