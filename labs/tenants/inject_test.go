package tenants

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/ipv4"
)

// The hand-built inner packet must be one the kernel accepts: a parser
// reads back what was put in, and the header checksum verifies.
func TestIPv4UDPPacket(t *testing.T) {
	src, dst := netip.MustParseAddrPort("10.10.0.99:40000"), netip.MustParseAddrPort("10.10.0.10:7008")
	payload := []byte("who red x\n")
	b := ipv4UDP(src, dst, payload)
	h, err := ipv4.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 4 || h.Len != 20 || h.TotalLen != len(b) || h.Protocol != 17 || h.TTL != 64 ||
		h.Src.String() != "10.10.0.99" || h.Dst.String() != "10.10.0.10" {
		t.Errorf("header %+v", h)
	}
	if c := headerChecksum(b[:20]); c != 0 {
		t.Errorf("header checksum does not verify: sum over the header is %#04x, want 0", c)
	}
	udp := b[20:]
	if sp, dp, l := binary.BigEndian.Uint16(udp), binary.BigEndian.Uint16(udp[2:]), binary.BigEndian.Uint16(udp[4:]); sp != 40000 || dp != 7008 || int(l) != 8+len(payload) {
		t.Errorf("UDP header: ports %d → %d, length %d", sp, dp, l)
	}
	if string(udp[8:]) != string(payload) {
		t.Errorf("payload %q", udp[8:])
	}
}

// The widely published example header 192.168.0.1 → 192.168.0.199 (UDP,
// total length 115) has checksum 0xb861.
func TestHeaderChecksumKnownValue(t *testing.T) {
	h := []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}
	if got := headerChecksum(h); got != 0xb861 {
		t.Errorf("checksum %#04x, want 0xb861", got)
	}
}
