package frames

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

var (
	zeroMAC     = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	allNodes    = netip.MustParseAddr("ff02::1")
	unspecified = netip.IPv4Unspecified()
)

// Prefix lifetimes in router advertisements: the RFC 4861 defaults
// (AdvValidLifetime, AdvPreferredLifetime).
const (
	prefixValidLifetime     = 30 * 24 * time.Hour
	prefixPreferredLifetime = 7 * 24 * time.Hour
	raCurHopLimit           = 64
	maxRouterLifetime       = 9000 * time.Second // RFC 4861 section 6.2.1
)

// RARP returns the 60-byte reverse ARP request QEMU sends for a VM that
// resumed (announce_self): broadcast, sender and target hardware address mac,
// both IPs 0.0.0.0, zero-padded.
func RARP(mac net.HardwareAddr) []byte {
	mustMAC(mac)
	return arpFrame(etherTypeRARP, arpOpRequestReverse, mac, ethernet.Broadcast, mac, unspecified, mac, unspecified)
}

// GratuitousARP returns a broadcast ARP request announcing ip at mac (sender
// IP = target IP), as Linux sends on NETDEV_NOTIFY_PEERS.
func GratuitousARP(mac net.HardwareAddr, ip netip.Addr) []byte {
	mustMAC(mac)
	ip = must4(ip)
	return arpFrame(ethernet.EtherTypeARP, arp.OperationRequest, mac, ethernet.Broadcast, mac, ip, zeroMAC, ip)
}

// ARPRequest returns a broadcast ARP request from srcMAC/srcIP asking for
// targetIP. With srcIP 0.0.0.0 it is an RFC 5227 probe.
func ARPRequest(srcMAC net.HardwareAddr, srcIP, targetIP netip.Addr) []byte {
	mustMAC(srcMAC)
	return arpFrame(ethernet.EtherTypeARP, arp.OperationRequest, srcMAC, ethernet.Broadcast, srcMAC, must4(srcIP), zeroMAC, must4(targetIP))
}

// ARPReply returns an ARP reply telling dstMAC/dstIP that srcIP is at srcMAC.
func ARPReply(srcMAC net.HardwareAddr, srcIP netip.Addr, dstMAC net.HardwareAddr, dstIP netip.Addr) []byte {
	mustMAC(srcMAC)
	mustMAC(dstMAC)
	return arpFrame(ethernet.EtherTypeARP, arp.OperationReply, srcMAC, dstMAC, srcMAC, must4(srcIP), dstMAC, must4(dstIP))
}

// UnsolicitedNA returns the neighbor advertisement a host sends to announce
// ip at mac to all nodes (ff02::1): from ip itself, Override set, Solicited
// clear, with a target link-layer address option. router sets the Router
// flag (for a gateway address).
func UnsolicitedNA(mac net.HardwareAddr, ip netip.Addr, router bool) []byte {
	mustMAC(mac)
	ip = must6(ip)
	na := &ndp.NeighborAdvertisement{
		Router:        router,
		Override:      true,
		TargetAddress: ip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
	return ndpFrame(mac, nil, ip, allNodes, na)
}

// SolicitedNA returns the neighbor advertisement answering a solicitation:
// from src at srcMAC to the soliciting dst at dstMAC, announcing target at
// srcMAC (target link-layer option), Solicited and Override set. router sets
// the Router flag. roamd answers a VM's solicitation for any other address of
// its subnet this way, so everything the VM sends goes to the anycast gateway.
func SolicitedNA(srcMAC net.HardwareAddr, src netip.Addr, dstMAC net.HardwareAddr, dst, target netip.Addr, router bool) []byte {
	mustMAC(srcMAC)
	mustMAC(dstMAC)
	src, dst, target = must6(src), must6(dst), must6(target)
	na := &ndp.NeighborAdvertisement{
		Router:        router,
		Solicited:     true,
		Override:      true,
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: srcMAC}},
	}
	return ndpFrame(srcMAC, dstMAC, src, dst, na)
}

// NeighborSolicit returns a neighbor solicitation for target sent to its
// solicited-node multicast address. From a real source address it carries a
// source link-layer address option; from :: it is a duplicate address
// detection probe and carries none (RFC 4861 section 7.2.2).
func NeighborSolicit(srcMAC net.HardwareAddr, src, target netip.Addr) []byte {
	mustMAC(srcMAC)
	src, target = must6(src), must6(target)
	snm, err := ndp.SolicitedNodeMulticast(target)
	if err != nil {
		panic(fmt.Sprintf("frames: neighbor solicitation target %s: %v", target, err))
	}
	ns := &ndp.NeighborSolicitation{TargetAddress: target}
	if !src.IsUnspecified() {
		ns.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: srcMAC}}
	}
	return ndpFrame(srcMAC, nil, src, snm, ns)
}

// RouterAdvert returns a router advertisement to all nodes from src (the
// gateway's link-local address) at srcMAC, with a source link-layer address
// option. lifetime is the default router lifetime (0: not a default router;
// capped at the RFC 4861 maximum of 9000 s). Each IPv6 prefix is advertised
// on-link only (L=1, A=0): the advertisement keeps the guest's default router
// and on-link routes valid after a move; it does not hand out addresses.
// Prefixes that are not IPv6 are skipped.
func RouterAdvert(srcMAC net.HardwareAddr, src netip.Addr, lifetime time.Duration, prefixes ...netip.Prefix) []byte {
	mustMAC(srcMAC)
	src = must6(src)
	if !src.IsLinkLocalUnicast() {
		panic(fmt.Sprintf("frames: router advertisement source %s is not link-local (RFC 4861 section 6.1.2)", src))
	}
	lifetime = min(max(lifetime, 0), maxRouterLifetime).Truncate(time.Second)
	ra := &ndp.RouterAdvertisement{
		CurrentHopLimit: raCurHopLimit,
		RouterLifetime:  lifetime,
		Options:         []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: srcMAC}},
	}
	for _, p := range prefixes {
		if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() {
			continue
		}
		p = p.Masked()
		ra.Options = append(ra.Options, &ndp.PrefixInformation{
			PrefixLength:      uint8(p.Bits()),
			OnLink:            true,
			ValidLifetime:     prefixValidLifetime,
			PreferredLifetime: prefixPreferredLifetime,
			Prefix:            p.Addr(),
		})
	}
	return ndpFrame(srcMAC, nil, src, allNodes, ra)
}

// arpFrame builds an ARP or RARP frame (Ethernet/IPv4), padded to the
// 60-byte Ethernet minimum.
func arpFrame(et ethernet.EtherType, op arp.Operation, ethSrc, ethDst, senderHW net.HardwareAddr, senderIP netip.Addr, targetHW net.HardwareAddr, targetIP netip.Addr) []byte {
	p := arp.Packet{
		HardwareType:       arpHardwareEthernet,
		ProtocolType:       uint16(ethernet.EtherTypeIPv4),
		HardwareAddrLength: 6,
		IPLength:           4,
		Operation:          op,
		SenderHardwareAddr: senderHW,
		SenderIP:           senderIP,
		TargetHardwareAddr: targetHW,
		TargetIP:           targetIP,
	}
	payload, err := p.MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("frames: marshalling %v: %v", op, err)) // never: MarshalBinary has no error path
	}
	return ethFrame(ethSrc, ethDst, et, payload)
}

// ndpFrame builds an Ethernet frame carrying the NDP message m from src to
// dst with hop limit 255 and a correct ICMPv6 checksum. ethDst nil derives
// the destination MAC from a multicast dst (RFC 2464: 33:33 + low 32 bits).
func ndpFrame(ethSrc, ethDst net.HardwareAddr, src, dst netip.Addr, m ndp.Message) []byte {
	msg, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		panic(fmt.Sprintf("frames: marshalling %s: %v", m.Type(), err))
	}
	if ethDst == nil {
		d := dst.As16()
		ethDst = net.HardwareAddr{0x33, 0x33, d[12], d[13], d[14], d[15]}
	}
	return ethFrame(ethSrc, ethDst, ethernet.EtherTypeIPv6, ipv6Packet(src, dst, protoICMPv6, ndpHopLimit, msg))
}

// ipv6Packet prepends a 40-byte IPv6 header to payload. Written by hand:
// golang.org/x/net/ipv6 parses headers but cannot marshal one, and a raw
// frame needs it.
func ipv6Packet(src, dst netip.Addr, next, hopLimit uint8, payload []byte) []byte {
	b := make([]byte, ipv6.HeaderLen+len(payload))
	b[0] = 6 << 4 // version 6, traffic class 0, flow label 0
	binary.BigEndian.PutUint16(b[4:6], uint16(len(payload)))
	b[6] = next
	b[7] = hopLimit
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	copy(b[40:], payload)
	return b
}

func ethFrame(src, dst net.HardwareAddr, et ethernet.EtherType, payload []byte) []byte {
	f := ethernet.Frame{Destination: dst, Source: src, EtherType: et, Payload: payload}
	b, err := f.MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("frames: marshalling ethernet frame: %v", err)) // only for VLAN tags, which are never set
	}
	return b
}

func mustMAC(mac net.HardwareAddr) {
	if len(mac) != 6 {
		panic(fmt.Sprintf("frames: hardware address %q is not a 6-byte Ethernet address", mac))
	}
}

func must4(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if !a.Is4() {
		panic(fmt.Sprintf("frames: %v is not an IPv4 address", a))
	}
	return a
}

func must6(a netip.Addr) netip.Addr {
	if !a.Is6() || a.Is4In6() {
		panic(fmt.Sprintf("frames: %v is not an IPv6 address", a))
	}
	return a.WithZone("")
}

// EchoToAllNodes returns an ICMPv6 echo request from src (a global gateway
// address) at srcMAC to all nodes (ff02::1). A guest answers from the
// address it would use toward src — its global address — which tells roamd
// the IPv6 address of a VM whose announcements it missed.
func EchoToAllNodes(srcMAC net.HardwareAddr, src netip.Addr, id, seq uint16) []byte {
	mustMAC(srcMAC)
	src = must6(src)
	m := icmp.Message{Type: ipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{ID: int(id), Seq: int(seq), Data: []byte("roamd")}}
	msg, err := m.Marshal(icmp.IPv6PseudoHeader(src.AsSlice(), allNodes.AsSlice()))
	if err != nil {
		panic(fmt.Sprintf("frames: marshalling an echo request: %v", err))
	}
	d := allNodes.As16()
	dst := net.HardwareAddr{0x33, 0x33, d[12], d[13], d[14], d[15]}
	return ethFrame(srcMAC, dst, ethernet.EtherTypeIPv6, ipv6Packet(src, allNodes, protoICMPv6, 64, msg))
}
