package bgp

import (
	"cmp"
	"context"
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

// pathEntry is one accepted path, kept compact: 100,000 host routes must
// fit comfortably.
type pathEntry struct {
	key pathKey
	mobility
	own bool // our own path echoed back: counted, never reported
}

// update is one post-policy change to a peer's paths: an accepted path,
// or a withdrawal (which also stands for a path the import policy
// rejected and for paths dropped when a session goes down).
type update struct {
	prefix   netip.Prefix
	key      pathKey
	withdraw bool
	mob      mobility
	own      bool
}

// claimTable holds every accepted path per prefix and delivers, per
// prefix, the latest claim set to a reader. A prefix that changes while
// the reader is busy is queued once (dirty set) and delivered with its
// state at delivery time, so a slow reader sees fewer sets but never
// misses the final one, and the writer (GoBGP's watcher) never waits for
// the reader.
type claimTable struct {
	mu       sync.Mutex
	paths    map[netip.Prefix][]pathEntry
	accepted map[netip.Addr]int // per peer: paths that passed the import filter
	dirty    map[netip.Prefix]struct{}
	queue    []netip.Prefix // dirty prefixes in the order they changed
	kick     chan struct{}  // capacity 1: "the queue is not empty"
}

func newClaimTable() *claimTable {
	return &claimTable{
		paths:    make(map[netip.Prefix][]pathEntry),
		accepted: make(map[netip.Addr]int),
		dirty:    make(map[netip.Prefix]struct{}),
		kick:     make(chan struct{}, 1),
	}
}

// apply records one change and queues the prefix when the set of claims
// others can see changed.
func (t *claimTable) apply(u update) {
	t.mu.Lock()
	defer t.mu.Unlock()
	entries := t.paths[u.prefix]
	i := slices.IndexFunc(entries, func(e pathEntry) bool { return e.key == u.key })
	changed := false
	switch {
	case u.withdraw && i < 0:
		return
	case u.withdraw:
		changed = !entries[i].own
		entries = slices.Delete(entries, i, i+1)
		t.accepted[u.key.peer]--
		if t.accepted[u.key.peer] <= 0 {
			delete(t.accepted, u.key.peer)
		}
	case i < 0:
		entries = append(entries, pathEntry{key: u.key, mobility: u.mob, own: u.own})
		t.accepted[u.key.peer]++
		changed = !u.own
	default:
		old := entries[i]
		entries[i] = pathEntry{key: u.key, mobility: u.mob, own: u.own}
		changed = old != entries[i] && !(old.own && u.own)
	}
	if len(entries) == 0 {
		delete(t.paths, u.prefix)
	} else {
		t.paths[u.prefix] = entries
	}
	if changed {
		t.markLocked(u.prefix)
	}
}

func (t *claimTable) markLocked(p netip.Prefix) {
	if _, ok := t.dirty[p]; ok {
		return
	}
	t.dirty[p] = struct{}{}
	t.queue = append(t.queue, p)
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
	p := t.queue[0]
	t.queue[0] = netip.Prefix{}
	t.queue = t.queue[1:]
	if len(t.queue) == 0 {
		t.queue = nil // let a burst's backing array go
	}
	delete(t.dirty, p)
	return t.setLocked(p), true
}

// setLocked builds the claim set of p, ordered by peer and path id.
func (t *claimTable) setLocked(p netip.Prefix) ClaimSet {
	entries := t.paths[p]
	cs := ClaimSet{Prefix: p, Claims: make([]Claim, 0, len(entries))}
	for _, e := range entries {
		if e.own {
			continue
		}
		cs.Claims = append(cs.Claims, Claim{
			Prefix:   p,
			Origin:   e.origin,
			TenantID: e.tenant,
			Seq:      e.seq,
			Sticky:   e.sticky,
			MAC:      e.macAddr(),
			Peer:     e.key.peer,
			PathID:   e.key.pathID,
		})
	}
	sortClaims(cs.Claims)
	return cs
}

// acceptedBy returns how many paths from peer passed the import filter.
// all returns every prefix's current claims (those with any), sorted.
func (t *claimTable) all() []ClaimSet {
	t.mu.Lock()
	out := make([]ClaimSet, 0, len(t.paths))
	for p := range t.paths {
		if cs := t.setLocked(p); len(cs.Claims) > 0 {
			out = append(out, cs)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b ClaimSet) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out
}

func (t *claimTable) acceptedBy(peer netip.Addr) int {
	t.mu.Lock()
	defer t.mu.Unlock()
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
