package scale

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/detect/frames"
	"github.com/roamd/roamd/labs/clab"
	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nstest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var stormVMs = flag.Int("scale.storm", 1000, "VMs moved at once in BenchmarkMoveStorm")

// The storm fabric's addresses (storm/*.clab.yml).
var (
	stormPrefix = netip.MustParsePrefix("10.30.0.0/22")
	stormFirst  = netip.MustParseAddr("10.30.0.10")
	hv1Uplink   = netip.MustParseAddr("198.51.100.3") // leaf1's next hop to hv1
	hv2Uplink   = netip.MustParseAddr("198.51.100.5") // leaf2's next hop to hv2
	leaf1Link   = netip.MustParseAddr("198.51.100.0") // leaf2's next hop to leaf1
	leaf2Link   = netip.MustParseAddr("198.51.100.1") // leaf1's next hop to leaf2
	gatewayMAC  = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
)

// rarpSchedule is when QEMU sends its RARPs after a VM resumes.
var rarpSchedule = []time.Duration{0, 50 * time.Millisecond, 200 * time.Millisecond, 450 * time.Millisecond, 800 * time.Millisecond}

// BenchmarkMoveStorm evacuates a rack by live migration: n VMs on hv1 move
// to hv2 at once. As with QEMU, each VM's destination tap exists on hv2
// (and roamd has made it a routed port) before the switchover; at the
// switchover the VM sends one RARP from its destination tap. Timed: until every host route at both leaves
// points at hv2 (leaf2: hv2; leaf1: leaf2, which it prefers only once hv1
// has withdrawn its own, shorter path), with BIRD leaves and with FRR
// leaves.
func BenchmarkMoveStorm(b *testing.B) {
	for _, leaves := range []string{"bird", "frr"} {
		b.Run(leaves, func(b *testing.B) {
			for range b.N {
				storm(b, leaves, *stormVMs, false)
			}
		})
	}
}

// BenchmarkPortMoveStorm is the storm as ports that move: each VM's port is
// taken from hv1 and given to hv2 with one netlink call and brought up, and
// the VM sends RARPs on QEMU's schedule from then on. hv2 must adopt 1,000
// new ports while their RARPs arrive; a RARP that arrives before roamd
// watches the port is lost, so this measures how fast ports are adopted and
// how many VMs are claimed within a minute (BIRD leaves).
func BenchmarkPortMoveStorm(b *testing.B) {
	for range b.N {
		storm(b, "bird", *stormVMs, true)
	}
}

// stormLab is the storm fabric with n VMs placed on hv1.
type stormLab struct {
	lab                    *nslab.Lab
	hv1, hv2, leaf1, leaf2 *nslab.Node
	api1, api2             *api.Client
	vmns                   *nstest.NS
	vms                    []VM // source ports on hv1
	hosts                  []netip.Addr
	send                   *Sender
	at1, at2               *FIBWatch
}

func upStorm(b *testing.B, leaves string, n int, srcPrefix string) *stormLab {
	ctx := context.Background()
	bins := Binaries(b)
	topo, err := clab.Load(filepath.Join("storm", "storm-"+leaves+".clab.yml"))
	if err != nil {
		b.Fatal(err)
	}
	lab, err := nslab.Up(ctx, topo, nslab.Options{RoamdBin: bins.Roamd, RoamctlBin: bins.Roamctl})
	if err != nil {
		if lab != nil {
			lab.DumpLogs(b.Output(), 30)
		}
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if b.Failed() {
			lab.DumpLogs(b.Output(), 40)
		}
		if err := lab.Close(); err != nil {
			b.Errorf("tearing the lab down: %v", err)
		}
	})
	st := &stormLab{lab: lab, hv1: lab.Node("hv1"), hv2: lab.Node("hv2"), leaf1: lab.Node("leaf1"), leaf2: lab.Node("leaf2")}
	st.api1, st.api2 = api.NewClient(st.hv1.APISocket), api.NewClient(st.hv2.APISocket)
	st.vmns = nstest.New(b, "vms")
	if err := QuietVMNamespace(st.vmns); err != nil {
		b.Fatal(err)
	}
	st.vms = WireVMs(b, st.hv1.Handle, st.vmns, n, srcPrefix, "eth", stormFirst)
	for _, vm := range st.vms {
		st.hosts = append(st.hosts, vm.Addr)
	}
	st.send = NewSender(b, st.vmns)
	st.at1 = WatchFIB(b, st.leaf1.Fd(), stormPrefix)
	st.at2 = WatchFIB(b, st.leaf2.Fd(), stormPrefix)

	for _, c := range []*api.Client{st.api1, st.api2} {
		if err := Poll(ctx, time.Minute, "roamd's session to its leaf", func() (bool, error) {
			ps, err := c.Peers(ctx)
			return err == nil && len(ps) == 1 && ps[0].State == "established", nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	st.waitPorts(b, st.api1, n, "hv1")

	// Place every VM on hv1: one gratuitous ARP each, as at boot.
	for _, vm := range st.vms {
		if err := st.send.Send(vm.Ifindex, frames.GratuitousARP(vm.MAC, vm.Addr)); err != nil {
			b.Fatal(err)
		}
	}
	placed := func() (bool, error) {
		_, ok1, err := st.at1.Converged(st.hosts, hv1Uplink)
		if err != nil {
			return false, err
		}
		_, ok2, err := st.at2.Converged(st.hosts, leaf1Link)
		if err != nil || !ok1 || !ok2 {
			return false, err
		}
		// hv2 must know every VM's MAC from hv1's routes, or a RARP (no IP
		// inside) claims nothing.
		ps, err := st.api2.Peers(ctx)
		return err == nil && len(ps) == 1 && ps[0].Accepted >= uint64(n), nil
	}
	if err := PollEvery(ctx, 100*time.Millisecond, 3*time.Minute, "every VM routed at hv1 and known to hv2", placed); err != nil {
		b.Logf("leaf1: %d via hv1; leaf2: %d via leaf1", st.at1.Count(hv1Uplink), st.at2.Count(leaf1Link))
		b.Fatal(err)
	}
	return st
}

// waitPorts waits until the roamd behind c manages n ports.
func (st *stormLab) waitPorts(b *testing.B, c *api.Client, n int, name string) {
	b.Helper()
	if err := Poll(context.Background(), 3*time.Minute, name+" to adopt every port", func() (bool, error) {
		s, err := c.Status(context.Background())
		return err == nil && len(s.Ports) >= n, nil
	}); err != nil {
		b.Fatal(err)
	}
}

func storm(b *testing.B, leaves string, n int, movePorts bool) {
	ctx := context.Background()
	src := "taps"
	if movePorts {
		src = "tap"
	}
	st := upStorm(b, leaves, n, src)
	var dst []VM
	if !movePorts {
		// The destination taps, created as each migration starts: same
		// MACs, adopted by hv2 long before the switchover.
		dst = WireVMs(b, st.hv2.Handle, st.vmns, n, "tapd", "dst", stormFirst)
		st.waitPorts(b, st.api2, n, "hv2")
	}

	// Looked up before the clock starts.
	links := make([]netlink.Link, n)
	for i, vm := range st.vms {
		var err error
		if links[i], err = st.hv1.Handle.LinkByName(vm.Port); err != nil {
			b.Fatal(err)
		}
	}
	adopted := watchAdoption(b, st.hv2.Fd())
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		saveProfile(b, st.hv2, fmt.Sprintf("cpu-storm-%s-hv2.pb.gz", map[bool]string{true: "portmove", false: leaves}[movePorts]),
			"/debug/pprof/profile?seconds=10")
	}()
	time.Sleep(100 * time.Millisecond) // the profile has started

	// The storm.
	start := time.Now()
	switched := make([]time.Time, n)
	moving := make([]time.Time, n) // port moves: when the move began
	var rarps sync.WaitGroup
	for i, vm := range st.vms {
		if movePorts {
			moveStart := time.Now()
			if err := st.hv1.Handle.LinkSetNsFd(links[i], st.hv2.Fd()); err != nil {
				b.Fatalf("moving %s to hv2: %v", vm.Port, err)
			}
			if err := st.hv2.Handle.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: vm.Port}}); err != nil {
				b.Fatalf("bringing %s up on hv2: %v", vm.Port, err)
			}
			switched[i] = time.Now()
			moving[i] = moveStart
			for _, d := range rarpSchedule {
				rarps.Add(1)
				time.AfterFunc(time.Until(switched[i].Add(d)), func() {
					defer rarps.Done()
					_ = st.send.Send(vm.Ifindex, frames.RARP(vm.MAC))
				})
			}
			continue
		}
		// The source taps stay: a source QEMU exits only once its migration
		// has completed, and deleting a device costs the kernel tens of
		// milliseconds (1,000 of them would time the harness, not roamd).
		switched[i] = time.Now()
		if err := st.send.Send(dst[i].Ifindex, frames.RARP(vm.MAC)); err != nil {
			b.Fatal(err)
		}
	}
	allSwitched := time.Since(start)

	var leaf1At, leaf2At []time.Time
	timeout := 2 * time.Minute
	if movePorts {
		timeout = time.Minute
	}
	err := PollEvery(ctx, 5*time.Millisecond, timeout, "every route at both leaves to point at hv2", func() (bool, error) {
		var ok1, ok2 bool
		var err error
		if leaf2At, ok2, err = st.at2.Converged(st.hosts, hv2Uplink); err != nil || !ok2 {
			return false, err
		}
		leaf1At, ok1, err = st.at1.Converged(st.hosts, leaf2Link)
		return ok1, err
	})
	rarps.Wait()
	<-profiled
	name := leaves + " leaves"
	if movePorts {
		name = "ports moved, " + name
	}
	adoptAt := adopted.times(st.vms)
	var adoption []time.Duration
	for i, t := range adoptAt {
		if !t.IsZero() && !moving[i].IsZero() {
			adoption = append(adoption, t.Sub(moving[i]))
		}
	}
	if movePorts {
		b.Logf("%s: per VM, from the start of its port's move to hv2 setting the anycast MAC on it: %v (%d of %d)", name, Summarize(adoption), len(adoption), n)
	}
	st.report(b, name)
	if err != nil {
		b.Logf("%s, %d VMs: %d switched in %v; after %v, leaf1: %d via leaf2, %d via hv1; leaf2: %d via hv2",
			name, n, n, allSwitched.Round(time.Millisecond), timeout, st.at1.Count(leaf2Link), st.at1.Count(hv1Uplink), st.at2.Count(hv2Uplink))
		if movePorts {
			b.ReportMetric(float64(st.at2.Count(hv2Uplink)), "VMs-routed-after-1m")
			return // the finding is how many made it
		}
		b.Fatal(err)
	}
	last := func(ts []time.Time) time.Time { return slices.MaxFunc(ts, time.Time.Compare) }
	converged := last(leaf1At).Sub(start)
	if d := last(leaf2At).Sub(start); d > converged {
		converged = d
	}
	perVM := make([]time.Duration, n)
	for i := range st.vms {
		done := leaf1At[i]
		if leaf2At[i].After(done) {
			done = leaf2At[i]
		}
		perVM[i] = done.Sub(switched[i])
	}
	b.Logf("%s, %d VMs: switched in %v; converged %v after the first switch (leaf2 at hv2: +%v; leaf1 via leaf2, hv1 withdrawn: +%v)",
		name, n, allSwitched.Round(time.Millisecond), converged.Round(time.Millisecond),
		last(leaf2At).Sub(start).Round(time.Millisecond), last(leaf1At).Sub(start).Round(time.Millisecond))
	b.Logf("%s: per VM, from its own switch to both leaves: %v", name, Summarize(perVM))
	b.ReportMetric(converged.Seconds(), "s-converged")
	b.ReportMetric(allSwitched.Seconds(), "s-switching")
	if movePorts {
		b.ReportMetric(float64(n), "VMs-routed-after-1m")
	}
	// The old site's paths are gone from leaf1 itself, not only
	// out-preferred.
	if leaves == "bird" {
		out, err := st.lab.Birdc(ctx, "leaf1", "show", "protocols", "all", "hv1")
		if err == nil && !strings.Contains(out, "Routes:         0 imported") {
			b.Errorf("leaf1 still has routes from hv1:\n%s", out)
		}
	}
}

// report logs what the two roamds saw of the storm.
func (st *stormLab) report(b *testing.B, name string) {
	for _, hv := range []struct {
		name string
		node *nslab.Node
		api  *api.Client
	}{{"hv1", st.hv1, st.api1}, {"hv2", st.hv2, st.api2}} {
		m, err := Scrape(hv.node, MetricsAddr)
		if err != nil {
			b.Logf("%s metrics: %v", hv.name, err)
			continue
		}
		arrived, _ := m.Value("roamd_moves_total", "direction", "arrived")
		departed, _ := m.Value("roamd_moves_total", "direction", "departed")
		line := fmt.Sprintf("%s: %s: %v arrived, %v departed", name, hv.name, arrived, departed)
		if h := m.Histogram("roamd_announce_to_old_withdrawn_seconds"); h != nil && h.GetSampleCount() > 0 {
			line += fmt.Sprintf("; announce→old site withdrawn p50≈%s p99≈%s (%d)", quantile(h, 0.5, time.Millisecond),
				quantile(h, 0.99, time.Millisecond), h.GetSampleCount())
		}
		if h := m.Histogram("roamd_detect_to_announce_seconds"); h != nil && h.GetSampleCount() > 0 && hv.name == "hv2" {
			line += fmt.Sprintf("; detect→announce p50≈%s p99≈%s", quantile(h, 0.5, time.Microsecond), quantile(h, 0.99, time.Microsecond))
		}
		if refused := m["roamd_claims_refused_total"]; refused != nil {
			for _, s := range refused.GetMetric() {
				line += fmt.Sprintf("; refused %s: %v", s.GetLabel()[0].GetValue(), s.GetCounter().GetValue())
			}
		}
		b.Log(line)
		if ms, err := hv.api.Moves(context.Background()); err == nil {
			by := map[string]int{}
			for _, m := range ms {
				by[m.Direction+" by "+m.Source]++
			}
			b.Logf("%s: %s's last %d moves: %v", name, hv.name, len(ms), by)
		}
	}
}

// adoption records when each port got the anycast gateway MAC in a
// namespace: the moment roamd has prepared it.
type adoption struct {
	mu sync.Mutex
	at map[string]time.Time
}

func watchAdoption(tb testing.TB, nsFd int) *adoption {
	a := &adoption{at: map[string]time.Time{}}
	ch := make(chan netlink.LinkUpdate, 8192)
	done := make(chan struct{})
	h := netns.NsHandle(nsFd)
	if err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
		Namespace: &h, ReceiveBufferSize: 16 << 20, ReceiveBufferForceSize: true,
	}); err != nil {
		tb.Fatalf("watching links: %v", err)
	}
	tb.Cleanup(func() { close(done) })
	go func() {
		for u := range ch {
			attrs := u.Attrs()
			if slices.Equal(attrs.HardwareAddr, gatewayMAC) {
				a.mu.Lock()
				if _, seen := a.at[attrs.Name]; !seen {
					a.at[attrs.Name] = time.Now()
				}
				a.mu.Unlock()
			}
		}
	}()
	return a
}

func (a *adoption) times(vms []VM) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]time.Time, len(vms))
	for i, vm := range vms {
		out[i] = a.at[vm.Port]
	}
	return out
}
