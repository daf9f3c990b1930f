package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// The tests that run GoBGP servers do not run in parallel: GoBGP's
// StartBgp writes package-level route selection options that every other
// running server reads, which the race detector rightly reports.

// Test addresses: documentation ranges only; sessions run on loopback.
var (
	testRouterID = netip.MustParseAddr("192.0.2.11")
	otherOrigin  = netip.MustParseAddr("192.0.2.12")
	thirdOrigin  = netip.MustParseAddr("192.0.2.13")
	testV4Range  = netip.MustParsePrefix("198.51.100.0/24")
	testV6Range  = netip.MustParsePrefix("2001:db8:10::/64")
	testV6NH     = netip.MustParseAddr("2001:db8:ffff::11")
	loopback4    = netip.MustParseAddr("127.0.0.1")
	loopback4b   = netip.MustParseAddr("127.0.0.2")
	loopback6    = netip.MustParseAddr("::1")
)

const (
	testASN       = 65011
	leafASN       = 65001
	testTenant    = 7
	testCommunity = 65535<<16 | 7
)

func host(s string) netip.Prefix {
	a := netip.MustParseAddr(s)
	return netip.PrefixFrom(a, a.BitLen())
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// testLogger logs to stderr when ROAMD_TEST_LOG is set, else discards.
func testLogger() *slog.Logger {
	if os.Getenv("ROAMD_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// freePort returns a TCP port nothing listens on at addr right now.
func freePort(t testing.TB, addr netip.Addr) int {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// leaf is a plain GoBGP server standing in for a leaf switch: it listens
// on a loopback address and sends all paths (ADD-PATH) to its neighbours.
type leaf struct {
	t    testing.TB
	srv  *server.BgpServer
	addr netip.Addr
	port int
}

type leafOptions struct {
	listen   netip.Addr
	asn      uint32 // default leafASN
	routeID  string // default 192.0.2.1
	dialOnly bool   // do not listen: connect to the speaker instead
	port     int    // default a free port
}

func newLeaf(t testing.TB, o leafOptions) *leaf {
	t.Helper()
	if o.asn == 0 {
		o.asn = leafASN
	}
	if o.routeID == "" {
		o.routeID = "192.0.2.1"
	}
	if o.port == 0 {
		o.port = freePort(t, o.listen)
	}
	l := &leaf{t: t, srv: server.NewBgpServer(), addr: o.listen, port: o.port}
	go l.srv.Serve()
	port := int32(l.port)
	if o.dialOnly {
		port = -1
	}
	err := l.srv.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{
		Asn: o.asn, RouterId: o.routeID, ListenPort: port, ListenAddresses: []string{o.listen.String()},
	}})
	if err != nil {
		t.Fatalf("starting leaf: %v", err)
	}
	t.Cleanup(l.srv.Stop)
	return l
}

type neighborOptions struct {
	asn         uint32 // default testASN
	families    []Family
	password    string
	gracefulFor time.Duration // > 0: graceful restart helper
	addPathSend bool
	dialPort    int // > 0: connect to the speaker on this port instead of waiting
}

// addNeighbor configures a passive session towards a speaker at addr.
func (l *leaf) addNeighbor(addr netip.Addr, o neighborOptions) {
	l.t.Helper()
	if o.asn == 0 {
		o.asn = testASN
	}
	if len(o.families) == 0 {
		o.families = []Family{familyOf(addr)}
	}
	p := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: addr.String(), PeerAsn: o.asn, AuthPassword: o.password},
		Transport: &api.Transport{PassiveMode: o.dialPort == 0, RemotePort: uint32(o.dialPort), LocalAddress: l.addr.String()},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3, ConnectRetry: 1}},
	}
	if o.gracefulFor > 0 {
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: uint32(o.gracefulFor / time.Second)}
	}
	for _, f := range o.families {
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: apiFamily(f), Enabled: true}}
		if o.addPathSend {
			af.AddPaths = &api.AddPaths{Config: &api.AddPathsConfig{SendMax: 8}}
		}
		if o.gracefulFor > 0 {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		p.AfiSafis = append(p.AfiSafis, af)
	}
	if err := l.srv.AddPeer(context.Background(), &api.AddPeerRequest{Peer: p}); err != nil {
		l.t.Fatalf("leaf: adding neighbour %v: %v", addr, err)
	}
}

// peerConfig is the speaker-side configuration of a session to this leaf.
func (l *leaf) peerConfig() PeerConfig {
	return PeerConfig{Address: l.addr, ASN: leafASN, Port: l.port, ConnectRetry: time.Second}
}

// established reports whether the leaf's session with addr is up.
func (l *leaf) established(addr netip.Addr) bool {
	up := false
	_ = l.srv.ListPeer(context.Background(), &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) {
		up = p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
	})
	return up
}

func (l *leaf) waitEstablished(addr netip.Addr) {
	l.t.Helper()
	eventually(l.t, 20*time.Second, fmt.Sprintf("leaf session with %v", addr), func() bool { return l.established(addr) })
}

// received returns the paths the leaf holds from neighbour addr, by prefix.
func (l *leaf) received(addr netip.Addr, f Family) map[netip.Prefix][]*apiutil.Path {
	out := map[netip.Prefix][]*apiutil.Path{}
	err := l.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: addr.String(), Family: gobgpFamily(f)},
		func(n gobgp.NLRI, paths []*apiutil.Path) {
			if p, ok := prefixOf(n); ok {
				out[p] = append(out[p], paths...)
			}
		})
	if err != nil && !strings.Contains(err.Error(), "doesn't exist") {
		l.t.Errorf("leaf: listing paths from %v: %v", addr, err)
	}
	return out
}

// claim is a path the leaf originates, imitating another roamd's route.
type claim struct {
	prefix netip.Prefix
	pathID uint32
	origin netip.Addr // invalid: no Route Origin community
	tenant uint16
	seq    uint32
	sticky bool
	mac    net.HardwareAddr
}

func (c claim) path(withdraw bool) *apiutil.Path {
	nlri, _ := gobgp.NewIPAddrPrefix(c.prefix)
	ecs := []gobgp.ExtendedCommunityInterface{gobgp.NewMacMobilityExtended(c.seq, c.sticky)}
	if c.origin.IsValid() {
		o, _ := gobgp.NewIPv4AddressSpecificExtended(gobgp.EC_SUBTYPE_ROUTE_ORIGIN, c.origin, c.tenant, true)
		// The Route Origin first: a router may order them any way.
		ecs = append([]gobgp.ExtendedCommunityInterface{o}, ecs...)
	}
	if c.mac != nil {
		ecs = append(ecs, gobgp.NewOpaqueExtended(true, append([]byte{MACSubType}, c.mac...)))
	}
	attrs := []gobgp.PathAttributeInterface{gobgp.NewPathAttributeOrigin(0)}
	fam := gobgp.RF_IPv4_UC
	if c.prefix.Addr().Is4() {
		nh, _ := gobgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		attrs = append(attrs, nh)
	} else {
		fam = gobgp.RF_IPv6_UC
		mp, _ := gobgp.NewPathAttributeMpReachNLRI(fam, []gobgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		attrs = append(attrs, mp)
	}
	attrs = append(attrs, gobgp.NewPathAttributeExtendedCommunities(ecs))
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs, RemoteID: c.pathID, Withdrawal: withdraw}
}

// inject makes the leaf originate c (replacing its earlier path id).
func (l *leaf) inject(c claim) {
	l.t.Helper()
	if _, err := l.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{c.path(false)}}); err != nil {
		l.t.Fatalf("leaf: injecting %v: %v", c.prefix, err)
	}
}

// retract withdraws the leaf's path c (by prefix and path id).
func (l *leaf) retract(c claim) {
	l.t.Helper()
	if err := l.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{c.path(true)}}); err != nil {
		l.t.Fatalf("leaf: withdrawing %v: %v", c.prefix, err)
	}
}

// reset tears the leaf's session with addr down (hard reset).
func (l *leaf) reset(addr netip.Addr) {
	l.t.Helper()
	if err := l.srv.ResetPeer(context.Background(), &api.ResetPeerRequest{Address: addr.String()}); err != nil {
		l.t.Fatalf("leaf: resetting %v: %v", addr, err)
	}
}

// testConfig is a speaker configuration with the documentation ranges.
func testConfig(peers ...PeerConfig) Config {
	return Config{
		RouterID:    testRouterID,
		ASN:         testASN,
		ListenPort:  -1,
		TenantID:    testTenant,
		Community:   testCommunity,
		Prefixes:    []netip.Prefix{testV4Range, testV6Range},
		IPv6NextHop: testV6NH,
		Peers:       peers,
		Logger:      testLogger(),
	}
}

func newSpeaker(t testing.TB, cfg Config) *Speaker {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return s
}

func (s *Speaker) peerState(t testing.TB, addr netip.Addr) PeerStatus {
	t.Helper()
	for _, p := range s.Peers() {
		if p.Address == addr {
			return p
		}
	}
	t.Fatalf("no peer %v in Peers()", addr)
	return PeerStatus{}
}

func (s *Speaker) waitEstablished(t testing.TB, addr netip.Addr) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("speaker session with %v", addr), func() bool {
		return s.peerState(t, addr).State == "established"
	})
}

// claimWatcher reads a speaker's Claims channel and keeps the latest set
// per prefix, so tests wait for a state rather than for a message.
type claimWatcher struct {
	latest chan map[netip.Prefix]ClaimSet // holds the map; receive to lock
	seen   chan map[netip.Prefix]int
	empty  chan map[netip.Prefix]int // sets delivered with no claims
}

func watchClaims(t testing.TB, s *Speaker) *claimWatcher {
	w := &claimWatcher{latest: make(chan map[netip.Prefix]ClaimSet, 1), seen: make(chan map[netip.Prefix]int, 1),
		empty: make(chan map[netip.Prefix]int, 1)}
	w.latest <- map[netip.Prefix]ClaimSet{}
	w.seen <- map[netip.Prefix]int{}
	w.empty <- map[netip.Prefix]int{}
	go func() {
		for cs := range s.Claims() {
			m := <-w.latest
			m[cs.Prefix] = cs
			w.latest <- m
			n := <-w.seen
			n[cs.Prefix]++
			w.seen <- n
			if len(cs.Claims) == 0 {
				e := <-w.empty
				e[cs.Prefix]++
				w.empty <- e
			}
		}
	}()
	return w
}

// get returns the latest claim set reported for p.
func (w *claimWatcher) get(p netip.Prefix) (ClaimSet, bool) {
	m := <-w.latest
	cs, ok := m[p]
	w.latest <- m
	return cs, ok
}

// deliveries returns how many sets were reported for p.
func (w *claimWatcher) deliveries(p netip.Prefix) int {
	n := <-w.seen
	defer func() { w.seen <- n }()
	return n[p]
}

// emptied returns how many sets without claims were reported for p.
func (w *claimWatcher) emptied(p netip.Prefix) int {
	e := <-w.empty
	defer func() { w.empty <- e }()
	return e[p]
}

// waitFor polls until the latest set of p satisfies cond.
func (w *claimWatcher) waitFor(t testing.TB, p netip.Prefix, what string, cond func(ClaimSet) bool) ClaimSet {
	t.Helper()
	var cs ClaimSet
	eventually(t, 10*time.Second, fmt.Sprintf("claims on %v: %s", p, what), func() bool {
		var ok bool
		cs, ok = w.get(p)
		return ok && cond(cs)
	})
	return cs
}
