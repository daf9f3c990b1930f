package frames

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// Ethertypes and protocol numbers Decode dispatches on.
const (
	etherTypeRARP ethernet.EtherType = 0x8035

	ethHeaderLen = 14
	arpLen       = 28 // Ethernet/IPv4 ARP: 8 fixed bytes + 2×(6+4)

	arpHardwareEthernet = 1
	arpOpRequestReverse = 3 // RFC 903
	arpOpReplyReverse   = 4

	protoICMPv6 = 58

	icmpTypeRouterSolicit   = 133
	icmpTypeNeighborSolicit = 135
	icmpTypeNeighborAdvert  = 136

	ndpHopLimit = 255 // RFC 4861: NDP messages never cross a router
)

// Decode reads one Ethernet frame. It returns an error matching
// ErrNotInteresting for well-formed frames of other protocols, and an error
// naming the protocol and field for malformed ones. The Observation never
// aliases frame: callers may reuse the buffer.
func Decode(frame []byte) (Observation, error) {
	if len(frame) < ethHeaderLen {
		return Observation{}, fmt.Errorf("ethernet: frame of %d bytes is too short, want at least %d", len(frame), ethHeaderLen)
	}
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil {
		return Observation{}, fmt.Errorf("ethernet: %w", err)
	}
	if f.VLAN != nil {
		return Observation{}, fmt.Errorf("ethernet: 802.1Q tag (VLAN %d) on an untagged port: %w", f.VLAN.ID, ErrNotInteresting)
	}
	if isMulticastMAC(f.Source) {
		return Observation{}, fmt.Errorf("ethernet: source %s is a multicast address", f.Source)
	}
	switch f.EtherType {
	case ethernet.EtherTypeARP:
		return decodeARP(&f, "arp")
	case etherTypeRARP:
		return decodeARP(&f, "rarp")
	case ethernet.EtherTypeIPv6:
		return decodeIPv6(&f)
	default:
		return Observation{}, fmt.Errorf("ethernet: ethertype %#04x: %w", uint16(f.EtherType), ErrNotInteresting)
	}
}

// decodeARP decodes ARP and RARP, which share one packet format (RFC 826,
// RFC 903). proto is "arp" or "rarp", for error messages.
func decodeARP(f *ethernet.Frame, proto string) (Observation, error) {
	b := f.Payload
	// mdlayher/arp accepts any hardware and protocol lengths; check them
	// first so a bad packet is reported by field rather than misread.
	if len(b) < 8 {
		return Observation{}, fmt.Errorf("%s: packet of %d bytes is too short, want %d", proto, len(b), arpLen)
	}
	if ht := binary.BigEndian.Uint16(b[0:2]); ht != arpHardwareEthernet {
		return Observation{}, fmt.Errorf("%s: hardware type %d, want %d (Ethernet)", proto, ht, arpHardwareEthernet)
	}
	if pt := binary.BigEndian.Uint16(b[2:4]); pt != uint16(ethernet.EtherTypeIPv4) {
		return Observation{}, fmt.Errorf("%s: protocol type %#04x, want 0x0800 (IPv4)", proto, pt)
	}
	if b[4] != 6 {
		return Observation{}, fmt.Errorf("%s: hardware address length %d, want 6", proto, b[4])
	}
	if b[5] != 4 {
		return Observation{}, fmt.Errorf("%s: protocol address length %d, want 4", proto, b[5])
	}
	if len(b) < arpLen {
		return Observation{}, fmt.Errorf("%s: packet of %d bytes is too short, want %d", proto, len(b), arpLen)
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(b); err != nil {
		return Observation{}, fmt.Errorf("%s: %w", proto, err)
	}
	if isMulticastMAC(p.SenderHardwareAddr) {
		return Observation{}, fmt.Errorf("%s: sender hardware address %s is a multicast address", proto, p.SenderHardwareAddr)
	}
	obs := Observation{SrcMAC: f.Source, MAC: p.SenderHardwareAddr}

	if proto == "rarp" {
		switch p.Operation {
		case arpOpRequestReverse:
			obs.Kind = KindRARP
			return obs, nil
		case arpOpReplyReverse:
			return Observation{}, fmt.Errorf("rarp: reply (operation 4): %w", ErrNotInteresting)
		default:
			return Observation{}, fmt.Errorf("rarp: operation %d, want 3 (request reverse) or 4 (reply reverse)", p.Operation)
		}
	}

	if p.Operation != arp.OperationRequest && p.Operation != arp.OperationReply {
		return Observation{}, fmt.Errorf("arp: operation %d: %w", p.Operation, ErrNotInteresting)
	}
	if !isUnicastIPv4(p.SenderIP) && !p.SenderIP.IsUnspecified() {
		return Observation{}, fmt.Errorf("arp: sender address %s is not a unicast address", p.SenderIP)
	}
	obs.Target = p.TargetIP
	switch {
	case p.SenderIP.IsUnspecified():
		if p.Operation == arp.OperationReply {
			return Observation{}, fmt.Errorf("arp: reply from sender address 0.0.0.0")
		}
		obs.Kind = KindARPProbe
	case p.SenderIP == p.TargetIP:
		obs.Kind = KindGratuitousARP
		obs.Addr = p.SenderIP
	case p.Operation == arp.OperationRequest:
		obs.Kind = KindARPRequest
		obs.Addr = p.SenderIP
	default:
		obs.Kind = KindARPReply
		obs.Addr = p.SenderIP
	}
	return obs, nil
}

// decodeIPv6 decodes the NDP messages that reveal a host: RS, NS, NA.
func decodeIPv6(f *ethernet.Frame) (Observation, error) {
	b := f.Payload
	h, err := ipv6.ParseHeader(b)
	if err != nil {
		return Observation{}, fmt.Errorf("ipv6: packet of %d bytes is too short, want at least %d", len(b), ipv6.HeaderLen)
	}
	if h.Version != 6 {
		return Observation{}, fmt.Errorf("ipv6: version %d, want 6", h.Version)
	}
	// RFC 4861 NDP has no extension headers in practice; like the kernel
	// filter in detect/capture, only ICMPv6 right after the header counts.
	if h.NextHeader != protoICMPv6 {
		return Observation{}, fmt.Errorf("ipv6: next header %d: %w", h.NextHeader, ErrNotInteresting)
	}
	if rest := len(b) - ipv6.HeaderLen; h.PayloadLen > rest {
		return Observation{}, fmt.Errorf("ipv6: payload length %d, but %d bytes follow the header", h.PayloadLen, rest)
	}
	msg := b[ipv6.HeaderLen : ipv6.HeaderLen+h.PayloadLen] // drops Ethernet padding
	if len(msg) < 4 {
		return Observation{}, fmt.Errorf("icmpv6: message of %d bytes is too short, want at least 4", len(msg))
	}
	typ := msg[0]
	var name string
	var minLen int
	switch typ {
	case icmpTypeRouterSolicit:
		name, minLen = "router solicitation", 8
	case icmpTypeNeighborSolicit:
		name, minLen = "neighbor solicitation", 24
	case icmpTypeNeighborAdvert:
		name, minLen = "neighbor advertisement", 24
	default:
		return Observation{}, fmt.Errorf("icmpv6: type %d: %w", typ, ErrNotInteresting)
	}

	// RFC 4861 sections 6.1.1 and 7.1: validity checks a receiver must make.
	if h.HopLimit != ndpHopLimit {
		return Observation{}, fmt.Errorf("ndp: hop limit %d, want %d", h.HopLimit, ndpHopLimit)
	}
	if msg[1] != 0 {
		return Observation{}, fmt.Errorf("ndp: %s code %d, want 0", name, msg[1])
	}
	if len(msg) < minLen {
		return Observation{}, fmt.Errorf("ndp: %s of %d bytes is too short, want at least %d", name, len(msg), minLen)
	}
	src := netip.AddrFrom16([16]byte(h.Src.To16()))
	dst := netip.AddrFrom16([16]byte(h.Dst.To16()))
	if src.IsMulticast() {
		return Observation{}, fmt.Errorf("ndp: %s from multicast source %s", name, src)
	}
	if want := icmpv6Checksum(msg, src, dst); binary.BigEndian.Uint16(msg[2:4]) != want {
		return Observation{}, fmt.Errorf("ndp: %s checksum %#04x, want %#04x", name, binary.BigEndian.Uint16(msg[2:4]), want)
	}
	if err := checkOptions(msg[minLen:], name); err != nil {
		return Observation{}, err
	}
	m, err := ndp.ParseMessage(msg)
	if err != nil {
		return Observation{}, fmt.Errorf("ndp: %s options rejected: %w", name, err)
	}

	obs := Observation{SrcMAC: f.Source, MAC: f.Source}
	switch m := m.(type) {
	case *ndp.RouterSolicitation:
		obs.Kind = KindRouterSolicit
		lla, err := linkLayerOption(m.Options, ndp.Source, name)
		if err != nil {
			return Observation{}, err
		}
		if src.IsUnspecified() {
			if lla != nil {
				return Observation{}, fmt.Errorf("ndp: router solicitation from :: carries a source link-layer address option")
			}
			return obs, nil
		}
		obs.Addr = src
		if lla != nil {
			obs.MAC = lla
		}
		return obs, nil

	case *ndp.NeighborSolicitation:
		if m.TargetAddress.IsMulticast() {
			return Observation{}, fmt.Errorf("ndp: neighbor solicitation target %s is a multicast address", m.TargetAddress)
		}
		lla, err := linkLayerOption(m.Options, ndp.Source, name)
		if err != nil {
			return Observation{}, err
		}
		obs.Target = m.TargetAddress
		if src.IsUnspecified() {
			if snm, _ := ndp.SolicitedNodeMulticast(m.TargetAddress); dst != snm {
				return Observation{}, fmt.Errorf("ndp: duplicate address detection to %s, want %s (solicited-node multicast)", dst, snm)
			}
			if lla != nil {
				return Observation{}, fmt.Errorf("ndp: duplicate address detection carries a source link-layer address option")
			}
			obs.Kind = KindDADSolicit
			return obs, nil
		}
		obs.Kind = KindNeighborSolicit
		obs.Addr = src
		if lla != nil {
			obs.MAC = lla
		}
		return obs, nil

	case *ndp.NeighborAdvertisement:
		if m.TargetAddress.IsMulticast() {
			return Observation{}, fmt.Errorf("ndp: neighbor advertisement target %s is a multicast address", m.TargetAddress)
		}
		if m.Solicited && dst.IsMulticast() {
			return Observation{}, fmt.Errorf("ndp: solicited neighbor advertisement to multicast %s", dst)
		}
		lla, err := linkLayerOption(m.Options, ndp.Target, name)
		if err != nil {
			return Observation{}, err
		}
		obs.Kind = KindNeighborAdvert
		obs.Addr = m.TargetAddress
		obs.Target = m.TargetAddress
		obs.Unsolicited = !m.Solicited
		obs.Override = m.Override
		if lla != nil {
			obs.MAC = lla
		}
		return obs, nil
	}
	// Unreachable: the type was checked above.
	return Observation{}, fmt.Errorf("icmpv6: type %d: %w", typ, ErrNotInteresting)
}

// checkOptions walks the NDP options so a bad one is reported by type and
// offset; mdlayher/ndp only says that parsing failed.
func checkOptions(b []byte, name string) error {
	for off := 0; off < len(b); {
		if len(b)-off < 2 {
			return fmt.Errorf("ndp: %s option at offset %d is truncated", name, off)
		}
		typ, l := b[off], int(b[off+1])*8
		if l == 0 {
			return fmt.Errorf("ndp: %s option %d at offset %d has length 0", name, typ, off)
		}
		if l > len(b)-off {
			return fmt.Errorf("ndp: %s option %d at offset %d has length %d, only %d bytes left", name, typ, off, l, len(b)-off)
		}
		if (typ == 1 || typ == 2) && l != 8 {
			return fmt.Errorf("ndp: %s link-layer address option has length %d, want 8 (Ethernet)", name, l)
		}
		off += l
	}
	return nil
}

// linkLayerOption returns the link-layer address option of direction dir, or
// nil when the message has none.
func linkLayerOption(opts []ndp.Option, dir ndp.Direction, name string) (net.HardwareAddr, error) {
	var found net.HardwareAddr
	for _, o := range opts {
		lla, ok := o.(*ndp.LinkLayerAddress)
		if !ok || lla.Direction != dir {
			continue
		}
		if found != nil && !bytes.Equal(found, lla.Addr) {
			return nil, fmt.Errorf("ndp: %s carries two different link-layer addresses (%s, %s)", name, found, lla.Addr)
		}
		if isMulticastMAC(lla.Addr) {
			return nil, fmt.Errorf("ndp: %s link-layer address %s is a multicast address", name, lla.Addr)
		}
		found = lla.Addr
	}
	return found, nil
}

// icmpv6Checksum returns the checksum msg should carry between src and dst.
// x/net/icmp computes checksums only while marshalling, so the message is
// re-marshalled with its checksum field cleared.
func icmpv6Checksum(msg []byte, src, dst netip.Addr) uint16 {
	m := icmp.Message{
		Type: ipv6.ICMPType(msg[0]),
		Code: int(msg[1]),
		Body: &icmp.RawBody{Data: msg[4:]},
	}
	b, err := m.Marshal(icmp.IPv6PseudoHeader(src.AsSlice(), dst.AsSlice()))
	if err != nil {
		// Marshal fails only for a non-ICMP type, which cannot happen here.
		return 0
	}
	return binary.BigEndian.Uint16(b[2:4])
}

func isMulticastMAC(mac net.HardwareAddr) bool { return len(mac) > 0 && mac[0]&1 != 0 }

func isUnicastIPv4(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}
