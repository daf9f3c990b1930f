package bgp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// attrBytes serialises the extended communities attribute of a path, as
// it goes on the wire.
func extCommBytes(t *testing.T, attrs []gobgp.PathAttributeInterface) []byte {
	t.Helper()
	for _, a := range attrs {
		if ec, ok := a.(*gobgp.PathAttributeExtendedCommunities); ok {
			b, err := ec.Serialize()
			if err != nil {
				t.Fatal(err)
			}
			return b[3:] // flags, type, length
		}
	}
	t.Fatal("no extended communities attribute")
	return nil
}

func TestEncodeRouteBytes(t *testing.T) {
	r := Route{Prefix: host("198.51.100.10"), Seq: 0x01020304, Sticky: true, MAC: mac("52:54:00:ab:cd:ef")}
	e, err := encodeRoute(r, testRouterID, 0x0102, testCommunity)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x06, 0x00, 0x01, 0x00, 0x01, 0x02, 0x03, 0x04, // MAC Mobility, sticky, sequence
		0x01, 0x03, 192, 0, 2, 11, 0x01, 0x02, // Route Origin 192.0.2.11:258
		0x03, 0xE0, 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, // opaque MAC
	}
	if got := extCommBytes(t, e.attrs); !bytes.Equal(got, want) {
		t.Errorf("extended communities\n got % x\nwant % x", got, want)
	}
	var comms []uint32
	var nh netip.Addr
	for _, a := range e.attrs {
		switch a := a.(type) {
		case *gobgp.PathAttributeCommunities:
			comms = a.Value
		case *gobgp.PathAttributeNextHop:
			nh = a.Value
		}
	}
	if !cmp.Equal(comms, []uint32{testCommunity}) {
		t.Errorf("communities = %v, want [%d]", comms, testCommunity)
	}
	if nh != netip.IPv4Unspecified() {
		t.Errorf("next hop = %v, want 0.0.0.0 (next hop self)", nh)
	}

	// No MAC, not sticky, no community.
	e, err = encodeRoute(Route{Prefix: host("2001:db8:10::1"), Seq: 1}, testRouterID, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	want = []byte{0x06, 0x00, 0x00, 0x00, 0, 0, 0, 1, 0x01, 0x03, 192, 0, 2, 11, 0, 1}
	if got := extCommBytes(t, e.attrs); !bytes.Equal(got, want) {
		t.Errorf("extended communities\n got % x\nwant % x", got, want)
	}
	for _, a := range e.attrs {
		switch a := a.(type) {
		case *gobgp.PathAttributeCommunities:
			t.Errorf("community %v with Community 0", a.Value)
		case *gobgp.PathAttributeMpReachNLRI:
			if a.Nexthop != netip.IPv6Unspecified() || a.AFI != gobgp.AFI_IP6 {
				t.Errorf("MP_REACH afi %d next hop %v, want IPv6 and ::", a.AFI, a.Nexthop)
			}
		}
	}
	if e.family != gobgp.RF_IPv6_UC {
		t.Errorf("family = %v, want IPv6 unicast", e.family)
	}

	if _, err := encodeRoute(Route{Prefix: r.Prefix, MAC: []byte{1, 2, 3}}, testRouterID, 1, 0); err == nil {
		t.Error("a 3-byte MAC encoded without error")
	}
}

// ec parses 8 wire bytes the way GoBGP does on receipt.
func ec(t *testing.T, b ...byte) gobgp.ExtendedCommunityInterface {
	t.Helper()
	c, err := gobgp.ParseExtended(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDecodeMobility(t *testing.T) {
	mm := func(flags byte, seq uint32) []byte {
		b := []byte{0x06, 0x00, flags, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[4:], seq)
		return b
	}
	ro := func(a string, tenant uint16) []byte {
		b := append([]byte{0x01, 0x03}, netip.MustParseAddr(a).AsSlice()...)
		return binary.BigEndian.AppendUint16(b, tenant)
	}
	macEC := []byte{0x03, MACSubType, 0x52, 0x54, 0, 1, 2, 3}
	for _, c := range []struct {
		name string
		ecs  [][]byte
		want mobility
	}{
		{"all three, re-sorted", [][]byte{macEC, ro("192.0.2.12", 7), mm(0, 5)},
			mobility{origin: netip.MustParseAddr("192.0.2.12"), tenant: 7, seq: 5, hasMAC: true, mac: [6]byte{0x52, 0x54, 0, 1, 2, 3}, hasOrig: true, hasMobil: true}},
		{"sticky", [][]byte{mm(1, 9)}, mobility{seq: 9, sticky: true, hasMobil: true}},
		{"highest of two sequences", [][]byte{mm(0, 9), mm(0, 3)}, mobility{seq: 9, hasMobil: true}},
		{"route origin of our tenant preferred", [][]byte{ro("192.0.2.1", 3), ro("192.0.2.12", 7)},
			mobility{origin: netip.MustParseAddr("192.0.2.12"), tenant: 7, hasOrig: true}},
		{"route origin of another tenant kept", [][]byte{ro("192.0.2.1", 3)},
			mobility{origin: netip.MustParseAddr("192.0.2.1"), tenant: 3, hasOrig: true}},
		{"unrelated communities ignored", [][]byte{
			{0x00, 0x02, 0xfd, 0xe9, 0, 0, 0, 1}, // route target
			{0x03, 0x0c, 0, 0, 0, 0, 0, 8},       // encapsulation
			{0x01, 0x02, 192, 0, 2, 1, 0, 1},     // IPv4 route target
		}, mobility{}},
		{"none", nil, mobility{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ecs []gobgp.ExtendedCommunityInterface
			for _, b := range c.ecs {
				ecs = append(ecs, ec(t, b...))
			}
			attrs := []gobgp.PathAttributeInterface{gobgp.NewPathAttributeOrigin(0)}
			if ecs != nil {
				attrs = append(attrs, gobgp.NewPathAttributeExtendedCommunities(ecs))
			}
			if got := decodeMobility(attrs, 7); got != c.want {
				t.Errorf("decodeMobility = %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	r := Route{Prefix: host("198.51.100.7"), Seq: 42, Sticky: true, MAC: mac("02:00:5e:10:00:07")}
	e, err := encodeRoute(r, testRouterID, testTenant, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Through the wire: serialise and parse the attribute back.
	var parsed []gobgp.PathAttributeInterface
	for _, a := range e.attrs {
		b, err := a.Serialize()
		if err != nil {
			t.Fatal(err)
		}
		p, err := gobgp.GetPathAttribute(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.DecodeFromBytes(b); err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, p)
	}
	m := decodeMobility(parsed, testTenant)
	got := Route{Prefix: r.Prefix, Seq: m.seq, Sticky: m.sticky, MAC: m.macAddr()}
	if !got.equal(r) || m.origin != testRouterID || m.tenant != testTenant {
		t.Errorf("round trip: %+v origin %v tenant %d, want %+v origin %v tenant %d", got, m.origin, m.tenant, r, testRouterID, testTenant)
	}
}

func TestHostRouteChecks(t *testing.T) {
	prefixes := []netip.Prefix{testV4Range, testV6Range}
	for _, c := range []struct {
		p        string
		host, in bool
	}{
		{"198.51.100.1/32", true, true},
		{"198.51.100.0/24", false, true},
		{"203.0.113.1/32", true, false},
		{"2001:db8:10::1/128", true, true},
		{"2001:db8:11::1/128", true, false},
		{"2001:db8:10::/64", false, true},
		{"::ffff:198.51.100.1/128", false, false},
	} {
		p := netip.MustParsePrefix(c.p)
		if got := isHostRoute(p); got != c.host {
			t.Errorf("isHostRoute(%v) = %v, want %v", p, got, c.host)
		}
		if got := within(prefixes, p); got != c.in && c.host {
			t.Errorf("within(%v) = %v, want %v", p, got, c.in)
		}
	}
}

func FuzzDecodeMobility(f *testing.F) {
	f.Add([]byte{0x06, 0x00, 0x01, 0, 0, 0, 0, 5, 0x03, 0xE0, 1, 2, 3, 4, 5, 6, 0x01, 0x03, 192, 0, 2, 1, 0, 7})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ecs []gobgp.ExtendedCommunityInterface
		for len(b) >= 8 {
			if c, err := gobgp.ParseExtended(b[:8]); err == nil {
				ecs = append(ecs, c)
			}
			b = b[8:]
		}
		m := decodeMobility([]gobgp.PathAttributeInterface{gobgp.NewPathAttributeExtendedCommunities(ecs)}, 7)
		if m.hasOrig && !m.origin.Is4() {
			t.Errorf("origin %v is not IPv4", m.origin)
		}
		if !m.hasMAC && m.macAddr() != nil {
			t.Error("MAC without a MAC community")
		}
	})
}
