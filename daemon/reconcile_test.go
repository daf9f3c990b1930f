package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/roamd/roamd/daemon/hosts"
)

// TestReconcileRepairsLearnedClaims: the periodic reconcile finds the
// learned claims the engine has wrong (a changed set it missed, a host the
// speaker no longer has, one it never got), has the speaker deliver them
// again, and leaves the others alone.
func TestReconcileRepairsLearnedClaims(t *testing.T) {
	cfg := testConfig(t, 1790)
	cfg.Tenants[0].Peers = nil
	rt := &fakeRouter{claims: make(chan ClaimSet, 16)}
	d, ctx := runDaemon(t, cfg, rt, nil)
	pfx := func(s string) netip.Prefix { return netip.MustParsePrefix(s + "/32") }
	claim := func(seq uint32) []hosts.Claim { return []hosts.Claim{{Origin: hv2ID, Seq: seq, MAC: vmMAC}} }
	same, changed, lost, missed := pfx("10.10.0.20"), pfx("10.10.0.21"), pfx("10.10.0.22"), pfx("10.10.0.23")
	for _, p := range []netip.Prefix{same, changed, lost} {
		rt.claims <- ClaimSet{Prefix: p, Claims: claim(1)}
	}
	seqOf := func(p netip.Prefix) uint32 {
		var cs []hosts.Claim
		_ = d.do(ctx, func() { cs = d.table.RemoteClaimsOf(hosts.Key{Tenant: "default", Addr: p.Addr()}) })
		if len(cs) == 0 {
			return 0
		}
		return cs[0].Seq
	}
	eventually(t, "the three claims delivered", func() bool { return seqOf(lost) == 1 })

	// What the speaker has now, without having told the engine.
	rt.mu.Lock()
	rt.all = []ClaimSet{
		{Prefix: same, Claims: claim(1)},
		{Prefix: changed, Claims: claim(4)},
		{Prefix: missed, Claims: claim(2)},
	}
	rt.mu.Unlock()
	_ = d.do(ctx, func() { d.reconcile(ctx) })

	eventually(t, "the engine to hold the speaker's claims", func() bool {
		return seqOf(same) == 1 && seqOf(changed) == 4 && seqOf(lost) == 0 && seqOf(missed) == 2
	})
	rt.mu.Lock()
	got := slices.Concat(rt.redeliver...)
	rt.mu.Unlock()
	slices.SortFunc(got, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	if want := []netip.Prefix{changed, lost, missed}; !slices.Equal(got, want) {
		t.Errorf("redelivered %v, want %v", got, want)
	}
	if n := testutil.ToFloat64(d.metrics.reconcileFixes.WithLabelValues("claims")); n != 3 {
		t.Errorf("reconcile_repairs_total{what=claims} = %v, want 3", n)
	}

	// Nothing differs now: the next reconcile redelivers nothing.
	_ = d.do(ctx, func() { d.reconcile(ctx) })
	eventually(t, "the check to finish", func() bool {
		running := true
		_ = d.do(ctx, func() { running = d.checkingClaims })
		return !running
	})
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.redeliver) != 1 {
		t.Errorf("a second reconcile redelivered %v", rt.redeliver[1:])
	}
}
