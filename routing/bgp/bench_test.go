package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// latencies collects durations and reports their percentiles.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	slices.Sort(l)
	at := func(q float64) float64 { return float64(l[int(q*float64(len(l)-1))].Microseconds()) }
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
	b.ReportMetric(float64(l[len(l)-1].Microseconds()), "max-µs")
}

// benchRuns is how many measurements a latency benchmark takes: b.N, but
// at least 1000 so the 99th percentile means something.
func benchRuns(b *testing.B) int { return max(b.N, 1000) }

// arrivals reports the MAC Mobility sequence of every path the leaf
// accepts, per prefix.
type arrival struct {
	prefix netip.Prefix
	seq    uint32
}

func watchArrivals(b *testing.B, l *leaf) <-chan arrival {
	ch := make(chan arrival, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	err := l.srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{OnPathUpdate: func(ps []*apiutil.Path, _ time.Time) {
		for _, p := range ps {
			if pre, ok := prefixOf(p.Nlri); ok && !p.Withdrawal {
				ch <- arrival{pre, decodeMobility(p.Attrs, testTenant).seq}
			}
		}
	}}, server.WatchPostUpdate(false, "", ""))
	if err != nil {
		b.Fatal(err)
	}
	return ch
}

// BenchmarkAnnounceToPeer measures Announce until the leaf has accepted
// the route, over a loopback session.
func BenchmarkAnnounceToPeer(b *testing.B) {
	lf := newLeaf(b, leafOptions{listen: loopback4})
	lf.addNeighbor(loopback4, neighborOptions{})
	s := newSpeaker(b, testConfig(lf.peerConfig()))
	arrived := watchArrivals(b, lf)
	if err := s.Connect(context.Background()); err != nil {
		b.Fatal(err)
	}
	s.waitEstablished(b, loopback4)

	n := benchRuns(b)
	lat := make(latencies, 0, n)
	b.ResetTimer()
	for i := range n {
		r := Route{Prefix: host(fmt.Sprintf("198.51.100.%d", i%200)), Seq: uint32(i + 1), MAC: mac("52:54:00:12:34:56")}
		start := time.Now()
		if err := s.Announce(r); err != nil {
			b.Fatal(err)
		}
		for a := range arrived {
			if a.prefix == r.Prefix && a.seq == r.Seq {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	lat.report(b)
}

// BenchmarkClaimDelivery measures a leaf's new path until Claims()
// delivers the claim set that contains it.
func BenchmarkClaimDelivery(b *testing.B) {
	lf := newLeaf(b, leafOptions{listen: loopback4})
	lf.addNeighbor(loopback4, neighborOptions{addPathSend: true})
	s := newSpeaker(b, testConfig(lf.peerConfig()))
	if err := s.Connect(context.Background()); err != nil {
		b.Fatal(err)
	}
	s.waitEstablished(b, loopback4)

	n := benchRuns(b)
	lat := make(latencies, 0, n)
	b.ResetTimer()
	for i := range n {
		c := claim{prefix: host(fmt.Sprintf("198.51.100.%d", i%200)), pathID: 1, origin: otherOrigin, tenant: testTenant, seq: uint32(i + 1)}
		start := time.Now()
		lf.inject(c)
	wait:
		for cs := range s.Claims() {
			for _, cl := range cs.Claims {
				if cs.Prefix == c.prefix && cl.Seq == c.seq {
					break wait
				}
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	lat.report(b)
}

// BenchmarkLearn100k has a leaf send 100,000 host routes and measures how
// long until every claim set is delivered, and the heap it costs. It runs
// once whatever b.N is: read its own metrics, not ns/op.
func BenchmarkLearn100k(b *testing.B) {
	const n = 100_000
	{
		lf := newLeaf(b, leafOptions{listen: loopback6})
		lf.addNeighbor(loopback6, neighborOptions{addPathSend: true})
		cfg := testConfig(lf.peerConfig())
		s := newSpeaker(b, cfg)
		if err := s.Connect(context.Background()); err != nil {
			b.Fatal(err)
		}
		s.waitEstablished(b, loopback6)
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)

		b.ResetTimer()
		start := time.Now()
		go func() {
			base := testV6Range.Addr().As16()
			batch := make([]*apiutil.Path, 0, 1000)
			for i := range n {
				a := base
				a[13], a[14], a[15] = byte(i>>16), byte(i>>8), byte(i)
				c := claim{prefix: netip.PrefixFrom(netip.AddrFrom16(a), 128), pathID: 1, origin: otherOrigin, tenant: testTenant, seq: 1, mac: mac("52:54:00:00:00:01")}
				batch = append(batch, c.path(false))
				if len(batch) == cap(batch) {
					if _, err := lf.srv.AddPath(apiutil.AddPathRequest{Paths: batch}); err != nil {
						b.Error(err)
						return
					}
					batch = batch[:0]
				}
			}
		}()
		got := map[netip.Prefix]bool{}
		timeout := time.After(5 * time.Minute)
		for len(got) < n {
			select {
			case cs := <-s.Claims():
				if len(cs.Claims) == 1 {
					got[cs.Prefix] = true
				}
			case <-timeout:
				b.Fatalf("%d of %d claims after 5 minutes", len(got), n)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		got = nil
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(elapsed.Seconds(), "s-to-learn-100k")
		// Both GoBGP servers hold the routes: the leaf's own RIB counts too.
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/route-both-ends")
		start = time.Now()
		all, err := s.AllClaims()
		if err != nil || len(all) != n {
			b.Fatalf("AllClaims: %d sets, %v; want %d", len(all), err, n)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-AllClaims-100k")
		start = time.Now()
		if ps := s.Peers(); len(ps) != 1 || ps[0].Accepted != n {
			b.Fatalf("Peers() = %+v, want %d accepted", ps, n)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-Peers-100k")
		start = time.Now()
		if err := s.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-to-stop")
	}
}
