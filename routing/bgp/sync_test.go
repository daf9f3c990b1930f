package bgp

import (
	"context"
	"testing"
	"time"
)

// TestSyncedAfterEndOfRIB: Synced closes only once the leaf has sent its
// table and End-of-RIB, so AllClaims is complete by then.
func TestSyncedAfterEndOfRIB(t *testing.T) {
	lf := newLeaf(t, leafOptions{listen: loopback4})
	lf.addNeighbor(loopback4, neighborOptions{gracefulFor: 30 * time.Second, addPathSend: true})
	cfg := testConfig(lf.peerConfig())
	cfg.GracefulRestart = 30 * time.Second
	vm := host("198.51.100.10")
	lf.inject(claim{prefix: vm, origin: otherOrigin, seq: 9, mac: mac("52:54:00:12:34:56")})
	s := newSpeaker(t, cfg)
	select {
	case <-s.Synced():
		t.Fatal("synced before any session")
	default:
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Synced():
	case <-time.After(15 * time.Second):
		t.Fatal("not synced 15 s after connecting")
	}
	// The table is in the RIB by then (Claims() may still be delivering).
	sets, err := s.AllClaims()
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 1 || sets[0].Prefix != vm || len(sets[0].Claims) != 1 || sets[0].Claims[0].Seq != 9 {
		t.Fatalf("claims when synced: %+v (the leaf's table must be in before End-of-RIB)", sets)
	}
}

func TestSyncedAtOnceWithoutPeers(t *testing.T) {
	s := newSpeaker(t, testConfig())
	select {
	case <-s.Synced():
	default:
		t.Fatal("a speaker without peers waits for End-of-RIB")
	}
}
