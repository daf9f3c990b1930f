package fib

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestNewRejectsBadConfig(t *testing.T) {
	good := func() Config { return testConfig(rid1) }
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"kernel protocol", func(c *Config) { c.Protocol = 4 }, "protocol 4"},
		{"protocol too big", func(c *Config) { c.Protocol = 256 }, "protocol 256"},
		{"multicast MAC", func(c *Config) { c.GatewayMAC = []byte{1, 0, 0x5e, 0, 0, 1} }, "gateway MAC"},
		{"short MAC", func(c *Config) { c.GatewayMAC = []byte{2, 0} }, "gateway MAC"},
		{"IPv6 router ID", func(c *Config) { c.RouterID = netip.MustParseAddr("2001:db8::1") }, "router ID"},
		{"duplicate tenant", func(c *Config) { c.Tenants = append(c.Tenants, TenantConfig{Name: "default", ID: 2, Table: 100}) }, "duplicate name"},
		{"shared table", func(c *Config) { c.Tenants = append(c.Tenants, TenantConfig{Name: "b", ID: 2, Table: 254}) }, "table 254 already used"},
		{"shared id", func(c *Config) { c.Tenants = append(c.Tenants, TenantConfig{Name: "b", ID: 1, Table: 100}) }, "id 1 already used"},
		{"local table", func(c *Config) { c.Tenants[0].Table = 255 }, "table 255"},
		{"uplinks in main", func(c *Config) { c.Tenants[0].Uplinks = []string{"eth1"} }, "uplinks"},
		{"zoned gateway", func(c *Config) { c.Tenants[0].Gateways = []netip.Addr{netip.MustParseAddr("fe80::1%eth0")} }, "gateway fe80::1%eth0"},
		{"rule priority", func(c *Config) {
			c.Tenants = append(c.Tenants, TenantConfig{Name: "b", ID: 2, Table: 100})
			c.RulePriority = 0
		}, "rule priority 0"},
		{"port", func(c *Config) { c.ForwardPort = 70000 }, "forward port 70000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.change(&cfg)
			_, err := New(cfg, netns.None(), nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := New(good(), netns.None(), nil, nil); err != nil {
		t.Errorf("New with a good config: %v", err)
	}
}

func TestEncapRoundTrip(t *testing.T) {
	for _, e := range []ipEncap{
		{ID: 101, Dst: netip.MustParseAddr("198.51.100.12")},
		{ID: 65535, Dst: netip.MustParseAddr("2001:db8:ff:1::12")},
	} {
		b, err := e.Encode()
		mustOK(t, "Encode", err)
		var got ipEncap
		mustOK(t, "Decode", got.Decode(b))
		if !got.Equal(&e) {
			t.Errorf("round trip of %s gave %s", &e, &got)
		}
		wantType := nl.LWTUNNEL_ENCAP_IP
		if e.Dst.Is6() {
			wantType = nl.LWTUNNEL_ENCAP_IP6
		}
		if e.Type() != wantType {
			t.Errorf("%s: type %d, want %d", &e, e.Type(), wantType)
		}
		// The id is big-endian on the wire, as ip-route(8) writes it.
		if id := binary.BigEndian.Uint64(b[4:12]); id != e.ID {
			t.Errorf("%s: id on the wire %d", &e, id)
		}
	}
	if _, err := (&ipEncap{ID: 1}).Encode(); err == nil {
		t.Error("encoding an encap without destination: no error")
	}
}

// routeMsg builds an RTM_NEWROUTE payload as the kernel sends it.
func routeMsg(family, dstLen, table, proto, typ, scope uint8, flags uint32, attrs ...*nl.RtAttr) []byte {
	b := (&nl.RtMsg{RtMsg: unix.RtMsg{Family: family, Dst_len: dstLen, Table: table, Protocol: proto, Type: typ, Scope: scope, Flags: flags}}).Serialize()
	for _, a := range attrs {
		b = append(b, a.Serialize()...)
	}
	return b
}

func TestParseRoute(t *testing.T) {
	encap := nl.NewRtAttr(unix.RTA_ENCAP|unix.NLA_F_NESTED, nil)
	encap.AddRtAttr(lwtIPID, nl.BEUint64Attr(7))
	encap.AddRtAttr(lwtIPDst, []byte{198, 51, 100, 12})
	encap.AddRtAttr(lwtIPFlags, nl.BEUint16Attr(1))
	msg := routeMsg(unix.AF_INET, 32, unix.RT_TABLE_UNSPEC, 77, unix.RTN_UNICAST, unix.RT_SCOPE_LINK, 0,
		nl.NewRtAttr(unix.RTA_TABLE, nl.Uint32Attr(1000)),
		nl.NewRtAttr(unix.RTA_DST, []byte{192, 0, 2, 10}),
		nl.NewRtAttr(unix.RTA_OIF, nl.Uint32Attr(9)),
		nl.NewRtAttr(unix.RTA_PREFSRC, []byte{198, 51, 100, 11}),
		nl.NewRtAttr(unix.RTA_ENCAP_TYPE, nl.Uint16Attr(nl.LWTUNNEL_ENCAP_IP)),
		encap,
	)
	got, ok, err := parseRoute(msg)
	if err != nil || !ok {
		t.Fatalf("parseRoute: ok %v err %v", ok, err)
	}
	want := kernelRoute{
		Dst: netip.MustParsePrefix("192.0.2.10/32"), Table: 1000, Protocol: 77, Type: unix.RTN_UNICAST,
		Scope: unix.RT_SCOPE_LINK, OIF: 9, PrefSrc: netip.MustParseAddr("198.51.100.11"),
		Encap: &ipEncap{ID: 7, Dst: netip.MustParseAddr("198.51.100.12")}, EncapType: nl.LWTUNNEL_ENCAP_IP,
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y }),
		cmp.Comparer(func(x, y netip.Prefix) bool { return x == y })); d != "" {
		t.Errorf("parseRoute (-want +got):\n%s", d)
	}

	// IPv6 default route, metric only: an unspecified destination.
	got, ok, err = parseRoute(routeMsg(unix.AF_INET6, 0, 254, 3, unix.RTN_UNICAST, 0, 0,
		nl.NewRtAttr(unix.RTA_PRIORITY, nl.Uint32Attr(1024))))
	if err != nil || !ok || got.Dst != netip.MustParsePrefix("::/0") || got.Priority != 1024 {
		t.Errorf("IPv6 default: %+v ok %v err %v", got, ok, err)
	}
	if _, ok, _ := parseRoute(routeMsg(unix.AF_INET, 32, 254, 77, 1, 0, unix.RTM_F_CLONED)); ok {
		t.Error("a cloned cache entry was returned")
	}
	if _, ok, _ := parseRoute(routeMsg(unix.AF_MPLS, 20, 254, 77, 1, 0, 0)); ok {
		t.Error("an MPLS route was returned")
	}
	if _, _, err := parseRoute(msg[:8]); err == nil {
		t.Error("a truncated message gave no error")
	}
	if _, _, err := parseRoute(routeMsg(unix.AF_INET, 40, 254, 77, 1, 0, 0)); err == nil {
		t.Error("a /40 IPv4 route gave no error")
	}
}

func FuzzParseRoute(f *testing.F) {
	f.Add(routeMsg(unix.AF_INET, 32, 254, 77, 1, 253, 0, nl.NewRtAttr(unix.RTA_DST, []byte{192, 0, 2, 10})))
	f.Add(routeMsg(unix.AF_INET6, 128, 254, 77, 1, 0, 0, nl.NewRtAttr(unix.RTA_ENCAP_TYPE, nl.Uint16Attr(2)), nl.NewRtAttr(unix.RTA_ENCAP, []byte{4, 0})))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok, err := parseRoute(b)
		if ok && err == nil && !r.Dst.IsValid() {
			t.Errorf("accepted a route without a valid destination: %+v", r)
		}
	})
}

// TestRuleTunID checks the repair of netlink v1.3.1's FRA_TUN_ID decoding,
// which reads the kernel's big-endian value in host order.
func TestRuleTunID(t *testing.T) {
	for _, id := range []uint64{1, 101, 65535} {
		wire := nl.BEUint64Attr(id)
		decodedByLibrary := uint(binary.NativeEndian.Uint64(wire))
		if got := ruleTunID(decodedByLibrary); got != id {
			t.Errorf("tun_id %d came back as %d", id, got)
		}
	}
}

// parseLinkName reads the index and the name of an RTM_NEWLINK payload as
// the kernel sends it, and refuses a truncated one.
func TestParseLinkName(t *testing.T) {
	info := nl.NewIfInfomsg(unix.AF_UNSPEC)
	info.Index = 4097
	msg := append(info.Serialize(), nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(1500)).Serialize()...)
	msg = append(msg, nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated("tap4095")).Serialize()...)
	if idx, name, err := parseLinkName(msg); err != nil || idx != 4097 || name != "tap4095" {
		t.Errorf("parseLinkName = %d, %q, %v; want 4097, tap4095", idx, name, err)
	}
	if _, _, err := parseLinkName(msg[:10]); err == nil {
		t.Error("a 10-byte link message was accepted")
	}
	if _, _, err := parseLinkName(msg[:len(msg)-3]); err == nil {
		t.Error("a link message with a cut attribute was accepted")
	}
}
