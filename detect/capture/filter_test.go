package capture

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/detect/frames"
)

var (
	guestMAC   = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	gatewayMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	// nearGatewayMAC shares the gateway MAC's first four bytes: the filter
	// must compare all six.
	nearGatewayMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x02}
)

// frameMeta is what the kernel knows about a frame besides its bytes, read by
// the filter through ancillary loads.
type frameMeta struct {
	pktType    uint32 // PACKET_HOST, PACKET_BROADCAST, ..., PACKET_OUTGOING
	vlanInMeta bool   // the kernel moved a VLAN tag out of the frame
}

// runFilter runs the filter on frame in x/net/bpf's VM. The VM implements no
// ancillary loads, so the two the filter makes are replaced by constants
// holding what the kernel would load.
func runFilter(t *testing.T, ignore net.HardwareAddr, frame []byte, meta frameMeta) bool {
	t.Helper()
	return runFilterMode(t, ignore, false, frame, meta) != 0
}

// runFilterMode runs the announcements or the discovery filter and returns
// how many bytes the kernel would keep.
func runFilterMode(t *testing.T, ignore net.HardwareAddr, discover bool, frame []byte, meta frameMeta) int {
	t.Helper()
	prog := filterProgram(ignore, discover)
	loads := 0
	for i, ins := range prog {
		ext, ok := ins.(bpf.LoadExtension)
		if !ok {
			continue
		}
		switch ext.Num {
		case bpf.ExtType:
			prog[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: meta.pktType}
		case bpf.ExtVLANTagPresent:
			v := uint32(0)
			if meta.vlanInMeta {
				v = 1
			}
			prog[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: v}
		default:
			t.Fatalf("filter uses ancillary load %d the test cannot simulate", ext.Num)
		}
		loads++
	}
	if loads != 2 {
		t.Fatalf("filter makes %d ancillary loads, the test simulates 2", loads)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("filter does not load in the BPF VM: %v", err)
	}
	n, err := vm.Run(frame)
	if err != nil {
		t.Fatalf("running the filter: %v", err)
	}
	// The kernel keeps min(n, frame length) bytes: all of an announcement,
	// the headers of ordinary traffic.
	if n != 0 && n < len(frame) && n != trafficSnapLen {
		t.Fatalf("filter keeps %d of %d bytes, want all, nothing or the headers", n, len(frame))
	}
	return min(n, len(frame))
}

func TestFilter(t *testing.T) {
	a := netip.MustParseAddr
	host := frameMeta{pktType: unix.PACKET_HOST}
	bcast := frameMeta{pktType: unix.PACKET_BROADCAST}
	mcast := frameMeta{pktType: unix.PACKET_MULTICAST}
	tests := []struct {
		name   string
		frame  []byte
		meta   frameMeta
		accept bool
	}{
		{"QEMU RARP", frames.RARP(guestMAC), bcast, true},
		{"gratuitous ARP", frames.GratuitousARP(guestMAC, a("198.51.100.10")), bcast, true},
		{"ARP reply", frames.ARPReply(guestMAC, a("198.51.100.10"), gatewayMAC, a("198.51.100.1")), host, true},
		{"unsolicited NA", frames.UnsolicitedNA(guestMAC, a("2001:db8:10::10"), false), mcast, true},
		{"DAD NS", frames.NeighborSolicit(guestMAC, a("::"), a("2001:db8:10::10")), mcast, true},
		{"NS", frames.NeighborSolicit(guestMAC, a("2001:db8:10::10"), a("2001:db8:10::1")), mcast, true},
		{"RS", routerSolicit(guestMAC), mcast, true},
		{"frame to another host on a bridge", frames.GratuitousARP(guestMAC, a("198.51.100.10")), frameMeta{pktType: unix.PACKET_OTHERHOST}, true},

		{"the host's own frame out of the port", frames.GratuitousARP(guestMAC, a("198.51.100.10")), frameMeta{pktType: unix.PACKET_OUTGOING}, false},
		{"the host's own NA out of the port", frames.UnsolicitedNA(guestMAC, a("2001:db8:10::10"), false), frameMeta{pktType: unix.PACKET_OUTGOING}, false},
		{"from the gateway MAC", frames.GratuitousARP(gatewayMAC, a("198.51.100.1")), bcast, false},
		{"from a MAC close to the gateway's", frames.GratuitousARP(nearGatewayMAC, a("198.51.100.1")), bcast, true},
		{"VLAN tag in metadata", frames.GratuitousARP(guestMAC, a("198.51.100.10")), frameMeta{pktType: unix.PACKET_BROADCAST, vlanInMeta: true}, false},
		{"VLAN tag in the frame", vlanTagged(frames.GratuitousARP(guestMAC, a("198.51.100.10"))), bcast, false},
		{"router advertisement", frames.RouterAdvert(gatewayMAC, a("fe80::1"), time.Minute), mcast, false},
		{"IPv4 UDP", udpFrame(guestMAC), bcast, false},
		{"MLD behind a hop-by-hop header", mldFrame(guestMAC), mcast, false},
		{"IPv6 frame cut before the ICMPv6 type", frames.UnsolicitedNA(guestMAC, a("2001:db8:10::10"), false)[:14+40], mcast, false},
		{"runt frame", []byte{0xff, 0xff}, bcast, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runFilter(t, gatewayMAC, tt.frame, tt.meta); got != tt.accept {
				t.Errorf("filter accepts = %v, want %v", got, tt.accept)
			}
		})
	}
}

// TestDiscoveryFilter: on a port with no known VM, the headers of ordinary
// packets pass too; announcements still pass whole, and the host's own
// frames and the gateway's stay out.
func TestDiscoveryFilter(t *testing.T) {
	a := netip.MustParseAddr
	bcast := frameMeta{pktType: unix.PACKET_BROADCAST}
	host := frameMeta{pktType: unix.PACKET_HOST}
	for _, tt := range []struct {
		name  string
		frame []byte
		meta  frameMeta
		keep  int
	}{
		{"IPv4 UDP: headers", udpFrame(guestMAC), host, trafficSnapLen},
		{"IPv6 with a hop-by-hop header: headers", mldFrame(guestMAC), host, trafficSnapLen},
		{"gratuitous ARP: whole", frames.GratuitousARP(guestMAC, a("198.51.100.10")), bcast, len(frames.GratuitousARP(guestMAC, a("198.51.100.10")))},
		{"NA: whole", frames.UnsolicitedNA(guestMAC, a("2001:db8:10::10"), false), bcast, len(frames.UnsolicitedNA(guestMAC, a("2001:db8:10::10"), false))},
		{"the host's own packet", udpFrame(guestMAC), frameMeta{pktType: unix.PACKET_OUTGOING}, 0},
		{"from the gateway MAC", udpFrame(gatewayMAC), host, 0},
	} {
		if got := runFilterMode(t, gatewayMAC, true, tt.frame, tt.meta); got != min(tt.keep, len(tt.frame)) {
			t.Errorf("%s: keeps %d bytes, want %d", tt.name, got, min(tt.keep, len(tt.frame)))
		}
	}
}

func TestFilterWithoutIgnoreMAC(t *testing.T) {
	garp := frames.GratuitousARP(gatewayMAC, netip.MustParseAddr("198.51.100.1"))
	if !runFilter(t, nil, garp, frameMeta{pktType: unix.PACKET_BROADCAST}) {
		t.Errorf("without IgnoreMAC, a frame from the gateway MAC is dropped")
	}
	if runFilter(t, nil, udpFrame(guestMAC), frameMeta{pktType: unix.PACKET_BROADCAST}) {
		t.Errorf("without IgnoreMAC, UDP is accepted")
	}
}

func TestFilterAssembles(t *testing.T) {
	for _, ignore := range []net.HardwareAddr{nil, gatewayMAC} {
		raw, err := assembleFilter(ignore, true)
		if err != nil {
			t.Fatalf("assembleFilter(%v): %v", ignore, err)
		}
		if len(raw) == 0 || len(raw) > 64 {
			t.Errorf("assembleFilter(%v): %d instructions", ignore, len(raw))
		}
	}
}

// routerSolicit builds an RS from fe80::5054:ff:fe12:3456 (frames has no
// builder for it: roamd never sends one).
func routerSolicit(mac net.HardwareAddr) []byte {
	b := frames.NeighborSolicit(mac, netip.MustParseAddr("fe80::5054:ff:fe12:3456"), netip.MustParseAddr("fe80::1"))
	b[14+40] = icmpv6RS // the filter looks at the type only
	return b
}

func vlanTagged(frame []byte) []byte {
	out := append([]byte{}, frame[:12]...)
	out = append(out, 0x81, 0x00, 0x00, 0x64)
	return append(out, frame[12:]...)
}

// udpFrame is an IPv4 UDP broadcast (checksums are irrelevant to the filter).
func udpFrame(src net.HardwareAddr) []byte {
	b := make([]byte, 14+20+8+4)
	copy(b[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], 20+8+4)
	ip[8], ip[9] = 64, 17
	copy(ip[12:16], []byte{198, 51, 100, 10})
	copy(ip[16:20], []byte{198, 51, 100, 255})
	binary.BigEndian.PutUint16(ip[20:22], 40000)
	binary.BigEndian.PutUint16(ip[22:24], 9999)
	binary.BigEndian.PutUint16(ip[24:26], 8+4)
	return b
}

// mldFrame is an IPv6 packet whose next header is hop-by-hop (0), as MLD
// reports are; its ICMPv6 type byte offset holds 135 to make sure the filter
// checks the next header first.
func mldFrame(src net.HardwareAddr) []byte {
	b := make([]byte, 14+40+8+8)
	copy(b[0:6], []byte{0x33, 0x33, 0, 0, 0, 0x16})
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], 0x86dd)
	b[14] = 0x60
	b[14+4+1] = 16
	b[14+6] = 0 // hop-by-hop
	b[14+7] = 1
	b[14+40] = icmpv6NS
	return b
}
