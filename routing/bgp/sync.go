package bgp

import (
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// initialSync tracks whether every session has delivered its initial table:
// End-of-RIB (RFC 4724) received for each family the peer was configured
// with. Until then, the claims the speaker reports are incomplete: a new
// local claim could miss a higher sequence or another MAC's binding.
type initialSync struct {
	mu      sync.Mutex
	pending map[string]bool // "peer family" still expected
	done    chan struct{}
	closed  bool
}

func newInitialSync(peers map[string][]Family) *initialSync {
	s := &initialSync{pending: map[string]bool{}, done: make(chan struct{})}
	for addr, fams := range peers {
		for _, f := range fams {
			s.pending[addr+" "+f.String()] = true
		}
	}
	s.closeIfDone()
	return s
}

// eor records End-of-RIB from peer for family.
func (s *initialSync) eor(peer string, f Family) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, peer+" "+f.String())
	s.closeIfDone()
}

func (s *initialSync) closeIfDone() {
	if len(s.pending) == 0 && !s.closed {
		s.closed = true
		close(s.done)
	}
}

// onEor is the GoBGP callback for End-of-RIB markers.
func (s *Speaker) onEor(p *apiutil.Path, _ time.Time) {
	var f Family
	switch p.Family {
	case gobgp.RF_IPv4_UC:
		f = IPv4Unicast
	case gobgp.RF_IPv6_UC:
		f = IPv6Unicast
	default:
		return
	}
	peer := p.PeerAddress.Unmap()
	// RFC 4724: a restarted peer's End-of-RIB ends the paths it did not
	// announce again. GoBGP drops them from its Adj-RIB-In without an
	// event a watcher of received paths sees, so the claim table does it.
	s.table.dropStale(peer, f)
	s.sync.eor(peer.String(), f)
}

// Synced is closed once every peer configured at New has sent End-of-RIB
// for each of its families: AllClaims is then the fabric's complete view.
// Peers send End-of-RIB only when graceful restart is negotiated, and never
// while a session is down: callers bound the wait.
func (s *Speaker) Synced() <-chan struct{} { return s.sync.done }
