package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// prefixLimitHold is how long a session that sent more than MaxPrefixes
// stays down before it is tried again (GoBGP alone would keep it down
// until the daemon restarts).
const prefixLimitHold = time.Minute

// claimBuffer is the capacity of the Claims channel. Claim sets beyond it
// wait in the speaker (one per prefix, latest state), not in the channel.
const claimBuffer = 1024

// globalFamilies are the only address families GoBGP's global RIB gets
// tables for. Without the list it makes tables for each of the 26 families
// it knows, each with 2,048 shards: 10 MB per speaker (one per tenant)
// before any route, where the two used cost under 1 MB.
var globalFamilies = []uint32{
	uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV4_UNICAST]),
	uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV6_UNICAST]),
}

// ErrStopped is returned by calls on a stopped speaker.
var ErrStopped = errors.New("bgp speaker stopped")

// Speaker is one tenant's BGP speaker: an embedded GoBGP server with its
// own sessions. Its methods are safe for concurrent use.
type Speaker struct {
	cfg         Config // validated; Peers unused after New (see peers)
	log         *slog.Logger
	srv         *server.BgpServer
	mute        atomic.Bool
	table       *claimTable
	claims      chan ClaimSet
	established chan struct{}
	sync        *initialSync
	rejected    atomic.Uint64
	cancel      context.CancelFunc // watchers and claim delivery
	delivering  sync.WaitGroup
	// prefixHold is prefixLimitHold; tests shorten it.
	prefixHold time.Duration

	// annMu serialises announcements so GoBGP's RIB and announced agree.
	annMu     sync.Mutex
	announced map[netip.Prefix]Route

	// opMu serialises session changes (Connect, Ready, SetPeers, Stop).
	opMu sync.Mutex
	// mu guards the fields below; it is never held across a GoBGP call
	// that could wait for one of the watcher callbacks.
	mu     sync.Mutex
	peers  map[netip.Addr]PeerConfig // desired, defaults filled in
	states map[netip.Addr]*peerState
	// generation counts deliberate re-creations of each peer, so a drop
	// caused by one is not repaired again.
	generation map[netip.Addr]int
	connected  bool // Connect was called
	restarting bool // Config.Restarting with graceful restart on
	ready      bool // Ready was called
	stopped    bool
}

// New validates cfg and starts the GoBGP server with roamd's policies. It
// opens no session: Connect does.
func New(cfg Config) (*Speaker, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("bgp config: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Speaker{
		cfg:         cfg,
		log:         log,
		table:       newClaimTable(),
		claims:      make(chan ClaimSet, claimBuffer),
		established: make(chan struct{}, 1),
		announced:   make(map[netip.Prefix]Route),
		peers:       make(map[netip.Addr]PeerConfig),
		states:      make(map[netip.Addr]*peerState),
		generation:  make(map[netip.Addr]int),
		restarting:  cfg.Restarting && cfg.GracefulRestart > 0,
		prefixHold:  prefixLimitHold,
	}
	s.cfg.Prefixes = slices.Clone(cfg.Prefixes)
	for _, p := range cfg.Peers {
		p = p.withDefaults()
		s.peers[p.Address] = p
	}
	s.cfg.Peers = nil
	initial := map[string][]Family{}
	for a, p := range s.peers {
		initial[a.String()] = p.Families
	}
	s.sync = newInitialSync(initial)
	if err := claimBFD(s, slices.Collect(maps.Values(s.peers))); err != nil {
		return nil, err
	}

	gl, lv := gobgpLogger(log, &s.mute)
	s.srv = server.NewBgpServer(server.LoggerOption(gl, lv))
	go s.srv.Serve()
	ctx := context.Background()
	listen := int32(cfg.ListenPort)
	if listen <= 0 {
		listen = -1
	}
	err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        cfg.ASN,
		RouterId:   cfg.RouterID.String(),
		ListenPort: listen,
		Families:   globalFamilies,
	}})
	if err == nil {
		err = installPolicies(ctx, s.srv, cfg.IPv6NextHop)
	}
	if err == nil {
		err = s.watch()
	}
	if err != nil {
		s.mute.Store(true)
		s.srv.Stop()
		releaseBFD(s)
		if s.cancel != nil {
			s.cancel()
		}
		return nil, fmt.Errorf("starting bgp speaker %v: %w", cfg.RouterID, err)
	}
	return s, nil
}

// watch subscribes to GoBGP's events before any session exists, so none
// is missed. One watcher takes them all, so they come in the order GoBGP
// produced them: paths as received (the import policy rejects every
// learned path, so the received stream is the only one), the withdrawals
// GoBGP makes itself when a session drops or a restarting peer's time is
// up, End-of-RIB (so when Synced closes the claim table holds the whole
// table) and session states (so a peer's paths turn stale before its
// restarted session sends anything).
func (s *Speaker) watch() error {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if err := s.srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{OnPathUpdate: s.onPaths, OnPathEor: s.onEor, OnPeerUpdate: s.onPeer},
		server.WatchUpdate(false, "", ""), server.WatchAdjInWithdraw(), server.WatchEor(false), server.WatchPeer()); err != nil {
		return fmt.Errorf("watching paths and sessions: %w", err)
	}
	s.delivering.Add(1)
	go func() {
		defer s.delivering.Done()
		s.table.deliver(ctx, s.claims)
	}()
	return nil
}

// importable reports whether the import filter accepts prefix p.
func (s *Speaker) importable(p netip.Prefix) bool {
	return isHostRoute(p) && within(s.cfg.Prefixes, p)
}

// onPaths receives every path as a peer sent it (and the withdrawals
// GoBGP makes when a session drops): roamd's own import filter decides
// what is a claim. GoBGP's import policy rejects them all, so GoBGP's RIB
// holds only our own routes and computes no best path for learned ones.
func (s *Speaker) onPaths(paths []*apiutil.Path, _ time.Time) {
	for _, p := range paths {
		prefix, ok := prefixOf(p.Nlri)
		if !ok {
			continue
		}
		peer := p.PeerAddress.Unmap()
		if !s.importable(prefix) {
			if !p.Withdrawal {
				s.reject(peer)
			}
			continue // never in the table: nothing to withdraw either
		}
		u := update{prefix: prefix, key: pathKey{peer: peer, pathID: p.RemoteID}, withdraw: p.Withdrawal}
		if !u.withdraw {
			u.mob = decodeMobility(p.Attrs, s.cfg.TenantID)
			u.own = u.mob.hasOrig && u.mob.origin == s.cfg.RouterID
		}
		s.table.apply(u)
	}
	s.enforceLimits(paths)
}

// reject counts an announcement the import filter refused.
func (s *Speaker) reject(peer netip.Addr) {
	s.rejected.Add(1)
	s.mu.Lock()
	if st := s.states[peer]; st != nil {
		st.rejected++
		st.rejectedUp++
	}
	s.mu.Unlock()
}

// enforceLimits shuts a session whose peer holds more accepted paths, or
// sent more rejected ones since it came up, than its MaxPrefixes. roamd
// counts itself: GoBGP's own prefix limit walks its Adj-RIB-In on every
// update, which made taking in 30,000 routes take minutes.
func (s *Speaker) enforceLimits(paths []*apiutil.Path) {
	var seen netip.Addr
	for _, p := range paths {
		peer := p.PeerAddress.Unmap()
		if peer == seen || !peer.IsValid() {
			continue
		}
		seen = peer
		s.mu.Lock()
		pc, ok := s.peers[peer]
		st := s.states[peer]
		over := ok && pc.MaxPrefixes > 0 && st != nil && !st.overLimit &&
			(uint64(s.table.acceptedBy(peer)) > uint64(pc.MaxPrefixes) || st.rejectedUp > uint64(pc.MaxPrefixes))
		if over {
			st.overLimit = true
		}
		s.mu.Unlock()
		if over {
			go s.shutOverLimit(peer, pc.MaxPrefixes)
		}
	}
}

// shutOverLimit closes a session over its prefix limit and lets it try
// again after prefixHold.
func (s *Speaker) shutOverLimit(peer netip.Addr, limit uint32) {
	msg := fmt.Sprintf("more than %d paths (max prefixes)", limit)
	s.log.Warn("bgp peer over its prefix limit: closing the session", "peer", peer, "limit", limit, "retryIn", s.prefixHold)
	if err := s.srv.DisablePeer(context.Background(), &api.DisablePeerRequest{Address: peer.String(), Communication: msg}); err != nil {
		s.log.Warn("closing a session over its prefix limit", "peer", peer, "err", err)
	}
	time.AfterFunc(s.prefixHold, func() {
		s.mu.Lock()
		if st := s.states[peer]; st != nil {
			st.overLimit = false
		}
		s.mu.Unlock()
		s.reenable(peer)
	})
}

// onPeer tracks session states and signals Established.
func (s *Speaker) onPeer(ev *apiutil.WatchEventMessage_PeerEvent, at time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE && ev.Type != apiutil.PEER_EVENT_INIT {
		return
	}
	addr := ev.Peer.State.NeighborAddress.Unmap()
	state := ev.Peer.State.SessionState
	reason := ev.Peer.State.DisconnectMessage
	s.mu.Lock()
	pc, ok := s.peers[addr]
	if !ok {
		s.mu.Unlock() // the last event of a peer SetPeers removed
		return
	}
	st := s.states[addr]
	if st == nil {
		st = &peerState{state: -1}
		s.states[addr] = st
	}
	if state == gobgp.BGP_FSM_ESTABLISHED && ev.Type == apiutil.PEER_EVENT_STATE {
		st.addPathRx = addPathReceive(ev.Peer.State.RemoteCap, pc.Families)
		st.rejectedUp = 0
	}
	overLimit := st.overLimit
	changed := st.state != state
	wasUp := changed && st.state == gobgp.BGP_FSM_ESTABLISHED
	// A session the peer or the network dropped (not one roamd removed or
	// shut down, nor BFD's administrative reset).
	dropped := changed && st.state == gobgp.BGP_FSM_ESTABLISHED && state == gobgp.BGP_FSM_IDLE &&
		slices.Contains(repairedDrops, ev.Peer.State.DisconnectReason)
	if changed {
		st.state, st.since = state, at
		switch {
		case overLimit && state != gobgp.BGP_FSM_ESTABLISHED:
			reason = fmt.Sprintf("more than %d paths (max prefixes): down for %v", pc.MaxPrefixes, s.prefixHold)
			st.lastError = reason
		case (state == gobgp.BGP_FSM_IDLE || state == gobgp.BGP_FSM_ACTIVE) && reason != "":
			// Only a session going down has an error worth showing; the
			// reasons of the opening states are just steps.
			st.lastError = reason
		case state == gobgp.BGP_FSM_ESTABLISHED:
			st.lastError = ""
		}
	}
	s.mu.Unlock()
	if !changed || ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	if wasUp {
		// GoBGP has already withdrawn the paths of a session that ended
		// for good; those left belong to a peer restarting gracefully and
		// stay until its End-of-RIB (see onEor).
		s.table.markStale(addr)
	}
	s.log.Info("bgp session", "routerID", s.cfg.RouterID, "peer", addr, "state", stateNames[state], "reason", reason)
	if !overLimit && dropped { // a session over its limit is re-enabled by shutOverLimit
		// GoBGP waits a fixed 5 s in Idle before reconnecting after a
		// session drop (a leaf restart, a clear), on top of the connect
		// retry. A re-created peer starts with no idle hold.
		s.mu.Lock()
		gen := s.generation[addr]
		s.mu.Unlock()
		go s.recreate(addr, gen)
	}
	if state == gobgp.BGP_FSM_ESTABLISHED {
		select {
		case s.established <- struct{}{}:
		default:
		}
	}
}

// reenable lets a session that exceeded its prefix limit connect again.
func (s *Speaker) reenable(addr netip.Addr) {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	_, configured := s.peers[addr]
	live := s.sessionsLiveLocked()
	s.mu.Unlock()
	if !configured || !live {
		return
	}
	if err := s.srv.EnablePeer(context.Background(), &api.EnablePeerRequest{Address: addr.String()}); err != nil {
		s.log.Warn("re-enabling bgp session after the prefix limit", "routerID", s.cfg.RouterID, "peer", addr, "err", err)
	}
}

// repairedDrops are the reasons a dropped session is re-created at once.
var repairedDrops = []api.PeerState_DisconnectReason{
	api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED,
	api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED,
	api.PeerState_DISCONNECT_REASON_READ_FAILED,
	api.PeerState_DISCONNECT_REASON_WRITE_FAILED,
	api.PeerState_DISCONNECT_REASON_HARD_RESET,
}

// recreate deletes and re-adds a peer whose session dropped, so it
// reconnects after its connect retry instead of GoBGP's idle hold.
func (s *Speaker) recreate(addr netip.Addr, gen int) {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	p, configured := s.peers[addr]
	live := s.sessionsLiveLocked() && !s.stopped
	current := s.generation[addr] == gen
	if current {
		s.generation[addr]++
	}
	s.mu.Unlock()
	if !configured || !live || !current {
		return // gone, stopping, or SetPeers re-created it meanwhile
	}
	ctx := context.Background()
	if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
		s.log.Warn("re-creating a dropped bgp session", "peer", addr, "err", err)
		return
	}
	if err := s.addPeers(ctx, []PeerConfig{p}, false); err != nil {
		s.log.Warn("re-creating a dropped bgp session", "peer", addr, "err", err)
		return
	}
	s.log.Info("bgp session dropped: reconnecting without GoBGP's idle hold", "peer", addr)
}

// Connect opens the configured sessions. After a restart (Config.Restarting
// with graceful restart on) the sessions are opened by Ready instead:
// GoBGP ends its restart deferral when every peer has sent End-of-RIB, not
// when roamd has re-announced, so the only way to keep our End-of-RIB from
// a leaf until the routes are back is to hold the session itself. The leaf
// keeps our routes as stale meanwhile.
func (s *Speaker) Connect(ctx context.Context) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return ErrStopped
	}
	already, hold := s.connected, s.restarting && !s.ready
	s.connected = true
	peers := s.sortedPeersLocked()
	s.mu.Unlock()
	if already {
		return nil
	}
	if hold {
		s.log.Info("bgp sessions held until the restore is finished", "routerID", s.cfg.RouterID, "peers", len(peers))
		return nil
	}
	// When Ready came first, this is still the first open after the
	// restart: the restart bits must be set.
	return s.addPeers(ctx, peers, s.restarting)
}

// Ready ends a graceful restart: the routes are re-announced, so the
// sessions open now, with the Restart State and Forwarding State bits set,
// and GoBGP sends every route and then End-of-RIB, after which the leaves
// drop the stale routes that were not re-announced. Without a pending
// restart Ready does nothing.
func (s *Speaker) Ready() error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return ErrStopped
	}
	pending, connected := s.restarting && !s.ready, s.connected
	s.ready = true
	peers := s.sortedPeersLocked()
	s.mu.Unlock()
	if !pending || !connected {
		return nil
	}
	s.annMu.Lock()
	n := len(s.announced)
	s.annMu.Unlock()
	s.log.Info("bgp restore finished, opening sessions", "routerID", s.cfg.RouterID, "routes", n)
	return s.addPeers(context.Background(), peers, true)
}

// sessionsLiveLocked reports whether configured peers are sessions in
// GoBGP (Connect called and no restart pending).
func (s *Speaker) sessionsLiveLocked() bool {
	return s.connected && (!s.restarting || s.ready) && !s.stopped
}

func (s *Speaker) sortedPeersLocked() []PeerConfig {
	return slices.SortedFunc(maps.Values(s.peers), func(a, b PeerConfig) int { return a.Address.Compare(b.Address) })
}

func (s *Speaker) options(restarting bool) peerOptions {
	return peerOptions{gracefulRestart: s.cfg.GracefulRestart, restarting: restarting}
}

func (s *Speaker) addPeers(ctx context.Context, peers []PeerConfig, restarting bool) error {
	var errs []error
	for _, p := range peers {
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p, s.options(restarting))}); err != nil {
			errs = append(errs, fmt.Errorf("adding peer %v: %w", p.Address, err))
		}
	}
	return errors.Join(errs...)
}

// SetPeers replaces the peer list: new peers are added, missing ones
// removed, changed ones re-created; sessions whose configuration did not
// change are left alone.
func (s *Speaker) SetPeers(ctx context.Context, peers []PeerConfig) error {
	if err := validatePeers(peers, s.cfg.IPv6NextHop); err != nil {
		return fmt.Errorf("bgp peers: %w", err)
	}
	want := make(map[netip.Addr]PeerConfig, len(peers))
	for _, p := range peers {
		p = p.withDefaults()
		want[p.Address] = p
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.isStopped() {
		return ErrStopped
	}
	if err := claimBFD(s, slices.Collect(maps.Values(want))); err != nil {
		return err
	}
	s.mu.Lock()
	live := s.sessionsLiveLocked()
	have := s.peers
	s.peers = want
	for a := range s.states {
		if _, ok := want[a]; !ok {
			delete(s.states, a)
		}
	}
	s.mu.Unlock()
	if !live {
		return nil
	}
	var errs []error
	for _, a := range slices.SortedFunc(maps.Keys(have), netip.Addr.Compare) {
		if w, ok := want[a]; ok && samePeer(w, have[a]) {
			continue
		}
		s.mu.Lock()
		s.generation[a]++ // the drop this causes is not one to repair
		s.mu.Unlock()
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
			errs = append(errs, fmt.Errorf("removing peer %v: %w", a, err))
		}
	}
	var add []PeerConfig
	for _, a := range slices.SortedFunc(maps.Keys(want), netip.Addr.Compare) {
		if h, ok := have[a]; !ok || !samePeer(h, want[a]) {
			add = append(add, want[a])
		}
	}
	return errors.Join(append(errs, s.addPeers(ctx, add, false))...)
}

// Announce adds our path for r.Prefix or replaces it when anything
// changed; announcing the same route again does nothing.
func (s *Speaker) Announce(r Route) error {
	if !isHostRoute(r.Prefix) {
		return fmt.Errorf("announcing %v: not a /32 or /128", r.Prefix)
	}
	if !within(s.cfg.Prefixes, r.Prefix) {
		return fmt.Errorf("announcing %v: outside the mobility prefixes", r.Prefix)
	}
	e, err := encodeRoute(r, s.cfg.RouterID, s.cfg.TenantID, s.cfg.Community)
	if err != nil {
		return err
	}
	s.annMu.Lock()
	defer s.annMu.Unlock()
	if old, ok := s.announced[r.Prefix]; ok && old.equal(r) {
		return nil
	}
	if s.isStopped() {
		return ErrStopped
	}
	if _, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{{
		Family: e.family, Nlri: e.nlri, Attrs: e.attrs,
	}}}); err != nil {
		return fmt.Errorf("announcing %v: %w", r.Prefix, err)
	}
	r.MAC = slices.Clone(r.MAC)
	s.announced[r.Prefix] = r
	return nil
}

// Withdraw removes our path for p; withdrawing a prefix we do not
// announce does nothing.
func (s *Speaker) Withdraw(p netip.Prefix) error {
	s.annMu.Lock()
	defer s.annMu.Unlock()
	r, ok := s.announced[p]
	if !ok {
		return nil
	}
	if s.isStopped() {
		return ErrStopped
	}
	e, err := encodeRoute(r, s.cfg.RouterID, s.cfg.TenantID, s.cfg.Community)
	if err != nil {
		return err
	}
	if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{{
		Family: e.family, Nlri: e.nlri, Attrs: e.attrs, Withdrawal: true,
	}}}); err != nil {
		return fmt.Errorf("withdrawing %v: %w", p, err)
	}
	delete(s.announced, p)
	return nil
}

func (s *Speaker) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// Announced returns the routes we currently announce, ordered by prefix.
func (s *Speaker) Announced() []Route {
	s.annMu.Lock()
	defer s.annMu.Unlock()
	out := make([]Route, 0, len(s.announced))
	for _, r := range s.announced {
		r.MAC = slices.Clone(r.MAC)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Route) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out
}

// Claims delivers every change of a prefix's claim set. A reader that
// falls behind receives the latest set of each changed prefix, never a
// stale one last. The channel is closed when the speaker stops.
func (s *Speaker) Claims() <-chan ClaimSet { return s.claims }

// Established receives a value whenever a session reaches established
// (several in a row may arrive as one): the moment to re-evaluate claims.
func (s *Speaker) Established() <-chan struct{} { return s.established }

// RejectedRoutes is the number of announcements the import filter refused
// (not a /32 or /128, or outside the mobility prefixes), over all peers.
func (s *Speaker) RejectedRoutes() uint64 { return s.rejected.Load() }

// AllClaims returns every prefix's claim set as the claim table holds it
// now (every accepted path of every peer, each ADD-PATH id separately):
// the same view Claims reports changes of. Prefixes without claims are
// absent.
func (s *Speaker) AllClaims() ([]ClaimSet, error) {
	if s.isStopped() {
		return nil, ErrStopped
	}
	return s.table.all(), nil
}

// Redeliver queues the current claim set of each prefix for Claims, as if
// it had changed (an empty set for a prefix nobody claims). A reader that
// compared a snapshot from AllClaims with its own state repairs what
// differs this way, with the latest state rather than the snapshot, which
// may already be older than what it has.
func (s *Speaker) Redeliver(prefixes []netip.Prefix) {
	s.table.redeliver(prefixes)
}

// families are the address families of the mobility prefixes.
func (s *Speaker) families() []Family {
	var fs []Family
	for _, p := range s.cfg.Prefixes {
		if f := familyOf(p.Addr()); !slices.Contains(fs, f) {
			fs = append(fs, f)
		}
	}
	slices.Sort(fs)
	return fs
}

// Peers returns the state of every configured session, ordered by address.
func (s *Speaker) Peers() []PeerStatus {
	// GoBGP can count what it advertised, but does so by running the
	// export policy over the whole RIB (most of a second with 100,000
	// learned routes). Every route of ours in a session's families is
	// advertised on it, so count those instead.
	perFamily := map[Family]uint64{}
	s.annMu.Lock()
	for p := range s.announced {
		perFamily[familyOf(p.Addr())]++
	}
	s.annMu.Unlock()
	// Nothing here asks GoBGP: its peer listing counts received routes by
	// walking the Adj-RIB-In. The claim table keeps the counts.
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerStatus, 0, len(s.peers))
	for _, pc := range s.sortedPeersLocked() {
		ps := PeerStatus{Address: pc.Address, ASN: pc.ASN, State: "idle", Families: slices.Clone(pc.Families)}
		if st := s.states[pc.Address]; st != nil {
			if n, ok := stateNames[st.state]; ok {
				ps.State = n
			}
			ps.Since, ps.LastError, ps.Rejected = st.since, st.lastError, st.rejected
		}
		if s.restarting && !s.ready && s.connected {
			ps.LastError = "waiting for the restore to finish (graceful restart)"
		}
		if st := s.states[pc.Address]; st != nil {
			ps.AddPathRx = ps.State == "established" && st.addPathRx
		}
		if ps.State == "established" {
			for _, f := range pc.Families {
				ps.Advertised += perFamily[f]
			}
		}
		ps.Accepted = uint64(s.table.acceptedBy(pc.Address))
		ps.Received = ps.Accepted
		if st := s.states[pc.Address]; st != nil {
			ps.Received += st.rejectedUp
		}
		out = append(out, ps)
	}
	return out
}

// Stop withdraws every route, closes the sessions with a Cease
// notification (so peers drop our routes at once, graceful restart or
// not) and stops the server. The Claims channel is closed.
func (s *Speaker) Stop(ctx context.Context) error {
	s.annMu.Lock()
	var err error
	if len(s.announced) > 0 && !s.isStopped() {
		if err = s.srv.DeletePath(apiutil.DeletePathRequest{DeleteAll: true}); err != nil {
			err = fmt.Errorf("withdrawing all routes: %w", err)
		}
		clear(s.announced)
	}
	s.annMu.Unlock()
	return errors.Join(err, s.shutdown(ctx, false))
}

// Detach stops the server without withdrawing anything and closes the
// sessions without a notification, as a crash would: peers with graceful
// restart keep our routes as stale for the restart time, until a new
// speaker started with Config.Restarting re-announces them. For a planned
// restart.
func (s *Speaker) Detach(ctx context.Context) error {
	return s.shutdown(ctx, true)
}

func (s *Speaker) shutdown(ctx context.Context, keepRoutes bool) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()

	// Unsubscribe first: GoBGP builds a costly event per dropped path for
	// every watcher (seconds for 100,000 paths), and nobody reads them any
	// more. Each watcher unregisters itself through GoBGP's management
	// queue once it sees the cancellation; a few queued calls of our own
	// let those go ahead of the shutdown. Best effort: it only saves time.
	s.cancel()
	for range 3 {
		runtime.Gosched()
		_, _ = s.srv.GetBgp(ctx, &api.GetBgpRequest{})
	}
	var err error
	if keepRoutes {
		err = s.srv.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: true})
		// Stop below only stops GoBGP's BFD server now; it complains
		// that BGP is already stopped.
		s.mute.Store(true)
	}
	s.srv.Stop()
	s.mute.Store(true)
	releaseBFD(s)
	s.delivering.Wait()
	close(s.claims)
	if err != nil {
		return fmt.Errorf("stopping bgp speaker %v: %w", s.cfg.RouterID, err)
	}
	return nil
}
