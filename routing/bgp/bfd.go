package bgp

import (
	"fmt"
	"sync"
)

// GoBGP's BFD server listens on UDP port 3784 on every address, one per
// BGP server. Two speakers in one process (network namespace) would bind
// the port twice and each receive an arbitrary share of the other's
// packets, so sessions would flap; only one speaker at a time may run BFD.
var bfdOwner struct {
	sync.Mutex
	s *Speaker
}

// claimBFD reserves BFD for s when any of peers uses it.
func claimBFD(s *Speaker, peers []PeerConfig) error {
	uses := false
	for _, p := range peers {
		uses = uses || p.BFD
	}
	bfdOwner.Lock()
	defer bfdOwner.Unlock()
	switch {
	case !uses:
		if bfdOwner.s == s {
			bfdOwner.s = nil
		}
	case bfdOwner.s != nil && bfdOwner.s != s:
		return fmt.Errorf("bfd: already used by the speaker of router ID %v tenant %d: GoBGP binds UDP 3784 once per speaker, so one speaker per process may run BFD",
			bfdOwner.s.cfg.RouterID, bfdOwner.s.cfg.TenantID)
	default:
		bfdOwner.s = s
	}
	return nil
}

// releaseBFD gives up s's reservation.
func releaseBFD(s *Speaker) {
	bfdOwner.Lock()
	defer bfdOwner.Unlock()
	if bfdOwner.s == s {
		bfdOwner.s = nil
	}
}
