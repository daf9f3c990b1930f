package frames

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/ndp"
)

func TestDecodeRealFrames(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want Observation
	}{
		{
			name: "QEMU RARP after migration",
			hex:  hexQEMURARP,
			want: Observation{Kind: KindRARP, SrcMAC: macGuest, MAC: macGuest},
		},
		{
			name: "gratuitous ARP",
			hex:  hexLinuxGARP,
			want: Observation{Kind: KindGratuitousARP, SrcMAC: macGuestNew, MAC: macGuestNew,
				Addr: ip("198.51.100.10"), Target: ip("198.51.100.10")},
		},
		{
			name: "ARP probe claims nothing",
			hex:  hexLinuxARPProbe,
			want: Observation{Kind: KindARPProbe, SrcMAC: macGuestNew, MAC: macGuestNew, Target: ip("198.51.100.11")},
		},
		{
			name: "ARP request",
			hex:  hexLinuxARPRequest,
			want: Observation{Kind: KindARPRequest, SrcMAC: macGuestNew, MAC: macGuestNew,
				Addr: ip("198.51.100.10"), Target: ip("198.51.100.12")},
		},
		{
			name: "ARP reply",
			hex:  hexLinuxARPReply,
			want: Observation{Kind: KindARPReply, SrcMAC: macGuest, MAC: macGuest,
				Addr: ip("198.51.100.10"), Target: ip("198.51.100.1")},
		},
		{
			name: "unsolicited NA after migration",
			hex:  hexLinuxUnsolicitedNA,
			want: Observation{Kind: KindNeighborAdvert, SrcMAC: macGuestNew, MAC: macGuestNew,
				Addr: ip("2001:db8:10::10"), Target: ip("2001:db8:10::10"), Unsolicited: true, Override: true},
		},
		{
			name: "unsolicited NA for a link-local address",
			hex:  hexLinuxUnsolicitedNALinkLocal,
			want: Observation{Kind: KindNeighborAdvert, SrcMAC: macGuestNew, MAC: macGuestNew,
				Addr: ip("fe80::5054:ff:fe12:3456"), Target: ip("fe80::5054:ff:fe12:3456"), Unsolicited: true, Override: true},
		},
		{
			name: "DAD NS claims nothing",
			hex:  hexLinuxDADNS,
			want: Observation{Kind: KindDADSolicit, SrcMAC: macGuest, MAC: macGuest, Target: ip("2001:db8:10::10")},
		},
		{
			name: "DAD NS for a link-local address",
			hex:  hexLinuxDADNSLinkLocal,
			want: Observation{Kind: KindDADSolicit, SrcMAC: macGuest, MAC: macGuest, Target: ip("fe80::5054:ff:fe12:3456")},
		},
		{
			name: "RS from a link-local address",
			hex:  hexLinuxRS,
			want: Observation{Kind: KindRouterSolicit, SrcMAC: macGuest, MAC: macGuest, Addr: ip("fe80::5054:ff:fe12:3456")},
		},
		{
			name: "NS for address resolution",
			hex:  hexLinuxNS,
			want: Observation{Kind: KindNeighborSolicit, SrcMAC: macGuestNew, MAC: macGuestNew,
				Addr: ip("2001:db8:10::10"), Target: ip("2001:db8:10::20")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := unhex(tt.hex)
			got, err := Decode(frame)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpAddrs); diff != "" {
				t.Errorf("Decode (-want +got):\n%s", diff)
			}
			// The observation must not alias the frame: capture reuses its
			// read buffer for the next frame.
			clear(frame)
			if diff := cmp.Diff(tt.want, got, cmpAddrs); diff != "" {
				t.Errorf("observation changed when the frame buffer was reused (-want +got):\n%s", diff)
			}
		})
	}
}

// cmpAddrs compares netip.Addr by value (cmp cannot see its unexported fields).
var cmpAddrs = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		// want is the whole error message.
		want string
		// notInteresting: errors.Is(err, ErrNotInteresting) must hold.
		notInteresting bool
	}{
		{
			name:  "truncated frame",
			frame: unhex(hexLinuxGARP)[:9],
			want:  "ethernet: frame of 9 bytes is too short, want at least 14",
		},
		{
			name:  "empty frame",
			frame: nil,
			want:  "ethernet: frame of 0 bytes is too short, want at least 14",
		},
		{
			name:  "multicast Ethernet source",
			frame: patch(unhex(hexLinuxGARP), 6, 0x01),
			want:  "ethernet: source 01:54:00:12:34:57 is a multicast address",
		},
		{
			name:  "ARP hardware address length 8",
			frame: patch(unhex(hexLinuxGARP), 14+4, 8),
			want:  "arp: hardware address length 8, want 6",
		},
		{
			name:  "ARP protocol address length 16",
			frame: patch(unhex(hexLinuxGARP), 14+5, 16),
			want:  "arp: protocol address length 16, want 4",
		},
		{
			name:  "ARP hardware type",
			frame: patch(unhex(hexLinuxGARP), 14, 0, 6),
			want:  "arp: hardware type 6, want 1 (Ethernet)",
		},
		{
			name:  "ARP protocol type",
			frame: patch(unhex(hexLinuxGARP), 14+2, 0x86, 0xdd),
			want:  "arp: protocol type 0x86dd, want 0x0800 (IPv4)",
		},
		{
			name:  "ARP packet cut short",
			frame: unhex(hexLinuxGARP)[:30],
			want:  "arp: packet of 16 bytes is too short, want 28",
		},
		{
			name:  "ARP sender claims a multicast address",
			frame: patch(unhex(hexLinuxGARP), 14+14, 224, 0, 0, 1),
			want:  "arp: sender address 224.0.0.1 is not a unicast address",
		},
		{
			name:  "ARP reply from 0.0.0.0",
			frame: patch(unhex(hexLinuxARPReply), 14+14, 0, 0, 0, 0),
			want:  "arp: reply from sender address 0.0.0.0",
		},
		{
			name:  "ARP sender hardware address multicast",
			frame: patch(unhex(hexLinuxGARP), 14+8, 0x01),
			want:  "arp: sender hardware address 01:54:00:12:34:57 is a multicast address",
		},
		{
			name:  "RARP with an ARP opcode",
			frame: patch(unhex(hexQEMURARP), 14+6, 0, 1),
			want:  "rarp: operation 1, want 3 (request reverse) or 4 (reply reverse)",
		},
		{
			name:  "RARP hardware address length",
			frame: patch(unhex(hexQEMURARP), 14+4, 8),
			want:  "rarp: hardware address length 8, want 6",
		},
		{
			name:           "RARP reply",
			frame:          patch(unhex(hexQEMURARP), 14+6, 0, 4),
			want:           "rarp: reply (operation 4): not interesting",
			notInteresting: true,
		},
		{
			name:           "ARP operation other than request or reply",
			frame:          patch(unhex(hexLinuxGARP), 14+6, 0, 8),
			want:           "arp: operation 8: not interesting",
			notInteresting: true,
		},
		{
			name:           "802.1Q-tagged gratuitous ARP",
			frame:          vlanTag(unhex(hexLinuxGARP), 100),
			want:           "ethernet: 802.1Q tag (VLAN 100) on an untagged port: not interesting",
			notInteresting: true,
		},
		{
			name:           "IPv4 UDP",
			frame:          unhex(hexLinuxUDP),
			want:           "ethernet: ethertype 0x0800: not interesting",
			notInteresting: true,
		},
		{
			name:           "MLD report behind a hop-by-hop header",
			frame:          unhex(hexLinuxMLD),
			want:           "ipv6: next header 0: not interesting",
			notInteresting: true,
		},
		{
			name:           "router advertisement",
			frame:          RouterAdvert(macGateway, ip("fe80::1"), 30*time.Minute, netip.MustParsePrefix("2001:db8:10::/64")),
			want:           "icmpv6: type 134: not interesting",
			notInteresting: true,
		},
		{
			name:  "NA with hop limit 64",
			frame: patch(unhex(hexLinuxUnsolicitedNA), 14+7, 64),
			want:  "ndp: hop limit 64, want 255",
		},
		{
			name:  "NA with a wrong checksum",
			frame: patch(unhex(hexLinuxUnsolicitedNA), 14+40+3, 0x31),
			want:  "ndp: neighbor advertisement checksum 0x7431, want 0x7430",
		},
		{
			name:  "NA with code 1",
			frame: fixChecksum(patch(unhex(hexLinuxUnsolicitedNA), 14+40+1, 1)),
			want:  "ndp: neighbor advertisement code 1, want 0",
		},
		{
			name:  "NA cut short",
			frame: unhex(hexLinuxUnsolicitedNA)[:14+40+20],
			want:  "ipv6: payload length 32, but 20 bytes follow the header",
		},
		{
			name:  "IPv6 header cut short",
			frame: unhex(hexLinuxUnsolicitedNA)[:14+30],
			want:  "ipv6: packet of 30 bytes is too short, want at least 40",
		},
		{
			name:  "IPv6 version 4",
			frame: patch(unhex(hexLinuxUnsolicitedNA), 14, 0x40),
			want:  "ipv6: version 4, want 6",
		},
		{
			name:  "NS shorter than its fixed part",
			frame: fixChecksum(setPayloadLen(unhex(hexLinuxNS), 16)),
			want:  "ndp: neighbor solicitation of 16 bytes is too short, want at least 24",
		},
		{
			name:  "solicited NA to all nodes",
			frame: fixChecksum(patch(unhex(hexLinuxUnsolicitedNA), 14+40+4, 0x60)),
			want:  "ndp: solicited neighbor advertisement to multicast ff02::1",
		},
		{
			name:  "DAD NS with a zero-length option",
			frame: fixChecksum(patch(unhex(hexLinuxDADNS), 14+40+24+1, 0)),
			want:  "ndp: neighbor solicitation option 14 at offset 0 has length 0",
		},
		{
			name:  "DAD NS with an option longer than the packet",
			frame: fixChecksum(patch(unhex(hexLinuxDADNS), 14+40+24+1, 2)),
			want:  "ndp: neighbor solicitation option 14 at offset 0 has length 16, only 8 bytes left",
		},
		{
			name:  "DAD NS carrying a source link-layer address",
			frame: ndpFrame(macGuest, nil, netip.IPv6Unspecified(), ip("ff02::1:ff00:10"), &ndp.NeighborSolicitation{TargetAddress: ip("2001:db8:10::10"), Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: macGuest}}}),
			want:  "ndp: duplicate address detection carries a source link-layer address option",
		},
		{
			name:  "DAD NS to all nodes",
			frame: ndpFrame(macGuest, nil, netip.IPv6Unspecified(), ip("ff02::1"), &ndp.NeighborSolicitation{TargetAddress: ip("2001:db8:10::10")}),
			want:  "ndp: duplicate address detection to ff02::1, want ff02::1:ff00:10 (solicited-node multicast)",
		},
		{
			name:  "NS for a multicast target",
			frame: ndpFrame(macGuest, nil, ip("2001:db8:10::10"), ip("ff02::1:ff00:1"), &ndp.NeighborSolicitation{TargetAddress: ip("ff02::1")}),
			want:  "ndp: neighbor solicitation target ff02::1 is a multicast address",
		},
		{
			name:  "RS from :: with a source link-layer address",
			frame: ndpFrame(macGuest, nil, netip.IPv6Unspecified(), ip("ff02::2"), &ndp.RouterSolicitation{Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: macGuest}}}),
			want:  "ndp: router solicitation from :: carries a source link-layer address option",
		},
		{
			name:  "NA with two different target link-layer addresses",
			frame: ndpFrame(macGuest, nil, ip("2001:db8:10::10"), ip("ff02::1"), &ndp.NeighborAdvertisement{Override: true, TargetAddress: ip("2001:db8:10::10"), Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: macGuest}, &ndp.LinkLayerAddress{Direction: ndp.Target, Addr: macGuestNew}}}),
			want:  "ndp: neighbor advertisement carries two different link-layer addresses (52:54:00:12:34:56, 52:54:00:12:34:57)",
		},
		{
			name:  "NA with a multicast target link-layer address",
			frame: ndpFrame(macGuest, nil, ip("2001:db8:10::10"), ip("ff02::1"), &ndp.NeighborAdvertisement{Override: true, TargetAddress: ip("2001:db8:10::10"), Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: hwaddr("33:33:00:00:00:01")}}}),
			want:  "ndp: neighbor advertisement link-layer address 33:33:00:00:00:01 is a multicast address",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs, err := Decode(tt.frame)
			if err == nil {
				t.Fatalf("Decode succeeded with %v, want error %q", obs, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Decode error:\n got %q\nwant %q", err, tt.want)
			}
			if got := errors.Is(err, ErrNotInteresting); got != tt.notInteresting {
				t.Errorf("errors.Is(err, ErrNotInteresting) = %v, want %v", got, tt.notInteresting)
			}
		})
	}
}

// TestDecodePaddedNDP checks that Ethernet padding after a short IPv6 packet
// is ignored (a real NIC pads the 62-byte RS to 64 bytes, for instance).
func TestDecodePaddedNDP(t *testing.T) {
	padded := append(unhex(hexLinuxRS), make([]byte, 10)...)
	got, err := Decode(padded)
	if err != nil {
		t.Fatalf("Decode of padded RS: %v", err)
	}
	want, err := Decode(unhex(hexLinuxRS))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpAddrs); diff != "" {
		t.Errorf("padded RS decodes differently (-unpadded +padded):\n%s", diff)
	}
}

func TestKindString(t *testing.T) {
	var names []string
	for k := KindRARP; k <= KindRouterSolicit; k++ {
		names = append(names, k.String())
	}
	want := []string{"rarp", "garp", "arp-request", "arp-reply", "arp-probe", "na", "ns", "dad-ns", "rs"}
	if !slices.Equal(names, want) {
		t.Errorf("Kind names = %q, want %q", names, want)
	}
	if got := Kind(0).String(); got != "kind(0)" {
		t.Errorf("Kind(0).String() = %q, want kind(0)", got)
	}
}

func TestObservationString(t *testing.T) {
	obs, err := Decode(unhex(hexLinuxUnsolicitedNA))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := obs.String(), "na 52:54:00:12:34:57 2001:db8:10::10 unsolicited override"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	obs, err = Decode(unhex(hexLinuxDADNS))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := obs.String(), "dad-ns 52:54:00:12:34:56 target 2001:db8:10::10"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// patch returns frame with b written at off.
func patch(frame []byte, off int, b ...byte) []byte {
	copy(frame[off:], b)
	return frame
}

// vlanTag inserts an 802.1Q tag after the Ethernet addresses.
func vlanTag(frame []byte, id uint16) []byte {
	tag := []byte{0x81, 0x00, byte(id >> 8), byte(id)}
	return slices.Concat(frame[:12], tag, frame[12:])
}

// setPayloadLen truncates an IPv6 frame's packet to n payload bytes.
func setPayloadLen(frame []byte, n int) []byte {
	binary.BigEndian.PutUint16(frame[14+4:], uint16(n))
	return frame[:14+40+n]
}

// fixChecksum recomputes the ICMPv6 checksum of an IPv6 frame after a test
// changed its message.
func fixChecksum(frame []byte) []byte {
	ip6 := frame[14:]
	n := int(binary.BigEndian.Uint16(ip6[4:6]))
	msg := ip6[40 : 40+n]
	src := netip.AddrFrom16([16]byte(ip6[8:24]))
	dst := netip.AddrFrom16([16]byte(ip6[24:40]))
	msg[2], msg[3] = 0, 0
	binary.BigEndian.PutUint16(msg[2:4], icmpv6Checksum(msg, src, dst))
	return frame
}

// TestChecksumAgreesWithKernel guards fixChecksum and the decoder: every
// captured NDP frame carries the kernel's checksum, and icmpv6Checksum must
// reproduce it byte for byte.
func TestChecksumAgreesWithKernel(t *testing.T) {
	for _, h := range []string{hexLinuxUnsolicitedNA, hexLinuxUnsolicitedNALinkLocal, hexLinuxDADNS, hexLinuxDADNSLinkLocal, hexLinuxRS, hexLinuxNS} {
		orig := unhex(h)
		fixed := fixChecksum(unhex(h))
		if !bytes.Equal(orig, fixed) {
			t.Errorf("checksum of %s…: kernel %x, computed %x", h[:40], orig[14+40+2:14+40+4], fixed[14+40+2:14+40+4])
		}
	}
}

func TestDecodeErrorsNameTheProtocol(t *testing.T) {
	// A sanity net over the table above: no error leaks a library's bare
	// message without saying which protocol it is about.
	for _, h := range realFrames {
		frame := unhex(h)
		for cut := 0; cut < len(frame); cut++ {
			_, err := Decode(frame[:cut])
			if err == nil {
				continue
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "ethernet: ") && !strings.HasPrefix(msg, "arp: ") &&
				!strings.HasPrefix(msg, "rarp: ") && !strings.HasPrefix(msg, "ipv6: ") &&
				!strings.HasPrefix(msg, "icmpv6: ") && !strings.HasPrefix(msg, "ndp: ") {
				t.Errorf("Decode(%d bytes of %s…) error %q names no protocol", cut, h[:24], msg)
			}
		}
	}
}
