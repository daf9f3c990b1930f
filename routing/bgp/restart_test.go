package bgp

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// ribEvent is one change in what a leaf accepted from a speaker.
type ribEvent struct {
	prefix   netip.Prefix
	withdraw bool
	stale    bool
}

// recordRIB records, in order, every change the leaf makes to the paths it
// accepted from neighbours.
func recordRIB(t *testing.T, l *leaf) func() []ribEvent {
	var mu sync.Mutex
	var events []ribEvent
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	err := l.srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{OnPathUpdate: func(ps []*apiutil.Path, _ time.Time) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range ps {
			if pre, ok := prefixOf(p.Nlri); ok {
				events = append(events, ribEvent{prefix: pre, withdraw: p.Withdrawal, stale: p.Stale})
			}
		}
	}}, server.WatchPostUpdate(false, "", ""))
	if err != nil {
		t.Fatalf("watching the leaf: %v", err)
	}
	return func() []ribEvent {
		mu.Lock()
		defer mu.Unlock()
		return append([]ribEvent(nil), events...)
	}
}

// sessionState returns the leaf's state of its session with addr.
func (l *leaf) sessionState(addr netip.Addr) api.PeerState_SessionState {
	var st api.PeerState_SessionState
	_ = l.srv.ListPeer(context.Background(), &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) {
		st = p.GetState().GetSessionState()
	})
	return st
}

// holdsFor checks that cond stays true for the whole window: the way to
// observe that something does not happen.
func holdsFor(t *testing.T, window time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if !cond() {
			t.Fatalf("%s: failed after less than %v", what, window)
		}
	}
}

// restartFlags returns the graceful restart flags the leaf received from
// addr: the Restart State bit and the Forwarding State bit of every family.
func (l *leaf) restartFlags(t *testing.T, addr netip.Addr) (restarting bool, forwarding []bool) {
	t.Helper()
	err := l.srv.ListPeer(context.Background(), &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) {
		caps, err := apiutil.UnmarshalCapabilities(p.GetState().GetRemoteCap())
		if err != nil {
			t.Errorf("decoding capabilities: %v", err)
		}
		for _, c := range caps {
			if gr, ok := c.(*gobgp.CapGracefulRestart); ok {
				restarting = gr.Flags&0x08 != 0
				for _, tu := range gr.Tuples {
					forwarding = append(forwarding, tu.Flags&0x80 != 0)
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return restarting, forwarding
}

func TestGracefulRestart(t *testing.T) {
	lf := newLeaf(t, leafOptions{listen: loopback4})
	lf.addNeighbor(loopback4, neighborOptions{gracefulFor: 30 * time.Second})
	cfg := testConfig(lf.peerConfig())
	cfg.GracefulRestart = 30 * time.Second

	kept, dropped := host("198.51.100.10"), host("198.51.100.11")
	old := newSpeaker(t, cfg)
	if err := old.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []netip.Prefix{kept, dropped} {
		if err := old.Announce(Route{Prefix: p, Seq: 1}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "the leaf to receive both routes", func() bool {
		return len(lf.received(loopback4, IPv4Unicast)) == 2
	})
	if r, f := lf.restartFlags(t, loopback4); r || len(f) != 1 {
		t.Errorf("first start: restart bit %v, forwarding bits %v; want no restart bit and one family", r, f)
	}

	// The speaker goes away without a word, as in a crash.
	events := recordRIB(t, lf)
	if err := old.Detach(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Watch for it rather than list the leaf's paths: GoBGP marks paths
	// stale in place, racing with a concurrent ListPath.
	eventually(t, 10*time.Second, "the leaf to keep our routes as stale", func() bool {
		stale := map[netip.Prefix]bool{}
		for _, e := range events() {
			stale[e.prefix] = stale[e.prefix] || (e.stale && !e.withdraw)
		}
		return stale[kept] && stale[dropped]
	})
	if got := lf.received(loopback4, IPv4Unicast); len(got[kept]) != 1 || len(got[dropped]) != 1 {
		t.Fatalf("the leaf dropped our routes when we went away: %v", got)
	}

	// The new speaker connects, and holds the session while it restores:
	// once the leaf accepts connections again, a speaker that did not
	// hold would be up within its first connect attempt (2s).
	cfg.Restarting = true
	s := newSpeaker(t, cfg)
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the leaf to accept connections again", func() bool {
		return lf.sessionState(loopback4) == api.PeerState_SESSION_STATE_ACTIVE
	})
	holdsFor(t, 3*time.Second, "the session to stay down before Ready", func() bool {
		return !lf.established(loopback4)
	})
	if st := s.peerState(t, loopback4); st.State != "idle" || st.LastError == "" {
		t.Errorf("before Ready: session %s (%q), want idle with a reason", st.State, st.LastError)
	}
	// It restores one of the two routes.
	if err := s.Announce(Route{Prefix: kept, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the stale route that was not re-announced to go", func() bool {
		got := lf.received(loopback4, IPv4Unicast)
		return len(got[dropped]) == 0 && len(got[kept]) == 1 && !got[kept][0].Stale
	})
	if r, f := lf.restartFlags(t, loopback4); !r || len(f) != 1 || !f[0] {
		t.Errorf("after the restart: restart bit %v, forwarding bits %v; want both set", r, f)
	}

	// The kept route was never withdrawn; the dropped one was withdrawn
	// only after the kept one had been re-announced (End-of-RIB).
	reannounced, withdrawn := -1, -1
	for i, e := range events() {
		switch {
		case e.prefix == kept && e.withdraw:
			t.Errorf("the leaf withdrew %v during the restart (event %d)", kept, i)
		case e.prefix == kept && !e.stale && reannounced < 0:
			reannounced = i
		case e.prefix == dropped && e.withdraw:
			withdrawn = i
		}
	}
	if reannounced < 0 || withdrawn < reannounced {
		t.Errorf("re-announcement at event %d, stale withdrawal at %d: want the withdrawal after", reannounced, withdrawn)
	}
}

// A daemon may finish restoring before it connects: the sessions still
// open as those of a restarted speaker.
func TestReadyBeforeConnect(t *testing.T) {
	lf := newLeaf(t, leafOptions{listen: loopback4})
	lf.addNeighbor(loopback4, neighborOptions{gracefulFor: 30 * time.Second})
	cfg := testConfig(lf.peerConfig())
	cfg.GracefulRestart = 30 * time.Second
	cfg.Restarting = true
	s := newSpeaker(t, cfg)
	vm := host("198.51.100.10")
	if err := s.Announce(Route{Prefix: vm, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(); err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the leaf to receive the route", func() bool {
		return len(lf.received(loopback4, IPv4Unicast)[vm]) == 1
	})
	if r, f := lf.restartFlags(t, loopback4); !r || len(f) != 1 || !f[0] {
		t.Errorf("restart bit %v, forwarding bits %v; want both set", r, f)
	}
}

// A leaf that restarts gracefully keeps its claims through the restart
// (roamd helps, RFC 4724): they stay while the session is down, the ones
// the restarted leaf announces again are never withdrawn, and the others
// go at its End-of-RIB.
func TestClaimsKeptThroughLeafRestart(t *testing.T) {
	lf := newLeaf(t, leafOptions{listen: loopback4})
	lf.addNeighbor(loopback4, neighborOptions{gracefulFor: 30 * time.Second, addPathSend: true})
	cfg := testConfig(lf.peerConfig())
	cfg.GracefulRestart = 30 * time.Second
	s := newSpeaker(t, cfg)
	w := watchClaims(t, s)
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	kept := claim{prefix: host("198.51.100.10"), pathID: 1, origin: otherOrigin, tenant: testTenant, seq: 4, mac: mac("52:54:00:00:00:01")}
	dropped := claim{prefix: host("198.51.100.11"), pathID: 1, origin: otherOrigin, tenant: testTenant, seq: 2}
	lf.inject(kept)
	lf.inject(dropped)
	for _, c := range []claim{kept, dropped} {
		w.waitFor(t, c.prefix, "the claim", func(cs ClaimSet) bool { return len(cs.Claims) == 1 })
	}
	up := s.peerState(t, loopback4).Since

	// The leaf goes away without a word, as in a crash or a restart.
	if err := lf.srv.StopBgp(context.Background(), &api.StopBgpRequest{AllowGracefulRestart: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "our session to go down", func() bool { return s.peerState(t, loopback4).State != "established" })
	if all, err := s.AllClaims(); err != nil || len(all) != 2 {
		t.Errorf("claims while the leaf restarts = %+v, %v; want both kept", all, err)
	}

	// The restarted leaf announces one of the two again, then End-of-RIB.
	again := newLeaf(t, leafOptions{listen: loopback4, port: lf.port})
	again.addNeighbor(loopback4, neighborOptions{gracefulFor: 30 * time.Second, addPathSend: true})
	again.inject(kept)
	eventually(t, 30*time.Second, "the session to come back", func() bool {
		st := s.peerState(t, loopback4)
		return st.State == "established" && st.Since.After(up)
	})
	w.waitFor(t, dropped.prefix, "the claim not announced again to go", func(cs ClaimSet) bool { return len(cs.Claims) == 0 })
	if cs, _ := w.get(kept.prefix); len(cs.Claims) != 1 || cs.Claims[0].Seq != kept.seq || w.emptied(kept.prefix) > 0 {
		t.Errorf("claims on %v = %+v, withdrawn %d times; want the one claim, never withdrawn", kept.prefix, cs, w.emptied(kept.prefix))
	}
	if all, err := s.AllClaims(); err != nil || len(all) != 1 || all[0].Prefix != kept.prefix {
		t.Errorf("AllClaims after the restart = %+v, %v; want only %v", all, err, kept.prefix)
	}
}
