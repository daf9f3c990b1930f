package frames

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

// ipv4Frame and ipv6Frame are a VM's first packets after a restart of roamd
// (an ICMP echo and an ICMPv6 echo), truncated as the capture keeps them.
func ipv4Frame(src string) []byte {
	f := append(unhex("02005e100001"+"525400000010"+"0800"), make([]byte, 20)...)
	f[14] = 0x45
	a := netip.MustParseAddr(src).As4()
	copy(f[14+12:], a[:])
	return f
}

func ipv6Frame(src string) []byte {
	f := append(unhex("02005e100001"+"525400000010"+"86dd"), make([]byte, 40)...)
	f[14] = 0x60
	a := netip.MustParseAddr(src).As16()
	copy(f[14+8:], a[:])
	return f
}

func TestDecodeTraffic(t *testing.T) {
	for _, src := range []string{"10.10.0.10", "2001:db8:10::10"} {
		var frame []byte
		if netip.MustParseAddr(src).Is6() {
			frame = ipv6Frame(src)
		} else {
			frame = ipv4Frame(src)
		}
		o, err := DecodeTraffic(frame)
		if err != nil {
			t.Fatal(err)
		}
		if o.Kind != KindTraffic || o.Addr != netip.MustParseAddr(src) || o.MAC.String() != "52:54:00:00:00:10" {
			t.Fatalf("%s: %s", src, o)
		}
	}
	for name, frame := range map[string][]byte{
		"link-local source": ipv6Frame("fe80::10"),
		"unspecified":       ipv4Frame("0.0.0.0"),
		"multicast source":  ipv4Frame("224.0.0.1"),
		"ARP":               GratuitousARP(macGuest, ip("198.51.100.10")),
	} {
		if _, err := DecodeTraffic(frame); !errors.Is(err, ErrNotInteresting) {
			t.Errorf("%s: err %v, want not interesting", name, err)
		}
	}
	if _, err := DecodeTraffic(ipv4Frame("10.10.0.10")[:30]); err == nil || errors.Is(err, ErrNotInteresting) {
		t.Errorf("truncated IPv4 header: err %v, want malformed", err)
	}
}

func FuzzDecodeTraffic(f *testing.F) {
	f.Add(ipv4Frame("10.10.0.10"))
	f.Add(ipv6Frame("2001:db8:10::10"))
	f.Fuzz(func(t *testing.T, frame []byte) {
		orig := bytes.Clone(frame)
		o, err := DecodeTraffic(frame)
		if !bytes.Equal(orig, frame) {
			t.Fatal("DecodeTraffic modified its input")
		}
		if err == nil && (!o.Addr.IsGlobalUnicast() || len(o.MAC) != 6) {
			t.Fatalf("accepted %s", o)
		}
	})
}
