package bgp

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/osrg/gobgp/v4/api"
)

func TestConfigValidation(t *testing.T) {
	peer := PeerConfig{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65001}
	for _, c := range []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; "" = valid
	}{
		{"valid", func(*Config) {}, ""},
		{"IPv6 router ID", func(c *Config) { c.RouterID = netip.MustParseAddr("2001:db8::1") }, "router ID"},
		{"no ASN", func(c *Config) { c.ASN = 0 }, "asn"},
		{"no prefixes", func(c *Config) { c.Prefixes = nil }, "at least one mobility prefix"},
		{"host bits", func(c *Config) { c.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")} }, "not a masked prefix"},
		{"IPv4 next hop for IPv6", func(c *Config) { c.IPv6NextHop = netip.MustParseAddr("192.0.2.1") }, "IPv6 next hop"},
		{"fractional restart time", func(c *Config) { c.GracefulRestart = 1500 * time.Millisecond }, "graceful restart"},
		{"restart time too long", func(c *Config) { c.GracefulRestart = time.Hour + time.Hour }, "graceful restart"},
		{"listen port", func(c *Config) { c.ListenPort = 70000 }, "listen port"},
		{"peer without ASN", func(c *Config) { c.Peers[0].ASN = 0 }, "asn must be set"},
		{"peer twice", func(c *Config) { c.Peers = append(c.Peers, c.Peers[0]) }, "configured twice"},
		{"local address of another family", func(c *Config) { c.Peers[0].LocalAddress = netip.MustParseAddr("::1") }, "another family"},
		{"fractional timer", func(c *Config) { c.Peers[0].ConnectRetry = 1500 * time.Millisecond }, "whole seconds"},
		{"keepalive not below hold", func(c *Config) { c.Peers[0].HoldTime, c.Peers[0].Keepalive = 3*time.Second, 3*time.Second }, "longer than keepalive"},
		{"IPv6 over IPv4 without next hop", func(c *Config) {
			c.IPv6NextHop = netip.Addr{}
			c.Peers[0].Families = []Family{IPv4Unicast, IPv6Unicast}
		}, "needs an IPv6 next hop"},
		{"unknown family", func(c *Config) { c.Peers[0].Families = []Family{9} }, "unknown family(9)"},
		{"long password", func(c *Config) { c.Peers[0].Password = strings.Repeat("k", 81) }, "80 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(peer)
			c.change(&cfg)
			err := cfg.validate()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("validate() = %v, want no error", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("validate() = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestPeerDefaults(t *testing.T) {
	got := PeerConfig{Address: netip.MustParseAddr("::ffff:192.0.2.1"), ASN: 65001}.withDefaults()
	want := PeerConfig{
		Address: netip.MustParseAddr("192.0.2.1"), ASN: 65001, Port: 179,
		HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, ConnectRetry: 5 * time.Second,
		Families: []Family{IPv4Unicast},
	}
	if d := cmp.Diff(want, got, addrs); d != "" {
		t.Errorf("defaults (-want +got):\n%s", d)
	}
	v6 := PeerConfig{Address: netip.MustParseAddr("2001:db8::1"), Families: []Family{IPv6Unicast, IPv4Unicast, IPv6Unicast}}.withDefaults()
	if !cmp.Equal(v6.Families, []Family{IPv4Unicast, IPv6Unicast}) {
		t.Errorf("families = %v, want sorted without duplicates", v6.Families)
	}
}

func TestParseFamily(t *testing.T) {
	for _, f := range []Family{IPv4Unicast, IPv6Unicast} {
		if got, err := ParseFamily(f.String()); err != nil || got != f {
			t.Errorf("ParseFamily(%q) = %v, %v", f.String(), got, err)
		}
	}
	if _, err := ParseFamily("l2vpn-evpn"); err == nil {
		t.Error("ParseFamily accepted l2vpn-evpn")
	}
}

// The session configuration handed to GoBGP carries what the wire needs:
// ADD-PATH receive and graceful restart on every family, TCP-MD5, BFD, and
// the restart bits only after a restart. The prefix limit is roamd's own, not
// GoBGP's (whose check walks the Adj-RIB-In on every update).
func TestAPIPeer(t *testing.T) {
	p := PeerConfig{
		Address: netip.MustParseAddr("192.0.2.1"), ASN: 65001, Password: "k", MaxPrefixes: 1000, BFD: true,
		LocalAddress: netip.MustParseAddr("192.0.2.11"), Families: []Family{IPv4Unicast, IPv6Unicast},
	}.withDefaults()
	ap := apiPeer(p, peerOptions{gracefulRestart: 120 * time.Second, restarting: true})
	if ap.Conf.AuthPassword != "k" || ap.Conf.PeerAsn != 65001 || ap.Transport.RemotePort != 179 || ap.Transport.LocalAddress != "192.0.2.11" {
		t.Errorf("session basics: %v %v", ap.Conf, ap.Transport)
	}
	if tm := ap.Timers.Config; tm.HoldTime != 9 || tm.KeepaliveInterval != 3 || tm.ConnectRetry != 5 {
		t.Errorf("timers = %v", tm)
	}
	if ap.Bfd == nil || !ap.Bfd.Enabled {
		t.Error("BFD not enabled")
	}
	if gr := ap.GracefulRestart; gr == nil || !gr.Enabled || gr.RestartTime != 120 || !gr.LocalRestarting {
		t.Errorf("graceful restart = %v", gr)
	}
	if len(ap.AfiSafis) != 2 {
		t.Fatalf("%d families, want 2", len(ap.AfiSafis))
	}
	for _, af := range ap.AfiSafis {
		if !af.AddPaths.Config.Receive || !af.MpGracefulRestart.Config.Enabled || af.PrefixLimits != nil {
			t.Errorf("family %v: add-path receive %v, graceful restart %v, limit %d", af.Config.Family,
				af.AddPaths.Config.Receive, af.MpGracefulRestart.Config.Enabled, af.PrefixLimits.GetMaxPrefixes())
		}
	}
	plain := apiPeer(PeerConfig{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65001}.withDefaults(), peerOptions{})
	if plain.GracefulRestart != nil || plain.Bfd != nil || plain.AfiSafis[0].PrefixLimits != nil {
		t.Errorf("options set that were not asked for: %v", plain)
	}
	if plain.AfiSafis[0].Config.Family.Afi != api.Family_AFI_IP {
		t.Errorf("default family = %v, want IPv4", plain.AfiSafis[0].Config.Family)
	}
}

func TestBFDOneSpeakerPerProcess(t *testing.T) {
	a, b := &Speaker{cfg: testConfig()}, &Speaker{cfg: testConfig()}
	withBFD := []PeerConfig{{Address: loopback4, BFD: true}}
	if err := claimBFD(a, withBFD); err != nil {
		t.Fatal(err)
	}
	if err := claimBFD(b, withBFD); err == nil {
		t.Fatal("a second speaker got BFD")
	}
	if err := claimBFD(a, withBFD); err != nil {
		t.Errorf("the owner claiming again: %v", err)
	}
	if err := claimBFD(a, nil); err != nil {
		t.Fatal(err)
	}
	if err := claimBFD(b, withBFD); err != nil {
		t.Errorf("BFD not free after the owner dropped it: %v", err)
	}
	releaseBFD(b)
}
