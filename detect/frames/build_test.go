package frames

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/ndp"
)

// TestBuildersMatchRealFrames compares builders with frames the kernel and
// QEMU sent. Linux does not pad frames on a veth, so a 60-byte ARP from a
// builder must equal the captured 42 bytes followed by zero padding.
func TestBuildersMatchRealFrames(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		real string
	}{
		{"RARP is QEMU's announce frame", RARP(macGuest), hexQEMURARP},
		{"GratuitousARP is the kernel's", GratuitousARP(macGuestNew, ip("198.51.100.10")), hexLinuxGARP},
		{"ARPReply is the kernel's", ARPReply(macGuest, ip("198.51.100.10"), macGateway, ip("198.51.100.1")), hexLinuxARPReply},
		{"UnsolicitedNA is the kernel's", UnsolicitedNA(macGuestNew, ip("2001:db8:10::10"), false), hexLinuxUnsolicitedNA},
		{"NeighborSolicit is the kernel's", NeighborSolicit(macGuestNew, ip("2001:db8:10::10"), ip("2001:db8:10::20")), hexLinuxNS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			real := unhex(tt.real)
			if len(real) < 60 {
				real = append(real, make([]byte, 60-len(real))...)
			}
			if !bytes.Equal(tt.got, real) {
				t.Errorf("built frame differs from the captured one\n got %x\nwant %x", tt.got, real)
			}
		})
	}
}

func TestBuildersRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		want  Observation
	}{
		{
			name:  "RARP",
			frame: RARP(macGuest),
			want:  Observation{Kind: KindRARP, SrcMAC: macGuest, MAC: macGuest},
		},
		{
			name:  "GratuitousARP",
			frame: GratuitousARP(macGateway, ip("198.51.100.7")),
			want:  Observation{Kind: KindGratuitousARP, SrcMAC: macGateway, MAC: macGateway, Addr: ip("198.51.100.7"), Target: ip("198.51.100.7")},
		},
		{
			name:  "GratuitousARP with a 4-in-6 address",
			frame: GratuitousARP(macGateway, ip("::ffff:198.51.100.7")),
			want:  Observation{Kind: KindGratuitousARP, SrcMAC: macGateway, MAC: macGateway, Addr: ip("198.51.100.7"), Target: ip("198.51.100.7")},
		},
		{
			name:  "ARPRequest",
			frame: ARPRequest(macGuest, ip("198.51.100.10"), ip("198.51.100.1")),
			want:  Observation{Kind: KindARPRequest, SrcMAC: macGuest, MAC: macGuest, Addr: ip("198.51.100.10"), Target: ip("198.51.100.1")},
		},
		{
			name:  "ARPRequest from 0.0.0.0 is a probe",
			frame: ARPRequest(macGuest, ip("0.0.0.0"), ip("198.51.100.10")),
			want:  Observation{Kind: KindARPProbe, SrcMAC: macGuest, MAC: macGuest, Target: ip("198.51.100.10")},
		},
		{
			name:  "ARPReply",
			frame: ARPReply(macGateway, ip("198.51.100.1"), macGuest, ip("198.51.100.10")),
			want:  Observation{Kind: KindARPReply, SrcMAC: macGateway, MAC: macGateway, Addr: ip("198.51.100.1"), Target: ip("198.51.100.10")},
		},
		{
			name:  "UnsolicitedNA for the gateway",
			frame: UnsolicitedNA(macGateway, ip("fe80::1"), true),
			want: Observation{Kind: KindNeighborAdvert, SrcMAC: macGateway, MAC: macGateway,
				Addr: ip("fe80::1"), Target: ip("fe80::1"), Unsolicited: true, Override: true},
		},
		{
			name:  "NeighborSolicit",
			frame: NeighborSolicit(macGateway, ip("fe80::1"), ip("2001:db8:10::10")),
			want: Observation{Kind: KindNeighborSolicit, SrcMAC: macGateway, MAC: macGateway,
				Addr: ip("fe80::1"), Target: ip("2001:db8:10::10")},
		},
		{
			name:  "NeighborSolicit from :: is DAD",
			frame: NeighborSolicit(macGuest, ip("::"), ip("2001:db8:10::10")),
			want:  Observation{Kind: KindDADSolicit, SrcMAC: macGuest, MAC: macGuest, Target: ip("2001:db8:10::10")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.frame)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpAddrs); diff != "" {
				t.Errorf("Decode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRouterAdvert(t *testing.T) {
	prefixes := []netip.Prefix{
		netip.MustParsePrefix("2001:db8:10::7/64"), // host bits are cleared
		netip.MustParsePrefix("198.51.100.0/24"),   // not IPv6: skipped
	}
	frame := RouterAdvert(macGateway, ip("fe80::1"), 30*time.Minute, prefixes...)

	if got, want := frame[0:6], hwaddr("33:33:00:00:00:01"); !bytes.Equal(got, want) {
		t.Errorf("Ethernet destination %x, want %x", got, want)
	}
	ip6 := frame[14:]
	if ip6[7] != 255 {
		t.Errorf("hop limit %d, want 255", ip6[7])
	}
	src := netip.AddrFrom16([16]byte(ip6[8:24]))
	dst := netip.AddrFrom16([16]byte(ip6[24:40]))
	if src != ip("fe80::1") || dst != ip("ff02::1") {
		t.Errorf("addresses %s → %s, want fe80::1 → ff02::1", src, dst)
	}
	msg := ip6[40 : 40+int(binary.BigEndian.Uint16(ip6[4:6]))]
	if got, want := binary.BigEndian.Uint16(msg[2:4]), icmpv6Checksum(msg, src, dst); got != want {
		t.Errorf("checksum %#04x, want %#04x", got, want)
	}
	m, err := ndp.ParseMessage(msg)
	if err != nil {
		t.Fatalf("parsing the RA: %v", err)
	}
	want := &ndp.RouterAdvertisement{
		CurrentHopLimit: 64,
		RouterLifetime:  30 * time.Minute,
		Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: macGateway},
			&ndp.PrefixInformation{
				PrefixLength:      64,
				OnLink:            true,
				ValidLifetime:     30 * 24 * time.Hour,
				PreferredLifetime: 7 * 24 * time.Hour,
				Prefix:            ip("2001:db8:10::"),
			},
		},
	}
	if diff := cmp.Diff(want, m, cmpAddrs); diff != "" {
		t.Errorf("RA (-want +got):\n%s", diff)
	}

	long := RouterAdvert(macGateway, ip("fe80::1"), 10*time.Hour)
	lm, err := ndp.ParseMessage(long[14+40:])
	if err != nil {
		t.Fatal(err)
	}
	if got := lm.(*ndp.RouterAdvertisement).RouterLifetime; got != 9000*time.Second {
		t.Errorf("router lifetime of 10h capped to %v, want 2h30m0s", got)
	}
}

func TestBuildersRejectProgrammingErrors(t *testing.T) {
	tests := []struct {
		name string
		fn   func()
	}{
		{"short MAC", func() { RARP(hwaddr("00:11:22:33:44:55:66:77")) }},
		{"IPv6 in an ARP", func() { GratuitousARP(macGuest, ip("2001:db8::1")) }},
		{"IPv4 in an NA", func() { UnsolicitedNA(macGuest, ip("198.51.100.1"), false) }},
		{"RA from a global address", func() { RouterAdvert(macGateway, ip("2001:db8::1"), time.Minute) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			tt.fn()
		})
	}
}

func TestSolicitedNADecodesAsAnAnswer(t *testing.T) {
	gwMAC, _ := net.ParseMAC("02:00:5e:10:00:01")
	vmMAC, _ := net.ParseMAC("52:54:00:00:00:10")
	gw, vm, target := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("2001:db8:10::10"), netip.MustParseAddr("2001:db8:10::20")
	b := SolicitedNA(gwMAC, gw, vmMAC, vm, target, true)
	if got := net.HardwareAddr(b[0:6]); got.String() != vmMAC.String() {
		t.Fatalf("sent to %s, want the soliciting VM %s", got, vmMAC)
	}
	o, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if o.Kind != KindNeighborAdvert || o.Unsolicited || !o.Override || o.Addr != target || o.MAC.String() != gwMAC.String() {
		t.Fatalf("decoded %s", o)
	}
}
