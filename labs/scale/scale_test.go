package scale

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/roamd/roamd/detect/frames"
	"github.com/roamd/roamd/labs/scale/peer"
)

// The benchmarks run only with -bench, as root, one iteration each, with -v
// (Go cuts a benchmark's log to ten lines without it):
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 60m -v ./labs/scale/ -args -scale.out DIR
//
// Profiles go to -scale.out (default: a new temporary directory, logged).
var (
	outDir   = flag.String("scale.out", "", "directory for the profiles (default: a new temporary directory)")
	arrivals = flag.Int("scale.arrivals", 1000, "arrivals per latency measurement")
	spacing  = flag.Duration("scale.spacing", 10*time.Millisecond, "time between two arrivals in a latency measurement (idle: each alone)")
	idle     = flag.Duration("scale.idle", 60*time.Second, "steady-state window of the 4,096-port benchmark")
	learn    = flag.Int("scale.learn", 100_000, "host routes roamd learns in BenchmarkDetectToUpdate100k")
	maxPfx   = flag.Int("scale.maxprefixes", 0, "max_prefixes of roamd's session in BenchmarkDetectToUpdate100k (0: none)")
	roamdEnv = flag.String("scale.roamdenv", "", "comma-separated VAR=value pairs added to roamd's environment in BenchmarkDetectToUpdate100k (e.g. GOMEMLIMIT=160MiB)")
)

// extraEnv is -scale.roamdenv as a list.
func extraEnv() []string {
	if *roamdEnv == "" {
		return nil
	}
	return strings.Split(*roamdEnv, ",")
}

func TestMain(m *testing.M) {
	peer.MaybeRun()
	flag.Parse()
	code := m.Run()
	RemoveBinaries()
	os.Exit(code)
}

// out returns the results directory, created on first use.
func out(b *testing.B) string {
	b.Helper()
	if *outDir == "" {
		d, err := os.MkdirTemp("", "roamd-scale-")
		if err != nil {
			b.Fatal(err)
		}
		*outDir = d
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		b.Fatal(err)
	}
	return *outDir
}

// arrivalResult is a latency measurement: per arrival, from the frame
// entering the VM port to the UPDATE leaving the uplink (capture), to the
// leaf accepting the route (the leaf's clock), and roamd's own view.
type arrivalResult struct {
	Wire, Leaf, Roamd Summary
	// WireOutside leaves out the arrivals whose frame came while a
	// reconcile ran (or up to 100 ms before it was seen to end): the
	// latency of an engine that is not busy reconciling.
	WireOutside Summary
	Hist        *dto.Histogram // roamd's detect→announce histogram
	Unmatched   int            // arrivals without a frame or an UPDATE in the capture
	Dropped     int            // packets the capture lost
	// Reconciles are those that ended while the arrivals ran: each one
	// blocks roamd's engine, so an arrival during it waits.
	Reconciles []reconcileRun
	// Slowest are the five slowest arrivals on the wire, slowest first:
	// when their frames came, after roamd started (to set beside its
	// gctrace or its reconciles), and how long they took.
	Slowest []slowArrival
}

type reconcileRun struct {
	End  time.Time // seen within 100 ms
	Took time.Duration
}

type slowArrival struct {
	Frame    time.Time // when the frame entered the VM port
	At, Took time.Duration
}

func (r arrivalResult) report(b *testing.B, name string) {
	b.Logf("%s: frame→UPDATE on the wire: %v", name, r.Wire)
	if len(r.Reconciles) > 0 {
		b.Logf("%s: frame→UPDATE on the wire, arrivals outside reconciles: %v", name, r.WireOutside)
	}
	b.Logf("%s: frame→route accepted at the leaf: %v", name, r.Leaf)
	b.Logf("%s: roamd's detect_to_announce_us: %v; its histogram: p50≈%s p99≈%s", name, r.Roamd,
		quantile(r.Hist, 0.5, time.Microsecond), quantile(r.Hist, 0.99, time.Microsecond))
	if r.Unmatched > 0 || r.Dropped > 0 {
		b.Logf("%s: %d arrivals unmatched, %d packets dropped by the capture", name, r.Unmatched, r.Dropped)
	}
	var slow []string
	for _, a := range r.Slowest {
		slow = append(slow, fmt.Sprintf("%v at +%v (%s)", a.Took.Round(time.Microsecond), a.At.Round(time.Millisecond), a.Frame.Format("15:04:05.000")))
	}
	b.Logf("%s: slowest on the wire (frame time after roamd started): %s", name, strings.Join(slow, ", "))
	for _, rc := range r.Reconciles {
		b.Logf("%s: a reconcile ran during the arrivals: %v, ended by %s", name, rc.Took.Round(time.Millisecond), rc.End.Format("15:04:05.000"))
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(r.Wire.P50), "wire-p50-µs")
	b.ReportMetric(us(r.Wire.P99), "wire-p99-µs")
	b.ReportMetric(us(r.Wire.Max), "wire-max-µs")
	if len(r.Reconciles) > 0 {
		b.ReportMetric(us(r.WireOutside.P99), "wire-p99-outside-reconciles-µs")
	}
	b.ReportMetric(us(r.Roamd.P50), "roamd-p50-µs")
	b.ReportMetric(us(r.Roamd.P99), "roamd-p99-µs")
}

// measureArrivals makes n new hosts arrive one by one, spaced, each a
// gratuitous ARP from one of the site's VMs for an address from base up,
// and times each from outside roamd. With profile set, roamd's CPU profile
// of the first 10 s of arrivals is saved under that name.
func measureArrivals(b *testing.B, s *Site, n int, base netip.Addr, profile string) arrivalResult {
	b.Helper()
	capt := StartCapture(b, s.HV, "arp or rarp or (tcp dst port 179)")
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		if profile != "" {
			saveProfile(b, s.HV, profile, "/debug/pprof/profile?seconds=10")
		}
	}()
	defer func() { <-profiled }()
	reconciled := watchReconciles(s)
	addrs := make([]netip.Addr, n)
	a := base
	for i := range addrs {
		addrs[i], a = a, a.Next()
	}
	roamdUS := map[netip.Addr]int64{}
	collectMoves := func() {
		ms, err := s.Roamd.API.Moves(context.Background())
		if err != nil {
			b.Error(err) // may run on another goroutine: no Fatal
			return
		}
		for _, m := range ms {
			if addr, err := netip.ParseAddr(m.Address); err == nil && m.DetectToAnnounceUS > 0 {
				roamdUS[addr] = m.DetectToAnnounceUS
			}
		}
	}
	// The move log keeps the last 512: read it every 200 arrivals, on its
	// own goroutine, so an API call that waits for roamd's engine (during
	// a reconcile, say) never holds the arrivals back.
	var collecting sync.WaitGroup
	var roamdMu sync.Mutex
	collect := func() {
		collecting.Go(func() {
			roamdMu.Lock()
			defer roamdMu.Unlock()
			collectMoves()
		})
	}
	start := time.Now()
	for i, addr := range addrs {
		// Pacing on a fixed schedule: arrivals at idle, one at a time.
		time.Sleep(time.Until(start.Add(time.Duration(i) * *spacing)))
		vm := s.VMs[i%len(s.VMs)]
		if err := s.Sender.Send(vm.Ifindex, frames.GratuitousARP(vm.MAC, addr)); err != nil {
			b.Fatal(err)
		}
		if i%200 == 199 {
			collect()
		}
	}
	collecting.Wait()

	// Every route at the leaf.
	want := map[netip.Prefix]bool{}
	for _, a := range addrs {
		want[netip.PrefixFrom(a, 32)] = true
	}
	leafAt := map[netip.Addr]time.Time{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Peer.Wait(ctx, "every arrival's route", func(e peer.Event) bool {
		if e.Kind == "claim" && want[e.Prefix] {
			if _, seen := leafAt[e.Prefix.Addr()]; !seen {
				leafAt[e.Prefix.Addr()] = e.Time
			}
		}
		return len(leafAt) == len(want)
	}); err != nil {
		b.Fatal(err)
	}
	collectMoves()
	m, err := Scrape(s.HV, MetricsAddr)
	if err != nil {
		b.Fatal(err)
	}
	pkts, dropped, err := capt.Stop()
	if err != nil {
		b.Fatal(err)
	}

	frameAt := map[netip.Addr]time.Time{}
	for _, p := range pkts {
		if p.PacketType == PacketOutgoing {
			continue
		}
		if arp, ok := DecodeARP(p); ok && !arp.RARP {
			if _, seen := frameAt[arp.SenderIP]; !seen {
				frameAt[arp.SenderIP] = p.Time
			}
		}
	}
	updateAt := map[netip.Addr]time.Time{}
	for f, segs := range TCPFlows(pkts) {
		if f.Src.Addr() != uplinkAddr || f.Dst.Port() != 179 {
			continue
		}
		for _, u := range BGPUpdates(segs) {
			for _, p := range u.Announced {
				if _, seen := updateAt[p.Addr()]; !seen {
					updateAt[p.Addr()] = u.Time
				}
			}
		}
	}

	r := arrivalResult{Dropped: dropped, Reconciles: reconciled()}
	var wire, leaf, own, outside []time.Duration
	var slowest []slowArrival
	duringReconcile := func(f time.Time) bool {
		for _, rc := range r.Reconciles {
			if !f.Before(rc.End.Add(-rc.Took-100*time.Millisecond)) && !f.After(rc.End) {
				return true
			}
		}
		return false
	}
	for _, a := range addrs {
		f, okF := frameAt[a]
		u, okU := updateAt[a]
		if !okF || !okU {
			if r.Unmatched < 5 {
				b.Logf("arrival %s: frame captured %v, UPDATE captured %v", a, okF, okU)
			}
			r.Unmatched++
			continue
		}
		wire = append(wire, u.Sub(f))
		if !duringReconcile(f) {
			outside = append(outside, u.Sub(f))
		}
		slowest = append(slowest, slowArrival{Frame: f, At: f.Sub(s.Roamd.Started), Took: u.Sub(f)})
		leaf = append(leaf, leafAt[a].Sub(f))
		if us, ok := roamdUS[a]; ok {
			own = append(own, time.Duration(us)*time.Microsecond)
		}
	}
	r.Wire, r.Leaf, r.Roamd, r.WireOutside = Summarize(wire), Summarize(leaf), Summarize(own), Summarize(outside)
	slices.SortFunc(slowest, func(a, b slowArrival) int { return cmp.Compare(b.Took, a.Took) })
	r.Slowest = slowest[:min(5, len(slowest))]
	r.Hist = m.Histogram("roamd_detect_to_announce_seconds")
	return r
}

// watchReconciles scrapes roamd's reconcile histogram every 100 ms until
// the returned function is called, which returns the reconciles seen.
func watchReconciles(s *Site) func() []reconcileRun {
	stop := make(chan struct{})
	done := make(chan []reconcileRun)
	go func() {
		var runs []reconcileRun
		var count uint64
		var sum float64
		first := true
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := Scrape(s.HV, MetricsAddr); err == nil {
				if h := m.Histogram("roamd_reconcile_seconds"); h != nil {
					if !first && h.GetSampleCount() > count {
						took := time.Duration((h.GetSampleSum() - sum) / float64(h.GetSampleCount()-count) * float64(time.Second))
						runs = append(runs, reconcileRun{End: time.Now(), Took: took})
					}
					count, sum, first = h.GetSampleCount(), h.GetSampleSum(), false
				}
			}
			select {
			case <-stop:
				done <- runs
				return
			case <-t.C:
			}
		}
	}()
	return func() []reconcileRun { close(stop); return <-done }
}

// memory logs how roamd's memory splits, from its Go runtime metrics.
func memory(b *testing.B, s *Site, what string) {
	b.Helper()
	rss, err := s.Roamd.RSS()
	if err != nil {
		b.Fatal(err)
	}
	m, err := Scrape(s.HV, MetricsAddr)
	if err != nil {
		b.Fatal(err)
	}
	mib := func(name string) float64 { v, _ := m.Value(name); return v / (1 << 20) }
	goroutines, _ := m.Value("go_goroutines")
	b.Logf("%s: RSS %.1f MiB; Go heap in use %.1f MiB (of %.1f MiB taken from the OS), stacks %.1f MiB, %v goroutines",
		what, float64(rss)/(1<<20), mib("go_memstats_heap_inuse_bytes"), mib("go_memstats_heap_sys_bytes"),
		mib("go_memstats_stack_inuse_bytes"), goroutines)
	b.ReportMetric(float64(rss)/(1<<20), "RSS-MiB")
}

// liveHeap logs the Go heap roamd holds right after a collection (the heap
// profile fetched just before asks for one): what a memory limit must
// leave room for.
func liveHeap(b *testing.B, s *Site, what string) {
	b.Helper()
	m, err := Scrape(s.HV, MetricsAddr)
	if err != nil {
		b.Fatal(err)
	}
	v, _ := m.Value("go_memstats_heap_alloc_bytes")
	b.Logf("%s: live heap after a collection %.1f MiB", what, v/(1<<20))
	b.ReportMetric(v/(1<<20), "live-heap-MiB")
}

// reconciles logs the reconcile durations so far.
func reconciles(b *testing.B, s *Site, what string) {
	b.Helper()
	m, err := Scrape(s.HV, MetricsAddr)
	if err != nil {
		b.Fatal(err)
	}
	h := m.Histogram("roamd_reconcile_seconds")
	if h == nil || h.GetSampleCount() == 0 {
		b.Logf("%s: no reconcile ran", what)
		return
	}
	mean := time.Duration(h.GetSampleSum() / float64(h.GetSampleCount()) * float64(time.Second))
	b.Logf("%s: %d reconciles, mean %v, p99≈%s", what, h.GetSampleCount(), mean.Round(time.Microsecond), quantile(h, 0.99, time.Microsecond))
	b.ReportMetric(mean.Seconds()*1000, "reconcile-ms")
}

// secondsDur converts a histogram quantile; -1 stands for "beyond the top
// bucket" (and for no data).
func secondsDur(s float64) time.Duration {
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return -1
	}
	return time.Duration(s * float64(time.Second))
}

// quantile formats a histogram quantile for a log line.
func quantile(h *dto.Histogram, q float64, round time.Duration) string {
	d := secondsDur(Quantile(h, q))
	if d < 0 {
		// The top finite bound (the exposition may list +Inf last).
		top := math.NaN()
		for _, bk := range h.GetBucket() {
			if ub := bk.GetUpperBound(); !math.IsInf(ub, 0) {
				top = ub
			}
		}
		if math.IsNaN(top) {
			return "n/a"
		}
		return fmt.Sprintf(">%v (above the top bucket)", time.Duration(top*float64(time.Second)).Round(round))
	}
	return d.Round(round).String()
}

// BenchmarkDetectToUpdate: frame into a VM port → BGP UPDATE on the uplink,
// at idle, with a fabric of nothing but the leaf.
func BenchmarkDetectToUpdate(b *testing.B) {
	for range b.N {
		s := NewSite(b, SiteOptions{VMs: 16})
		r := measureArrivals(b, s, *arrivals, netip.MustParseAddr("10.16.128.1"), "cpu-arrivals.pb.gz")
		r.report(b, "idle, no learned routes")
		memory(b, s, "after the arrivals")
	}
}

// BenchmarkDetectToUpdate100k: the same while roamd holds 100,000 host
// routes learned from the fabric; also how long learning them takes and
// what they cost in memory, with a heap profile.
func BenchmarkDetectToUpdate100k(b *testing.B) {
	learn := *learn
	for range b.N {
		start := time.Now()
		s := NewSite(b, SiteOptions{VMs: 16, Learn: learn, MaxPrefixes: *maxPfx, ProfileDir: out(b), Env: extraEnv()})
		if env := extraEnv(); len(env) > 0 {
			b.Logf("roamd's environment: %s", strings.Join(env, " "))
		}
		b.Logf("roamd started %v after the site; session up %v later; %d routes accepted %v after the session came up (seen by polling every 250 ms)",
			s.Roamd.Started.Sub(start).Round(time.Millisecond), s.Established.Sub(s.Roamd.Started).Round(time.Millisecond),
			learn, s.Learned.Sub(s.Established).Round(time.Millisecond))
		b.ReportMetric(s.Learned.Sub(s.Established).Seconds(), "s-learn")
		if e, err := s.Peer.WaitKind(context.Background(), "announced"); err == nil {
			b.Logf("the leaf had handed its %d routes to its speaker at +%v", e.N, e.Time.Sub(start).Round(time.Millisecond))
		}
		// Let the learning settle (claims delivered to the engine), then
		// measure memory.
		settle(b, s, learn)
		memory(b, s, fmt.Sprintf("with %d learned routes", learn))
		saveProfile(b, s.HV, "heap-100k.pb.gz", "/debug/pprof/heap?gc=1")
		liveHeap(b, s, fmt.Sprintf("with %d learned routes", learn))

		r := measureArrivals(b, s, *arrivals, netip.MustParseAddr("10.16.128.1"), "cpu-arrivals-100k.pb.gz")
		r.report(b, fmt.Sprintf("idle, %d learned routes", learn))
		reconciles(b, s, fmt.Sprintf("with %d learned routes", learn))
		memory(b, s, "after the arrivals")
		saveLog(b, s.Roamd, "roamd-100k.log")
	}
}

// settle waits until roamd's engine has taken in the n learned routes.
func settle(b *testing.B, s *Site, n int) {
	b.Helper()
	start := time.Now()
	lastHost := LearnedPrefix.Addr()
	for range n {
		lastHost = lastHost.Next()
	}
	lastMiB, stable := int64(-1), 0
	err := Poll(context.Background(), 5*time.Minute, "roamd to digest the learned routes", func() (bool, error) {
		// The engine knows the last host the leaf announced...
		h, err := s.Roamd.API.Host(context.Background(), "", lastHost.String())
		if err != nil || len(h.RemoteClaims) == 0 {
			return false, nil
		}
		// ...and its memory has stopped growing for a second.
		rss, _ := s.Roamd.RSS()
		if rss>>20 == lastMiB {
			stable++
		} else {
			stable, lastMiB = 0, rss>>20
		}
		return stable >= 100, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("learned routes digested %v after the session had them", time.Since(start).Round(time.Millisecond))
}

// saveLog copies roamd's log (with GODEBUG=gctrace=1 in -scale.roamdenv,
// also the runtime's line per collection) into the results directory.
func saveLog(b *testing.B, r *Roamd, name string) {
	body, err := os.ReadFile(r.Log)
	if err == nil {
		err = os.WriteFile(filepath.Join(out(b), name), body, 0o644)
	}
	if err != nil {
		b.Logf("saving roamd's log: %v", err)
	}
}

// saveProfile fetches a pprof profile from the roamd in ns into the
// results directory. It may run on its own goroutine.
func saveProfile(b *testing.B, ns Namespace, name, path string) string {
	body, err := HTTPGet(ns, "http://"+MetricsAddr+path)
	if err != nil {
		b.Logf("profile %s: %v", path, err)
		return ""
	}
	p := filepath.Join(out(b), name)
	if err := os.WriteFile(p, body, 0o644); err != nil {
		b.Errorf("saving profile: %v", err)
		return ""
	}
	b.Logf("profile saved: %s (go tool pprof -top %s)", p, p)
	return p
}

// BenchmarkPorts4096: one hypervisor with 4,096 VM ports. roamd starts with
// the ports in place; once it has adopted them all, every VM sends a
// gratuitous ARP. Reports the time to adopt the ports, to have all 4,096
// routes at the leaf, steady-state CPU and RSS, and the reconcile duration.
func BenchmarkPorts4096(b *testing.B) {
	const n = 4096
	for range b.N {
		s := NewSite(b, SiteOptions{VMs: n})
		// CPU profile of the start-up and the arrivals.
		profDone := make(chan string, 1)
		go func() { profDone <- saveProfile(b, s.HV, "cpu-4096-startup.pb.gz", "/debug/pprof/profile?seconds=20") }()

		err := Poll(context.Background(), 10*time.Minute, "roamd to adopt every port", func() (bool, error) {
			st, err := s.Roamd.API.Status(context.Background())
			return err == nil && len(st.Ports) == n, nil
		})
		if err != nil {
			b.Fatal(err)
		}
		adopted := time.Since(s.Roamd.Started)
		b.Logf("%d ports adopted %v after roamd started", n, adopted.Round(time.Millisecond))

		// Four senders, so the VMs announce themselves faster than roamd
		// can take them in (one sender manages about 700 frames a second
		// into veths).
		senders := make([]*Sender, 4)
		for i := range senders {
			senders[i] = NewSender(b, s.VMNS)
		}
		sent := time.Now()
		var wg sync.WaitGroup
		for i, snd := range senders {
			wg.Go(func() {
				for j := i; j < len(s.VMs); j += len(senders) {
					vm := s.VMs[j]
					if err := snd.Send(vm.Ifindex, frames.GratuitousARP(vm.MAC, vm.Addr)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		e, err := s.Peer.Wait(ctx, "every VM's route at the leaf", func(e peer.Event) bool { return e.Kind == "claims" && e.N >= n })
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		announced := e.Time.Sub(sent)
		b.Logf("%d gratuitous ARPs sent in %v; all %d routes at the leaf %v after the first (%v after roamd started)",
			n, time.Since(sent).Round(time.Millisecond), n, announced.Round(time.Millisecond), e.Time.Sub(s.Roamd.Started).Round(time.Millisecond))
		b.ReportMetric(adopted.Seconds(), "s-adopt-ports")
		b.ReportMetric(announced.Seconds(), "s-announce-all")
		hs, err := s.Roamd.API.Hosts(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		notAnnounced := 0
		for _, h := range hs {
			if h.State != "announced" {
				notAnnounced++
			}
		}
		if len(hs) != n || notAnnounced > 0 {
			b.Errorf("roamd holds %d hosts, %d of them not announced; want %d announced", len(hs), notAnnounced, n)
		}
		<-profDone

		// Steady state: nothing happens but keepalives, reconciles and
		// whatever roamd does on its own.
		time.Sleep(5 * time.Second)
		cpu0, _ := s.Roamd.CPUTime()
		t0 := time.Now()
		profIdle := make(chan string, 1)
		go func() {
			profIdle <- saveProfile(b, s.HV, "cpu-4096-idle.pb.gz", fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(idle.Seconds())))
		}()
		time.Sleep(*idle)
		cpu1, _ := s.Roamd.CPUTime()
		busy := float64(cpu1-cpu0) / float64(time.Since(t0))
		<-profIdle
		b.Logf("steady state over %v: CPU %.2f%% of one core", *idle, 100*busy)
		b.ReportMetric(100*busy, "idle-CPU-%")
		memory(b, s, fmt.Sprintf("steady state with %d hosts", n))
		reconciles(b, s, fmt.Sprintf("with %d hosts", n))
		saveProfile(b, s.HV, "heap-4096.pb.gz", "/debug/pprof/heap")
	}
}
