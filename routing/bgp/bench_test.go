package bgp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
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

// BenchmarkLearn100kAtConnect is the lab's case: a leaf (another Speaker,
// with graceful restart, so it ends its table with End-of-RIB) holds
// 100,000 host routes before the session opens, and sends them all at
// once. It measures until Synced and every claim set is delivered.
func BenchmarkLearn100kAtConnect(b *testing.B) {
	const n = 100_000
	lfPort := freePort(b, loopback4b)
	lfCfg := Config{RouterID: otherOrigin, ASN: leafASN, ListenPort: lfPort, TenantID: testTenant,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, GracefulRestart: 120 * time.Second,
		Peers: []PeerConfig{{Address: loopback4, ASN: testASN, LocalAddress: loopback4b}}}
	lf := newSpeaker(b, lfCfg)
	if err := lf.Connect(context.Background()); err != nil {
		b.Fatal(err)
	}
	a := netip.MustParseAddr("10.20.0.1")
	for range n {
		m := a.As4()
		if err := lf.Announce(Route{Prefix: netip.PrefixFrom(a, 32), Seq: 1, MAC: net.HardwareAddr{0x52, 0x54, m[0], m[1], m[2], m[3]}}); err != nil {
			b.Fatal(err)
		}
		a = a.Next()
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	cfg := testConfig(PeerConfig{Address: loopback4b, ASN: leafASN, Port: lfPort, LocalAddress: loopback4, ConnectRetry: time.Second})
	cfg.Prefixes = lfCfg.Prefixes
	cfg.GracefulRestart = 120 * time.Second
	b.ResetTimer()
	start := time.Now()
	s := newSpeaker(b, cfg)
	if err := s.Connect(context.Background()); err != nil {
		b.Fatal(err)
	}
	got := 0
	timeout := time.After(5 * time.Minute)
	var established, synced time.Duration
	for got < n || synced == 0 {
		select {
		case cs := <-s.Claims():
			if len(cs.Claims) == 1 {
				got++
			}
		case <-s.Established():
			established = time.Since(start)
		case <-s.Synced():
			if synced == 0 {
				synced = time.Since(start)
			}
		case <-timeout:
			b.Fatalf("%d of %d claims after 5 minutes", got, n)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if f := os.Getenv("BGP_HEAP_PROFILE"); f != "" {
		w, _ := os.Create(f)
		_ = pprof.WriteHeapProfile(w)
		w.Close()
	}
	b.ReportMetric(established.Seconds(), "s-established")
	b.ReportMetric(synced.Seconds(), "s-synced")
	b.ReportMetric(elapsed.Seconds(), "s-to-learn-100k")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/route")
}

// BenchmarkClaimTableAll lists 100,000 prefixes' claims, as a reconcile
// does through AllClaims.
func BenchmarkClaimTableAll(b *testing.B) {
	tb := newClaimTable()
	base := netip.MustParseAddr("10.0.0.0").As4()
	for i := range 100_000 {
		a := base
		a[1], a[2], a[3] = byte(i>>16), byte(i>>8), byte(i)
		u := announce(netip.PrefixFrom(netip.AddrFrom4(a), 32), loopback4, 1, otherOrigin, 1)
		u.mob.hasMAC = true
		tb.apply(u)
	}
	drain(tb)
	b.ReportAllocs()
	for b.Loop() {
		if n := len(tb.all()); n != 100_000 {
			b.Fatalf("%d sets", n)
		}
	}
}
