package scale

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/roamd/roamd/labs/nstest"
	"github.com/roamd/roamd/labs/scale/peer"
)

// The single-hypervisor site of the latency and scale benchmarks:
//
//	vms ──(VM ports tap0…tapN-1)── hv1 (roamd) ──up0── leaf (BGP peer)
//
// hv1 is 192.0.2.11 (AS 65011) with uplink 198.51.100.3/31; the leaf is
// 198.51.100.2 (AS 65001), a GoBGP speaker standing in for the fabric (see
// package peer) that can announce many host routes as another site's
// (192.0.2.12). VMs live in 10.16.0.0/16 (gateway 10.16.0.1, VM i at
// 10.16.1.1 + i); the fabric's routes in 10.20.0.0/15.
var (
	LocalPrefix   = netip.MustParsePrefix("10.16.0.0/16")
	FirstVMAddr   = netip.MustParseAddr("10.16.1.1")
	LearnedPrefix = netip.MustParsePrefix("10.20.0.0/15")
	leafAddr      = netip.MustParseAddr("198.51.100.2")
	uplinkAddr    = netip.MustParseAddr("198.51.100.3")
	otherSite     = netip.MustParseAddr("192.0.2.12")
)

// MetricsAddr is where roamd's metrics (and pprof) listen in its namespace.
const MetricsAddr = "127.0.0.1:9477"

// SiteOptions shape a site.
type SiteOptions struct {
	VMs       int           // VM ports, created before roamd starts
	Learn     int           // host routes the leaf announces (from 10.20.0.1)
	Reconcile time.Duration // roamd's reconcile period; 0: the default 30 s
	// MaxPrefixes is the session's max_prefixes (0: no limit; the
	// reference configuration sets 200000).
	MaxPrefixes int
	// ProfileDir, if set, receives CPU profiles of the learning: the
	// leaf's (peer-cpu.pb.gz, its whole run) and roamd's (its first 30 s,
	// roamd-cpu-learn.pb.gz).
	ProfileDir string
	// Env is added to roamd's environment (GOMEMLIMIT=..., GOGC=...).
	Env []string
}

// Site is a running single-hypervisor site.
type Site struct {
	HV, Leaf, VMNS *nstest.NS
	VMs            []VM
	Sender         *Sender // sends frames from the VMs
	Roamd          *Roamd
	Peer           *peer.Process
	// Established and Learned are when roamd's session came up and when
	// it had accepted every route the leaf announced, as the harness saw
	// them (polling roamd's API every 250 ms).
	Established, Learned time.Time
}

const siteConfig = `
version: 1
router_id: 192.0.2.11
asn: 65011
gateway_mac: "02:00:5e:10:00:01"
state: {journal: "{{dir}}/journal"}
api: {socket: "{{dir}}/roamd.sock"}
metrics: {listen: "127.0.0.1:9477", pprof: true}
log: {level: info}
timers: {reconcile: %s}
safety: {freeze_moves: 100000}
tenants:
  - name: default
    id: 1
    ports: ["tap*"]
    gateways: [10.16.0.1]
    prefixes: [10.16.0.0/16, 10.20.0.0/15]
    peers:
      - {address: 198.51.100.2, asn: 65001, local_address: 198.51.100.3, hold_time: 9s, keepalive: 3s, connect_retry: 1s, max_prefixes: %d}
`

// NewSite builds the site, starts the leaf and roamd, and returns once
// roamd's session is established and, with o.Learn, roamd has accepted
// every route the leaf announced.
func NewSite(tb testing.TB, o SiteOptions) *Site {
	tb.Helper()
	nstest.RequireRoot(tb)
	s := &Site{HV: nstest.New(tb, "hv1"), Leaf: nstest.New(tb, "leaf"), VMNS: nstest.New(tb, "vms")}
	s.HV.MustRun(tb, "ip", "addr", "add", "192.0.2.11/32", "dev", "lo")
	nstest.Veth(tb, s.HV, "up0", s.Leaf, "eth0")
	s.HV.MustRun(tb, "ip", "addr", "add", uplinkAddr.String()+"/31", "dev", "up0")
	s.Leaf.MustRun(tb, "ip", "addr", "add", leafAddr.String()+"/31", "dev", "eth0")
	if err := QuietVMNamespace(s.VMNS); err != nil {
		tb.Fatal(err)
	}
	if o.VMs > 0 {
		start := time.Now()
		s.VMs = WireVMs(tb, s.HV.Handle, s.VMNS, o.VMs, "tap", "eth", FirstVMAddr)
		tb.Logf("%d VM ports wired in %v", o.VMs, time.Since(start).Round(time.Millisecond))
	}
	s.Sender = NewSender(tb, s.VMNS)

	pc := peer.Config{
		RouterID: otherSite, ASN: 65001, Roamd: uplinkAddr, RoamdASN: 65011, TenantID: 1,
		Prefixes: []netip.Prefix{LocalPrefix, LearnedPrefix}, Quiet: o.VMs > 64,
	}
	if o.Learn > 0 {
		pc.Generate = &peer.Generate{First: LearnedPrefix.Addr().Next(), Count: o.Learn, Seq: 1}
	}
	if o.ProfileDir != "" {
		pc.CPUProfile = filepath.Join(o.ProfileDir, "peer-cpu.pb.gz")
	}
	var err error
	if s.Peer, err = peer.Start(s.Leaf.Name, pc); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Peer.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Peer.WaitKind(ctx, "running"); err != nil {
		tb.Fatal(err)
	}

	reconcile := o.Reconcile
	if reconcile == 0 {
		reconcile = 30 * time.Second
	}
	s.Roamd = StartRoamd(tb, s.HV, fmt.Sprintf(siteConfig, reconcile, o.MaxPrefixes), o.Env...)
	var profiled chan struct{}
	if o.ProfileDir != "" && o.Learn > 0 {
		profiled = make(chan struct{})
		go func() {
			defer close(profiled)
			body, err := HTTPGet(s.HV, "http://"+MetricsAddr+"/debug/pprof/profile?seconds=30")
			if err == nil {
				err = os.WriteFile(filepath.Join(o.ProfileDir, "roamd-cpu-learn.pb.gz"), body, 0o644)
			}
			if err != nil {
				tb.Logf("profiling roamd's learning: %v", err)
			}
		}()
	}
	want := uint64(o.Learn)
	lastLog := time.Now()
	// Poll gently: the first round's roamd walked GoBGP's RIB to count.
	err = PollEvery(context.Background(), 250*time.Millisecond, 20*time.Minute, "roamd's session to the leaf (and the routes it learns)", func() (bool, error) {
		ps, err := s.Roamd.API.Peers(context.Background())
		if err != nil || len(ps) != 1 {
			return false, err
		}
		if time.Since(lastLog) > 10*time.Second {
			tb.Logf("+%v: session %s, %d routes received, %d accepted", time.Since(s.Roamd.Started).Round(time.Second),
				ps[0].State, ps[0].Received, ps[0].Accepted)
			lastLog = time.Now()
		}
		up := ps[0].State == "established"
		if up && s.Established.IsZero() {
			s.Established = time.Now()
		}
		return up && ps[0].Accepted >= want, nil
	})
	s.Learned = time.Now()
	if err != nil {
		tb.Fatal(err)
	}
	if profiled != nil {
		<-profiled
	}
	return s
}
