package tenants

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/roamd/roamd/labs/nslab/probe"
)

// VXLAN-GPE as roamd's forward device speaks it (RFC 9547 header: flags
// with the I and P bits, next protocol IPv4, the tenant id as VNI), built
// here to check what a hypervisor does with such packets from where they
// must not come. No library in the module builds VXLAN-GPE or raw IPv4
// packets, so both are written out below.

const (
	gpeFlags    = 0x0c // I (VNI valid) and P (next protocol present)
	gpeNextIPv4 = 0x01
)

// InjectGPE sends, from inside ns, one VXLAN-GPE packet to to (a
// hypervisor address at roamd's VXLAN port) carrying vni and an IPv4/UDP
// datagram from src to dst with payload.
func InjectGPE(ns probe.Netns, to netip.AddrPort, vni uint32, src, dst netip.AddrPort, payload []byte) error {
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return fmt.Errorf("injecting %s → %s: IPv4 only", src, dst)
	}
	pkt := make([]byte, 8, 8+20+8+len(payload))
	pkt[0], pkt[3] = gpeFlags, gpeNextIPv4
	binary.BigEndian.PutUint32(pkt[4:], vni<<8)
	pkt = append(pkt, ipv4UDP(src, dst, payload)...)
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.Dial("udp4", to.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("injecting to %s: %w", to, err)
	}
	defer c.Close()
	if _, err := c.Write(pkt); err != nil {
		return fmt.Errorf("injecting to %s: %w", to, err)
	}
	return nil
}

// ipv4UDP returns an IPv4 packet holding a UDP datagram (UDP checksum 0:
// none, which IPv4 allows).
func ipv4UDP(src, dst netip.AddrPort, payload []byte) []byte {
	total := 20 + 8 + len(payload)
	b := make([]byte, 28, total)
	b[0] = 0x45 // version 4, 5 words of header
	binary.BigEndian.PutUint16(b[2:], uint16(total))
	b[8], b[9] = 64, 17 // TTL, UDP
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], headerChecksum(b[:20]))
	binary.BigEndian.PutUint16(b[20:], src.Port())
	binary.BigEndian.PutUint16(b[22:], dst.Port())
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	return append(b, payload...)
}

// headerChecksum is the Internet checksum (RFC 1071) of an IPv4 header.
func headerChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
