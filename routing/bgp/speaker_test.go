package bgp

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// addrs lets cmp compare netip values.
var addrs = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

// seen is what a leaf received for one prefix, decoded the way an
// operator reads a capture.
type seen struct {
	NextHop     netip.Addr
	ExtComms    [][8]byte // sorted
	Communities []uint32
}

func decodeSeen(p *apiutil.Path) seen {
	var s seen
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *gobgp.PathAttributeNextHop:
			s.NextHop = a.Value
		case *gobgp.PathAttributeMpReachNLRI:
			s.NextHop = a.Nexthop
		case *gobgp.PathAttributeCommunities:
			s.Communities = a.Value
		case *gobgp.PathAttributeExtendedCommunities:
			for _, ec := range a.Value {
				b, _ := ec.Serialize()
				s.ExtComms = append(s.ExtComms, [8]byte(b))
			}
		}
	}
	slices.SortFunc(s.ExtComms, func(a, b [8]byte) int { return bytes.Compare(a[:], b[:]) })
	return s
}

// wantExtComms are the exact extended community bytes of a route.
func wantExtComms(seq uint32, sticky bool, m []byte, origin netip.Addr, tenant uint16) [][8]byte {
	var mm, ro, mc [8]byte
	mm[0], mm[1] = 0x06, 0x00
	if sticky {
		mm[2] = 0x01
	}
	binary.BigEndian.PutUint32(mm[4:], seq)
	ro[0], ro[1] = 0x01, 0x03
	copy(ro[2:6], origin.AsSlice())
	binary.BigEndian.PutUint16(ro[6:], tenant)
	out := [][8]byte{mm, ro}
	if m != nil {
		mc[0], mc[1] = 0x03, MACSubType
		copy(mc[2:], m)
		out = append(out, mc)
	}
	slices.SortFunc(out, func(a, b [8]byte) int { return bytes.Compare(a[:], b[:]) })
	return out
}

func TestAnnounceReachesLeaf(t *testing.T) {
	lf := newLeaf(t, leafOptions{listen: loopback4})
	lf.addNeighbor(loopback4, neighborOptions{})
	s := newSpeaker(t, testConfig(lf.peerConfig()))
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	lf.waitEstablished(loopback4)

	vm := host("198.51.100.10")
	m := mac("52:54:00:12:34:56")
	if err := s.Announce(Route{Prefix: vm, Seq: 3, Sticky: true, MAC: m}); err != nil {
		t.Fatal(err)
	}
	want := seen{NextHop: loopback4, ExtComms: wantExtComms(3, true, m, testRouterID, testTenant), Communities: []uint32{testCommunity}}
	var got seen
	eventually(t, 5*time.Second, "the leaf to receive the route", func() bool {
		ps := lf.received(loopback4, IPv4Unicast)[vm]
		if len(ps) != 1 {
			return false
		}
		got = decodeSeen(ps[0])
		return true
	})
	if d := cmp.Diff(want, got, addrs); d != "" {
		t.Fatalf("route at the leaf (-want +got):\n%s", d)
	}

	// A higher sequence replaces the route.
	if err := s.Announce(Route{Prefix: vm, Seq: 4, MAC: m}); err != nil {
		t.Fatal(err)
	}
	want.ExtComms = wantExtComms(4, false, m, testRouterID, testTenant)
	eventually(t, 5*time.Second, "the leaf to see sequence 4", func() bool {
		ps := lf.received(loopback4, IPv4Unicast)[vm]
		return len(ps) == 1 && cmp.Equal(want, decodeSeen(ps[0]), addrs)
	})
	if got := s.Announced(); !cmp.Equal(got, []Route{{Prefix: vm, Seq: 4, MAC: m}}, addrs) {
		t.Errorf("Announced() = %v", got)
	}

	if err := s.Withdraw(vm); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the route to be withdrawn at the leaf", func() bool {
		return len(lf.received(loopback4, IPv4Unicast)[vm]) == 0
	})
	if got := s.Announced(); len(got) != 0 {
		t.Errorf("Announced() after Withdraw = %v", got)
	}
	if err := s.Withdraw(vm); err != nil {
		t.Errorf("second Withdraw: %v", err)
	}
}

func TestClaimsFromLeaf(t *testing.T) {
	lf := newLeaf(t, leafOptions{listen: loopback4})
	lf.addNeighbor(loopback4, neighborOptions{addPathSend: true})
	s := newSpeaker(t, testConfig(lf.peerConfig()))
	w := watchClaims(t, s)
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.waitEstablished(t, loopback4)
	select {
	case <-s.Established():
	case <-time.After(5 * time.Second):
		t.Fatal("Established() did not fire for an established session")
	}
	if !s.peerState(t, loopback4).AddPathRx {
		t.Errorf("AddPathRx = false with a leaf that sends all paths")
	}

	vm := host("198.51.100.10")
	ours := Route{Prefix: vm, Seq: 3, MAC: mac("52:54:00:12:34:56")}
	if err := s.Announce(ours); err != nil {
		t.Fatal(err)
	}

	// Another site claims the host with a higher sequence.
	c1 := claim{prefix: vm, pathID: 1, origin: otherOrigin, tenant: testTenant, seq: 4, mac: mac("52:54:00:00:00:01")}
	lf.inject(c1)
	want1 := Claim{Prefix: vm, Origin: otherOrigin, TenantID: testTenant, Seq: 4, MAC: c1.mac, Peer: loopback4}
	cs := w.waitFor(t, vm, "the first claim", func(cs ClaimSet) bool { return len(cs.Claims) == 1 })
	// The leaf numbers its paths itself; what matters is that ids differ.
	want1.PathID = cs.Claims[0].PathID
	if d := cmp.Diff([]Claim{want1}, cs.Claims, addrs); d != "" {
		t.Fatalf("claims (-want +got):\n%s", d)
	}

	// A second site claims it too: ADD-PATH delivers both.
	c2 := claim{prefix: vm, pathID: 2, origin: thirdOrigin, tenant: testTenant, seq: 5, sticky: true}
	lf.inject(c2)
	cs = w.waitFor(t, vm, "two claims", func(cs ClaimSet) bool { return len(cs.Claims) == 2 })
	origins := []netip.Addr{cs.Claims[0].Origin, cs.Claims[1].Origin}
	slices.SortFunc(origins, netip.Addr.Compare)
	if !slices.Equal(origins, []netip.Addr{otherOrigin, thirdOrigin}) || cs.Claims[0].PathID == cs.Claims[1].PathID {
		t.Fatalf("claims = %+v, want one from each of %v and %v with distinct path ids", cs.Claims, otherOrigin, thirdOrigin)
	}
	for _, c := range cs.Claims {
		if c.Origin == thirdOrigin && (!c.Sticky || c.Seq != 5 || c.MAC != nil) {
			t.Errorf("sticky claim decoded as %+v", c)
		}
	}
	all, err := s.AllClaims()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]ClaimSet{cs}, all, addrs); d != "" {
		t.Errorf("AllClaims (-want +got):\n%s", d)
	}

	// Withdrawing one path shrinks the set.
	lf.retract(c1)
	cs = w.waitFor(t, vm, "one claim left", func(cs ClaimSet) bool { return len(cs.Claims) == 1 })
	if cs.Claims[0].Origin != thirdOrigin {
		t.Fatalf("claim left = %+v, want the one from %v", cs.Claims[0], thirdOrigin)
	}

	// Not reported: our own route echoed back, a /24, a /32 outside the
	// mobility prefixes. The last two are counted as rejected.
	echo := host("198.51.100.20")
	lf.inject(claim{prefix: echo, pathID: 1, origin: testRouterID, tenant: testTenant, seq: 9})
	lf.inject(claim{prefix: netip.MustParsePrefix("198.51.100.0/24"), pathID: 1, origin: otherOrigin, seq: 1})
	lf.inject(claim{prefix: host("203.0.113.5"), pathID: 1, origin: otherOrigin, seq: 1})
	// A foreign route without roamd's communities is still a claim.
	foreign := host("198.51.100.30")
	lf.inject(claim{prefix: foreign, pathID: 1})
	cs = w.waitFor(t, foreign, "the foreign claim", func(cs ClaimSet) bool { return len(cs.Claims) == 1 })
	if c := cs.Claims[0]; c.Origin.IsValid() || c.Seq != 0 || c.MAC != nil {
		t.Errorf("foreign claim = %+v, want no origin, sequence 0, no MAC", c)
	}
	eventually(t, 5*time.Second, "two rejected routes", func() bool { return s.RejectedRoutes() == 2 })
	// The leaf sent them all in order on one session: the foreign route
	// came last, so the echo and the rejected routes were processed.
	for _, p := range []netip.Prefix{echo, netip.MustParsePrefix("198.51.100.0/24"), host("203.0.113.5")} {
		if cs, ok := w.get(p); ok {
			t.Errorf("claims reported for %v: %+v", p, cs)
		}
	}
	ps := s.peerState(t, loopback4)
	// Received: vm (1 path), echo, /24, outside, foreign.
	if ps.Received != 5 || ps.Accepted != 3 || ps.Rejected != 2 || ps.Advertised != 1 {
		t.Errorf("peer counters received/accepted/rejected/advertised = %d/%d/%d/%d, want 5/3/2/1",
			ps.Received, ps.Accepted, ps.Rejected, ps.Advertised)
	}
	all, err = s.AllClaims()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(all); got != 2 {
		t.Errorf("AllClaims has %d prefixes, want 2 (%v and %v): %+v", got, vm, foreign, all)
	}

	// Session reset: every claim of the peer is gone.
	lf.reset(loopback4)
	w.waitFor(t, vm, "no claims after the session reset", func(cs ClaimSet) bool { return len(cs.Claims) == 0 })
	w.waitFor(t, foreign, "no claims after the session reset", func(cs ClaimSet) bool { return len(cs.Claims) == 0 })
	if all, err := s.AllClaims(); err != nil || len(all) != 0 {
		t.Errorf("AllClaims after reset = %+v, %v; want none", all, err)
	}
}

func TestNeverTransit(t *testing.T) {
	a := newLeaf(t, leafOptions{listen: loopback4})
	a.addNeighbor(loopback4, neighborOptions{addPathSend: true})
	b := newLeaf(t, leafOptions{listen: loopback4b, asn: leafASN + 1, routeID: "192.0.2.2"})
	b.addNeighbor(loopback4, neighborOptions{})
	pb := b.peerConfig()
	pb.ASN = leafASN + 1
	pb.LocalAddress = loopback4
	s := newSpeaker(t, testConfig(a.peerConfig(), pb))
	w := watchClaims(t, s)
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.waitEstablished(t, loopback4)
	s.waitEstablished(t, loopback4b)

	learned := host("198.51.100.40")
	a.inject(claim{prefix: learned, pathID: 1, origin: otherOrigin, tenant: testTenant, seq: 2})
	w.waitFor(t, learned, "the claim from leaf A", func(cs ClaimSet) bool { return len(cs.Claims) == 1 })

	// A route of our own announced afterwards reaches B behind anything
	// the claim could have caused on the same session.
	marker := host("198.51.100.41")
	if err := s.Announce(Route{Prefix: marker, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "leaf B to receive our route", func() bool {
		return len(b.received(loopback4, IPv4Unicast)[marker]) == 1
	})
	if got := b.received(loopback4, IPv4Unicast); len(got) != 1 {
		t.Errorf("leaf B received %d prefixes, want only our own %v: %v", len(got), marker, got)
	}
	// And leaf A got our route but not its own back.
	eventually(t, 5*time.Second, "leaf A to receive our route", func() bool {
		return len(a.received(loopback4, IPv4Unicast)[marker]) == 1
	})
	if got := a.received(loopback4, IPv4Unicast); len(got) != 1 {
		t.Errorf("leaf A received %d prefixes from us, want 1: %v", len(got), got)
	}
}

func TestIPv6Routes(t *testing.T) {
	v6 := newLeaf(t, leafOptions{listen: loopback6})
	v6.addNeighbor(loopback6, neighborOptions{addPathSend: true})
	v4 := newLeaf(t, leafOptions{listen: loopback4b, routeID: "192.0.2.2"})
	v4.addNeighbor(loopback4, neighborOptions{families: []Family{IPv4Unicast, IPv6Unicast}})
	p4 := v4.peerConfig()
	p4.LocalAddress = loopback4
	p4.Families = []Family{IPv4Unicast, IPv6Unicast}
	s := newSpeaker(t, testConfig(v6.peerConfig(), p4))
	w := watchClaims(t, s)
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.waitEstablished(t, loopback6)
	s.waitEstablished(t, loopback4b)

	vm := host("2001:db8:10::10")
	m := mac("52:54:00:12:34:57")
	if err := s.Announce(Route{Prefix: vm, Seq: 7, MAC: m}); err != nil {
		t.Fatal(err)
	}
	ext := wantExtComms(7, false, m, testRouterID, testTenant)
	for _, c := range []struct {
		name    string
		lf      *leaf
		from    netip.Addr
		nextHop netip.Addr
	}{
		{"IPv6 session: its local address", v6, loopback6, loopback6},
		{"IPv4 session: the configured IPv6 next hop", v4, loopback4, testV6NH},
	} {
		want := seen{NextHop: c.nextHop, ExtComms: ext, Communities: []uint32{testCommunity}}
		var got seen
		eventually(t, 5*time.Second, c.name, func() bool {
			ps := c.lf.received(c.from, IPv6Unicast)[vm]
			if len(ps) == 1 {
				got = decodeSeen(ps[0])
			}
			return len(ps) == 1
		})
		if d := cmp.Diff(want, got, addrs); d != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, d)
		}
	}

	// Claims on /128 arrive like those on /32.
	other := host("2001:db8:10::20")
	v6.inject(claim{prefix: other, pathID: 1, origin: otherOrigin, tenant: testTenant, seq: 1, mac: m})
	cs := w.waitFor(t, other, "an IPv6 claim", func(cs ClaimSet) bool { return len(cs.Claims) == 1 })
	if c := cs.Claims[0]; c.Origin != otherOrigin || c.Peer != loopback6 || !bytes.Equal(c.MAC, m) {
		t.Errorf("IPv6 claim = %+v", c)
	}
	// A /64 is not a host route.
	v6.inject(claim{prefix: testV6Range, pathID: 1, origin: otherOrigin, seq: 1})
	eventually(t, 5*time.Second, "the /64 to be rejected", func() bool { return s.RejectedRoutes() == 1 })
}

// md5Failures reads the kernel's count of segments dropped for a wrong
// TCP-MD5 signature.
func md5Failures(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		t.Skipf("no TCP statistics: %v", err)
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(keys) == 0 || keys[0] != "TcpExt:" {
			continue
		}
		for j, k := range keys {
			if k == "TCPMD5Failure" && j < len(vals) {
				n, _ := strconv.Atoi(vals[j])
				return n
			}
		}
	}
	t.Skip("kernel does not count TCP-MD5 failures")
	return 0
}

func TestTCPMD5(t *testing.T) {
	good := newLeaf(t, leafOptions{listen: loopback4})
	good.addNeighbor(loopback4, neighborOptions{password: "fabric-key"})
	bad := newLeaf(t, leafOptions{listen: loopback4b, routeID: "192.0.2.2"})
	bad.addNeighbor(loopback4, neighborOptions{password: "fabric-key"})

	pg := good.peerConfig()
	pg.Password = "fabric-key"
	sg := newSpeaker(t, testConfig(pg))
	pb := bad.peerConfig()
	pb.Password = "another-key"
	pb.LocalAddress = loopback4
	before := md5Failures(t)
	sb := newSpeaker(t, testConfig(pb))
	for _, s := range []*Speaker{sg, sb} {
		if err := s.Connect(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	sg.waitEstablished(t, loopback4)
	// The kernel drops the wrong key's segments: wait until it did so
	// more than once (the first SYN and a retry), then the session must
	// still be down.
	eventually(t, 20*time.Second, "the kernel to reject segments with the wrong key", func() bool {
		return md5Failures(t) >= before+2
	})
	if st := sb.peerState(t, loopback4b).State; st == "established" || bad.established(loopback4) {
		t.Fatalf("session with mismatched TCP-MD5 keys is %s", st)
	}
}

func TestSetPeersKeepsUnchangedSessions(t *testing.T) {
	a := newLeaf(t, leafOptions{listen: loopback4})
	a.addNeighbor(loopback4, neighborOptions{})
	b := newLeaf(t, leafOptions{listen: loopback4b, routeID: "192.0.2.2"})
	b.addNeighbor(loopback4, neighborOptions{})
	pa := a.peerConfig()
	pb := b.peerConfig()
	pb.LocalAddress = loopback4
	s := newSpeaker(t, testConfig(pa))
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.waitEstablished(t, loopback4)
	since := s.peerState(t, loopback4).Since
	if since.IsZero() {
		t.Fatal("established session has no Since")
	}

	// Adding B leaves A alone.
	if err := s.SetPeers(context.Background(), []PeerConfig{pa, pb}); err != nil {
		t.Fatal(err)
	}
	s.waitEstablished(t, loopback4b)
	if st := s.peerState(t, loopback4); st.State != "established" || !st.Since.Equal(since) {
		t.Fatalf("session A after adding B: %s since %v, want established since %v", st.State, st.Since, since)
	}

	// Changing B re-creates B only: its session closes and GoBGP has it
	// with the new hold time.
	pb.HoldTime = 12 * time.Second
	if err := s.SetPeers(context.Background(), []PeerConfig{pb, pa}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "session B to be closed", func() bool {
		return s.peerState(t, loopback4b).State != "established" && !b.established(loopback4)
	})
	var hold uint64
	_ = s.srv.ListPeer(context.Background(), &api.ListPeerRequest{Address: loopback4b.String()}, func(p *api.Peer) {
		hold = p.GetTimers().GetConfig().GetHoldTime()
	})
	if hold != 12 {
		t.Errorf("session B's hold time after the change = %ds, want 12s", hold)
	}
	if st := s.peerState(t, loopback4); st.State != "established" || !st.Since.Equal(since) {
		t.Fatalf("session A changed when B was changed: %s since %v, want established since %v", st.State, st.Since, since)
	}

	// Removing B closes it; A stays.
	if err := s.SetPeers(context.Background(), []PeerConfig{pa}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "leaf B to see the session closed", func() bool { return !b.established(loopback4) })
	ps := s.Peers()
	if len(ps) != 1 || ps[0].Address != loopback4 || !ps[0].Since.Equal(since) {
		t.Fatalf("Peers() after removing B = %+v", ps)
	}
}

func TestListen(t *testing.T) {
	cfg := testConfig()
	cfg.ListenPort = freePort(t, netip.IPv4Unspecified())
	// The leaf only dials, so the session exists only if the speaker
	// accepts it.
	lf := newLeaf(t, leafOptions{listen: loopback4b, routeID: "192.0.2.2", dialOnly: true})
	lf.addNeighbor(loopback4, neighborOptions{dialPort: cfg.ListenPort})
	p := lf.peerConfig()
	p.Port = freePort(t, loopback4b) // nothing listens there
	cfg.Peers = []PeerConfig{p}
	s := newSpeaker(t, cfg)
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.waitEstablished(t, loopback4b)

	// A second speaker on the same port fails to start, and says why.
	second := testConfig()
	second.ListenPort = cfg.ListenPort
	if _, err := New(second); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("second speaker on port %d: %v, want address already in use", cfg.ListenPort, err)
	}
}

func TestMaxPrefixes(t *testing.T) {
	lf := newLeaf(t, leafOptions{listen: loopback4})
	lf.addNeighbor(loopback4, neighborOptions{addPathSend: true})
	p := lf.peerConfig()
	p.MaxPrefixes = 2
	s := newSpeaker(t, testConfig(p))
	s.prefixHold = time.Second
	w := watchClaims(t, s)
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.waitEstablished(t, loopback4)
	sinceUp := s.peerState(t, loopback4).Since

	cs := []claim{
		{prefix: host("198.51.100.1"), pathID: 1, origin: otherOrigin, seq: 1},
		{prefix: host("198.51.100.2"), pathID: 1, origin: otherOrigin, seq: 1},
		{prefix: host("198.51.100.3"), pathID: 1, origin: otherOrigin, seq: 1},
	}
	for _, c := range cs {
		lf.inject(c)
	}
	eventually(t, 10*time.Second, "the session to go down over the limit", func() bool {
		st := s.peerState(t, loopback4)
		return st.State != "established" && strings.Contains(st.LastError, "max prefixes")
	})
	// It comes back by itself once the hold is over; the leaf now keeps
	// within the limit.
	lf.retract(cs[2])
	eventually(t, 20*time.Second, "the session to come back", func() bool {
		st := s.peerState(t, loopback4)
		return st.State == "established" && st.Since.After(sinceUp)
	})
	for _, c := range cs[:2] {
		w.waitFor(t, c.prefix, "the claim after the session came back", func(cs ClaimSet) bool { return len(cs.Claims) == 1 })
	}
}

// goroutinesExceptGoBGPBuffers counts the running goroutines, leaving out
// GoBGP's infinite-channel buffers: GoBGP v4.8.0 closes a session's
// outgoing queue and drains it without waiting (cleanInfiniteChannel), so
// a buffer that still holds messages blocks forever. That leak is
// GoBGP's; this test checks that nothing else stays behind.
func goroutinesExceptGoBGPBuffers() (int, string) {
	buf := make([]byte, 4<<20)
	all := string(buf[:runtime.Stack(buf, true)])
	n := 0
	var kept []string
	for _, g := range strings.Split(all, "\n\n") {
		if !strings.Contains(g, "channels.(*InfiniteChannel).infiniteBuffer") {
			n++
			kept = append(kept, g)
		}
	}
	return n, strings.Join(kept, "\n\n")
}

// Stop and Detach leave nothing running: a daemon reloading tenants must
// not accumulate goroutines.
func TestStopReleasesEverything(t *testing.T) {
	base, _ := goroutinesExceptGoBGPBuffers()
	for _, detach := range []bool{false, true} {
		lf := newLeaf(t, leafOptions{listen: loopback4})
		lf.addNeighbor(loopback4, neighborOptions{})
		s, err := New(testConfig(lf.peerConfig()))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Connect(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.Announce(Route{Prefix: host("198.51.100.1"), Seq: 1}); err != nil {
			t.Fatal(err)
		}
		lf.waitEstablished(loopback4)
		stop := s.Stop
		if detach {
			stop = s.Detach
		}
		if err := stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, open := <-s.Claims(); open {
			t.Error("Claims() still open after stopping")
		}
		if err := s.Announce(Route{Prefix: host("198.51.100.2")}); err != ErrStopped {
			t.Errorf("Announce after stopping: %v, want ErrStopped", err)
		}
		lf.srv.Stop()
	}
	deadline := time.Now().Add(30 * time.Second) // generous: the race detector is slow
	for {
		n, stacks := goroutinesExceptGoBGPBuffers()
		if n <= base {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left, %d before:\n%s", n, base, stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A speaker with no routes costs little: a daemon runs one per tenant.
func TestIdleSpeakerFootprint(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := newSpeaker(t, testConfig())
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := float64(after.HeapAlloc) - float64(before.HeapAlloc); n > 3<<20 {
		t.Errorf("an idle speaker holds %.1f MiB, want at most 3 MiB", n/(1<<20))
	}
	runtime.KeepAlive(s)
}
