package daemon

import (
	"testing"
	"time"

	"github.com/roamd/roamd/daemon/hosts"
)

// TestNewClaimsWaitForTheFabricsTables: after a start, a frame is held until
// the BGP sessions delivered their tables; the claim then outbids the
// sequence the fabric already has.
func TestNewClaimsWaitForTheFabricsTables(t *testing.T) {
	cfg := testConfig(t, 1790)
	cfg.Timers.StartupHold = 30 * time.Second
	rt := &fakeRouter{claims: make(chan ClaimSet), synced: make(chan struct{})}
	d, ctx := runDaemon(t, cfg, rt, nil)
	adopt(t, ctx, d, "tap1", 3, 1)
	garp(d, "tap1", vmMAC, vmIP)

	// Still syncing: the frame waits.
	eventually(t, "the frame to be held", func() bool {
		n := 0
		_ = d.do(ctx, func() { n = len(d.held) })
		return n == 1
	})
	if hs, _ := d.Hosts(ctx); len(hs) != 0 {
		t.Fatalf("claimed before the fabric's tables were in: %+v", hs)
	}
	// The fabric knew the VM at sequence 7 (say, from before a restart).
	rt.mu.Lock()
	rt.all = []ClaimSet{{Prefix: vmPfx, Claims: []hosts.Claim{{Origin: hv2ID, Seq: 7, MAC: vmMAC}}}}
	rt.mu.Unlock()
	close(rt.synced)
	eventually(t, "the held frame to claim", func() bool {
		hs, _ := d.Hosts(ctx)
		return len(hs) == 1 && hs[0].State == "announced" && hs[0].Sequence == 8
	})
}

// TestRememberedSequenceOutbidsAfterRestart: a host that left before the
// restart is not restored, but its last known sequence still counts.
func TestRememberedSequenceOutbidsAfterRestart(t *testing.T) {
	cfg := testConfig(t, 1790)
	rt := &fakeRouter{claims: make(chan ClaimSet)}
	d, ctx := runDaemon(t, cfg, rt, func(o *Options) {
		o.Restored = map[hosts.Key]Remembered{{Tenant: "default", Addr: vmIP}: {Seq: 9, MAC: vmMAC}}
	})
	adopt(t, ctx, d, "tap1", 3, 1)
	garp(d, "tap1", vmMAC, vmIP)
	eventually(t, "the claim", func() bool {
		hs, _ := d.Hosts(ctx)
		return len(hs) == 1 && hs[0].State == "announced"
	})
	if hs, _ := d.Hosts(ctx); hs[0].Sequence != 10 {
		t.Fatalf("claimed with sequence %d after a restart, want 10 (journal had 9)", hs[0].Sequence)
	}
}
