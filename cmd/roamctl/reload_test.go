package main

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/labs/nstest"
	"github.com/roamd/roamd/labs/scale/peer"
)

// TestReloadAddsAPeerAndAPortPattern edits roamd's configuration under it
// and sends SIGHUP: a second leaf is peered and a vnet* port is adopted,
// while the session to the first leaf, whose configuration did not change,
// stays up.
func TestReloadAddsAPeerAndAPortPattern(t *testing.T) {
	s := startSite(t, siteConfig)
	s.arrive(t)

	leaf2 := nstest.New(t, "leaf2")
	nstest.Veth(t, s.hv, "up1", leaf2, "eth0")
	s.hv.MustRun(t, "ip", "addr", "add", "198.51.100.5/31", "dev", "up1")
	leaf2.MustRun(t, "ip", "addr", "add", "198.51.100.4/31", "dev", "eth0")
	p2, err := peer.Start(leaf2.Name, peer.Config{
		RouterID: netip.MustParseAddr("192.0.2.2"), ASN: 65002,
		Roamd: netip.MustParseAddr("198.51.100.5"), RoamdASN: 65011, TenantID: 1,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("10.10.0.0/24")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p2.Stop() })

	// A port roamd does not manage yet.
	vnet := vmSpec{"vnet0", mustMAC("52:54:00:00:00:30"), netip.MustParseAddr("10.10.0.30")}
	vnetVM := nstest.New(t, "vm")
	nstest.Veth(t, s.hv, vnet.port, vnetVM, "eth0")

	before := s.leafPeer(t, leafAddr)
	establishedBefore := countKind(s.peer.Events(), "established")

	cfg := strings.Replace(siteConfig, `ports: ["tap*"]`, `ports: ["tap*", "vnet*"]`, 1)
	cfg = strings.Replace(cfg, "      - {address: 198.51.100.2",
		"      - {address: 198.51.100.4, asn: 65002, local_address: 198.51.100.5, hold_time: 9s, keepalive: 3s, connect_retry: 1s}\n      - {address: 198.51.100.2", 1)
	cfg = strings.ReplaceAll(cfg, "{{dir}}", s.roamd.Dir)
	if err := os.WriteFile(s.roamd.ConfigPath(), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.roamd.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}

	s.eventually(t, "the new leaf's session to come up", func() bool {
		return s.leafPeer(t, "198.51.100.4").State == "established"
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := p2.Wait(ctx, "vm1's route at the new leaf", func(e peer.Event) bool {
		return e.Kind == "claim" && e.Prefix.Addr() == vm1.addr
	}); err != nil {
		t.Fatal(err)
	}
	s.eventually(t, "vnet0 to be made a routed port", func() bool {
		out, _ := s.hv.Run("ip", "link", "show", vnet.port)
		return strings.Contains(out, gatewayMAC)
	})
	var st api.Status
	s.ctlJSON(t, &st, "show", "status")
	if !containsPort(st.Ports, vnet.port) {
		t.Errorf("show status does not list %s after the reload: %+v", vnet.port, st.Ports)
	}

	after := s.leafPeer(t, leafAddr)
	if after.State != "established" || !after.Since.Equal(before.Since) {
		t.Errorf("the unchanged session was reset: before %s since %v, after %s since %v",
			before.State, before.Since, after.State, after.Since)
	}
	if n := countKind(s.peer.Events(), "established"); n != establishedBefore {
		t.Errorf("the first leaf saw its session established %d times, %d before the reload", n, establishedBefore)
	}
}

// leafPeer returns roamd's view of the session to addr.
func (s *site) leafPeer(t *testing.T, addr string) api.Peer {
	t.Helper()
	ps, err := s.roamd.API.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Address == addr {
			return p
		}
	}
	return api.Peer{}
}

func countKind(evs []peer.Event, kind string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func containsPort(ps []api.Port, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}
