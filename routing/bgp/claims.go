package bgp

import (
	"cmp"
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
)

// pathKey identifies one received path of a prefix: the session and the
// peer's ADD-PATH identifier.
type pathKey struct {
	peer   netip.Addr
	pathID uint32
}

// update is one change to a peer's paths as received: an accepted path,
// or a withdrawal (which also stands for the paths GoBGP drops when a
// session goes down).
type update struct {
	prefix   netip.Prefix // a host route the import filter accepts
	key      pathKey
	withdraw bool
	mob      mobility
	own      bool
}

// hostKey is a host route's address in 16 bytes (IPv4 mapped; IPv4-mapped
// /128s never get in). Unlike netip.Prefix it holds no pointer, so the
// collector does not trace the table's keys, and it is half the size.
type hostKey [16]byte

func keyOf(p netip.Prefix) hostKey { return p.Addr().As16() }

func (k hostKey) prefix() netip.Prefix {
	a := netip.AddrFrom16(k)
	if a.Is4In6() {
		return netip.PrefixFrom(a.Unmap(), 32)
	}
	return netip.PrefixFrom(a, 128)
}

func (k hostKey) family() Family {
	if netip.AddrFrom16(k).Is4In6() {
		return IPv4Unicast
	}
	return IPv6Unicast
}

// pathEntry is one accepted path in 24 bytes and no pointer: the table
// holds one per learned route, 100,000 and more. The session is an index
// into claimTable.peers; the Route Origin is an IPv4 address.
type pathEntry struct {
	pathID uint32
	seq    uint32
	origin [4]byte
	mac    [6]byte
	tenant uint16
	peer   uint16
	flags  uint8
}

const (
	fSticky    = 1 << iota
	fHasMAC    // mac is set
	fHasOrigin // origin and tenant are set
	fOwn       // our own path echoed back: counted, never reported
	fStale     // kept through the peer's graceful restart, until its End-of-RIB
)

func (e pathEntry) has(f uint8) bool { return e.flags&f != 0 }

// claimTable holds every accepted path per prefix and delivers, per
// prefix, the latest claim set to a reader. A prefix that changes while
// the reader is busy is queued once (dirty set) and delivered with its
// state at delivery time, so a slow reader sees fewer sets but never
// misses the final one, and the writer (GoBGP's watcher) never waits for
// the reader.
type claimTable struct {
	mu    sync.Mutex
	paths map[hostKey][]pathEntry
	// peers interns session addresses: an entry holds the index.
	peers    []netip.Addr
	peerIdx  map[netip.Addr]uint16
	accepted map[uint16]int // per peer: paths that passed the import filter
	stale    map[uint16]int // per peer: paths marked stale
	dirty    map[hostKey]struct{}
	queue    []hostKey     // dirty prefixes in the order they changed
	kick     chan struct{} // capacity 1: "the queue is not empty"
}

func newClaimTable() *claimTable {
	return &claimTable{
		paths:    make(map[hostKey][]pathEntry),
		peerIdx:  make(map[netip.Addr]uint16),
		accepted: make(map[uint16]int),
		stale:    make(map[uint16]int),
		dirty:    make(map[hostKey]struct{}),
		kick:     make(chan struct{}, 1),
	}
}

// peerLocked returns peer's index, interning it when add is set.
func (t *claimTable) peerLocked(peer netip.Addr, add bool) (uint16, bool) {
	if i, ok := t.peerIdx[peer]; ok || !add {
		return i, ok
	}
	// Sessions come from the configuration: far fewer than 65,536.
	i := uint16(len(t.peers))
	t.peers = append(t.peers, peer)
	t.peerIdx[peer] = i
	return i, true
}

// entryOf compacts an accepted path.
func entryOf(peer uint16, u update) pathEntry {
	e := pathEntry{pathID: u.key.pathID, seq: u.mob.seq, tenant: u.mob.tenant, peer: peer}
	if u.mob.sticky {
		e.flags |= fSticky
	}
	if u.mob.hasMAC {
		e.mac = u.mob.mac
		e.flags |= fHasMAC
	}
	if u.mob.hasOrig && u.mob.origin.Is4() {
		e.origin = u.mob.origin.As4()
		e.flags |= fHasOrigin
	}
	if u.own {
		e.flags |= fOwn
	}
	return e
}

// apply records one change and queues the prefix when the set of claims
// others can see changed.
func (t *claimTable) apply(u update) {
	t.mu.Lock()
	defer t.mu.Unlock()
	peer, known := t.peerLocked(u.key.peer, !u.withdraw)
	if !known {
		return // a withdrawal from a peer that never had a path here
	}
	k := keyOf(u.prefix)
	entries := t.paths[k]
	i := slices.IndexFunc(entries, func(e pathEntry) bool { return e.peer == peer && e.pathID == u.key.pathID })
	changed := false
	switch {
	case u.withdraw && i < 0:
		return
	case u.withdraw:
		changed = !entries[i].has(fOwn)
		t.forgetLocked(entries[i])
		entries = slices.Delete(entries, i, i+1)
	case i < 0:
		e := entryOf(peer, u)
		entries = append(entries, e)
		t.accepted[peer]++
		changed = !e.has(fOwn)
	default:
		old, e := entries[i], entryOf(peer, u)
		if old.has(fStale) {
			decrement(t.stale, peer)
			old.flags &^= fStale
		}
		entries[i] = e
		changed = old != e && !(old.has(fOwn) && e.has(fOwn))
	}
	t.storeLocked(k, entries, changed)
}

// storeLocked puts back the paths of k after a change, and queues k when
// the claims others see changed.
func (t *claimTable) storeLocked(k hostKey, entries []pathEntry, changed bool) {
	if len(entries) == 0 {
		delete(t.paths, k)
	} else {
		t.paths[k] = entries
	}
	if changed {
		t.markLocked(k)
	}
}

// forgetLocked updates the counts for an entry that is removed.
func (t *claimTable) forgetLocked(e pathEntry) {
	decrement(t.accepted, e.peer)
	if e.has(fStale) {
		decrement(t.stale, e.peer)
	}
}

func decrement(m map[uint16]int, k uint16) {
	if m[k]--; m[k] <= 0 {
		delete(m, k)
	}
}

// markStale marks every path of peer stale: its session went down and the
// paths GoBGP did not withdraw are kept through a graceful restart.
func (t *claimTable) markStale(addr netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	peer, ok := t.peerLocked(addr, false)
	if !ok || t.accepted[peer] == t.stale[peer] {
		return // none, or all already stale
	}
	n := 0
	for _, entries := range t.paths {
		for i := range entries {
			if entries[i].peer == peer {
				entries[i].flags |= fStale
				n++
			}
		}
	}
	t.stale[peer] = n
}

// dropStale removes the stale paths of peer in family f: the restarted
// peer's End-of-RIB says it has announced again what it still has.
func (t *claimTable) dropStale(addr netip.Addr, f Family) {
	t.mu.Lock()
	defer t.mu.Unlock()
	peer, ok := t.peerLocked(addr, false)
	if !ok || t.stale[peer] == 0 {
		return
	}
	for k, entries := range t.paths {
		if k.family() != f {
			continue
		}
		changed := false
		entries = slices.DeleteFunc(entries, func(e pathEntry) bool {
			if e.peer != peer || !e.has(fStale) {
				return false
			}
			t.forgetLocked(e)
			changed = changed || !e.has(fOwn)
			return true
		})
		t.storeLocked(k, entries, changed)
	}
}

// redeliver queues the host prefixes among prefixes for delivery.
func (t *claimTable) redeliver(prefixes []netip.Prefix) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range prefixes {
		if isHostRoute(p) {
			t.markLocked(keyOf(p))
		}
	}
}

func (t *claimTable) markLocked(k hostKey) {
	if _, ok := t.dirty[k]; ok {
		return
	}
	t.dirty[k] = struct{}{}
	t.queue = append(t.queue, k)
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// next pops the oldest dirty prefix and returns its current claim set.
func (t *claimTable) next() (ClaimSet, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.queue) == 0 {
		return ClaimSet{}, false
	}
	k := t.queue[0]
	t.queue = t.queue[1:]
	if len(t.queue) == 0 {
		t.queue = nil // let a burst's backing array go
	}
	delete(t.dirty, k)
	return t.setLocked(k), true
}

// setLocked builds the claim set of k, ordered by peer and path id.
func (t *claimTable) setLocked(k hostKey) ClaimSet {
	_, cs := t.appendSetLocked(nil, k)
	return cs
}

// appendSetLocked builds the claim set of k with its claims appended to
// buf: a listing of every prefix fills one array instead of allocating per
// prefix.
func (t *claimTable) appendSetLocked(buf []Claim, k hostKey) ([]Claim, ClaimSet) {
	entries := t.paths[k]
	p := k.prefix()
	if buf == nil {
		buf = make([]Claim, 0, len(entries))
	}
	start := len(buf)
	for _, e := range entries {
		if e.has(fOwn) {
			continue
		}
		c := Claim{Prefix: p, Seq: e.seq, Sticky: e.has(fSticky), Peer: t.peers[e.peer], PathID: e.pathID}
		if e.has(fHasOrigin) {
			c.Origin, c.TenantID = netip.AddrFrom4(e.origin), e.tenant
		}
		if e.has(fHasMAC) {
			c.MAC = net.HardwareAddr(slices.Clone(e.mac[:]))
		}
		buf = append(buf, c)
	}
	// Full slice expression: appending to one set never overwrites the next.
	cs := ClaimSet{Prefix: p, Claims: buf[start:len(buf):len(buf)]}
	sortClaims(cs.Claims)
	return buf, cs
}

// all returns every prefix's current claims (those with any), sorted.
func (t *claimTable) all() []ClaimSet {
	t.mu.Lock()
	n := 0
	for _, entries := range t.paths {
		n += len(entries)
	}
	out := make([]ClaimSet, 0, len(t.paths))
	buf := make([]Claim, 0, n)
	for k := range t.paths {
		var cs ClaimSet
		if buf, cs = t.appendSetLocked(buf, k); len(cs.Claims) > 0 {
			out = append(out, cs)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b ClaimSet) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out
}

// acceptedBy returns how many paths from peer passed the import filter.
func (t *claimTable) acceptedBy(addr netip.Addr) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	peer, ok := t.peerLocked(addr, false)
	if !ok {
		return 0
	}
	return t.accepted[peer]
}

// deliver sends claim sets to out until ctx ends.
func (t *claimTable) deliver(ctx context.Context, out chan<- ClaimSet) {
	for {
		cs, ok := t.next()
		if !ok {
			select {
			case <-t.kick:
				continue
			case <-ctx.Done():
				return
			}
		}
		select {
		case out <- cs:
		case <-ctx.Done():
			return
		}
	}
}

func sortClaims(cs []Claim) {
	slices.SortFunc(cs, func(a, b Claim) int {
		if c := a.Peer.Compare(b.Peer); c != 0 {
			return c
		}
		return cmp.Compare(a.PathID, b.PathID)
	})
}
