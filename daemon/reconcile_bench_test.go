package daemon

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/roamd/roamd/daemon/hosts"
)

// BenchmarkReconcileClaims100k: the check of 100,000 learned claims, done
// as the periodic reconcile does it (snapshot off the engine, compared a
// chunk at a time on it) and, side by side, all at once on the engine as
// the start-up sync does. While each runs, a prober asks the engine for an
// empty job every 100 µs: how long it waits is how long an arriving VM's
// frame would.
func BenchmarkReconcileClaims100k(b *testing.B) {
	const n = 100_000
	cfg := testConfig(b, 1790)
	cfg.Tenants[0].Prefixes = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cfg.Tenants[0].Peers = nil
	rt := &fakeRouter{claims: make(chan ClaimSet, 1024)}
	origin := netip.MustParseAddr("192.0.2.12")
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, 128 + byte(i>>16), byte(i >> 8), byte(i)})
		mac := net.HardwareAddr{0x52, 0x54, 0x01, byte(i >> 16), byte(i >> 8), byte(i)}
		rt.all = append(rt.all, ClaimSet{Prefix: netip.PrefixFrom(a, 32), Claims: []hosts.Claim{{Origin: origin, Seq: 1, MAC: mac}}})
	}
	d, ctx := runDaemon(b, cfg, rt, nil)
	for _, cs := range rt.all {
		rt.claims <- cs
	}
	eventually(b, "the learned hosts in the table", func() bool {
		var got int
		_ = d.do(ctx, func() { got = len(d.table.RemoteKeys("default")) })
		return got == n
	})

	for b.Loop() {
		chunked, chunkedWait := whileProbing(ctx, d, func() { d.checkClaims(ctx, "default", rt) })
		whole, wholeWait := whileProbing(ctx, d, func() {
			_ = d.do(ctx, func() { d.reconcileClaims("default", rt) })
		})
		b.ReportMetric(ms(chunked), "chunked-ms")
		b.ReportMetric(ms(chunkedWait), "chunked-max-wait-ms")
		b.ReportMetric(ms(whole), "whole-ms")
		b.ReportMetric(ms(wholeWait), "whole-max-wait-ms")
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.redeliver) > 0 {
		b.Errorf("the check found differences where there were none: %d redeliveries", len(rt.redeliver))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// whileProbing runs work and returns how long it took and the longest an
// empty engine job waited meanwhile.
func whileProbing(ctx context.Context, d *Daemon, work func()) (took, maxWait time.Duration) {
	stop := make(chan struct{})
	var waits []time.Duration
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
			start := time.Now()
			_ = d.do(ctx, func() {})
			waits = append(waits, time.Since(start))
		}
	})
	start := time.Now()
	work()
	took = time.Since(start)
	close(stop)
	wg.Wait()
	return took, slices.Max(append(waits, 0))
}
