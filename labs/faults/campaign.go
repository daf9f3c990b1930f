package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/roamd/roamd/detect/frames"
	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nslab/probe"
	twosite "github.com/roamd/roamd/labs/two-site"
)

// Fault is a kind of fault the campaign injects.
type Fault string

// The faults.
const (
	// KillIdle kills roamd (kill -9) on a hypervisor while nothing moves
	// and starts it again: the graceful restart case. Successive
	// injections alternate between the hypervisors.
	KillIdle Fault = "roamd kill -9, no move"
	// KillSource kills roamd on the source hypervisor in the middle of a
	// move and starts it again. Successive injections alternate the
	// moment: as the port leaves the source (before the VM runs at the
	// destination), then once the destination has claimed the VM.
	KillSource Fault = "roamd kill -9 on the source mid-move"
	// KillDestination kills roamd on the destination hypervisor in the
	// middle of a move and starts it again, at the same alternating
	// moments as KillSource.
	KillDestination Fault = "roamd kill -9 on the destination mid-move"
	// RestartLeaf restarts the FRR of the moving VM's leaf.
	RestartLeaf Fault = "leaf FRR restart"
	// ResetSession resets the BGP session between the moving VM's
	// hypervisor and its leaf (vtysh clear bgp).
	ResetSession Fault = "BGP session reset (clear bgp)"
	// DeletePort deletes the moving VM's port at the destination in the
	// middle of a move (the migration fails after the switchover); the VM
	// boots again on the source.
	DeletePort Fault = "port deleted mid-move"
)

// AllFaults are the faults in the order the campaign injects them.
var AllFaults = []Fault{KillIdle, KillSource, KillDestination, RestartLeaf, ResetSession, DeletePort}

// FaultNames are short names of the faults, for command lines.
var FaultNames = map[string]Fault{
	"idle": KillIdle, "source": KillSource, "destination": KillDestination,
	"leaf": RestartLeaf, "session": ResetSession, "port": DeletePort,
}

// Timings of the campaign.
const (
	// RestartDelay is how long roamd stays dead before it is started again
	// (a supervisor's restart delay plus its own start).
	RestartDelay = time.Second
	// ConvergeDeadline bounds the wait for the lab to agree with where the
	// VMs run after a fault; what is still wrong then counts as lost or
	// stale.
	ConvergeDeadline = 30 * time.Second
	// bootTime is how long a VM booted again takes to announce itself.
	bootTime = 300 * time.Millisecond
	// movePause is the switchover pause of the campaign's moves.
	movePause = 50 * time.Millisecond
)

// Injection is one injected fault and what followed.
type Injection struct {
	Fault  Fault
	Rep    int
	Detail string
	Start  time.Time
	// Converged is the time from the fault's start to the lab agreeing
	// with where the VMs run (for a kill, it includes RestartDelay and
	// roamd's start); Violations is what was still wrong
	// ConvergeDeadline after the fault.
	Converged  time.Duration
	Violations []Violation
	// Watch is what the leaves did while roamd restarted (kill faults).
	Watch *WatchReport
	// Probe is the client's 1 kHz probe to the moving VM from the fault's
	// start to convergence.
	Probe probe.Stats
	end   time.Time
}

// Lost counts the injection's "lost" violations, Stale its "stale" ones.
func (in *Injection) Lost() int  { return in.count("lost") }
func (in *Injection) Stale() int { return in.count("stale") }

func (in *Injection) count(kind string) int {
	n := 0
	for _, v := range in.Violations {
		if v.Kind == kind {
			n++
		}
	}
	return n
}

func (in *Injection) String() string {
	s := fmt.Sprintf("%s #%d (%s): converged in %s, probe %s", in.Fault, in.Rep, in.Detail, in.Converged.Round(time.Millisecond), in.Probe)
	if in.Watch != nil {
		s += "; leaves " + in.Watch.String()
	}
	if len(in.Violations) > 0 {
		s += "; NOT CONVERGED: " + describe(in.Violations)
	}
	return s
}

// Campaign injects faults into a running lab with probe traffic flowing.
type Campaign struct {
	Lab *Lab
	// Log receives progress; nil discards. Progress, if set, gets one line
	// per injection.
	Log      *slog.Logger
	Progress io.Writer

	traffic *twosite.Traffic
	// injected counts each fault's injections so far: kill faults
	// alternate the moment they strike, KillIdle the hypervisor.
	injected map[Fault]int
	// restarted is when the current injection's roamd was started again
	// (zero: no restart); convergence is awaited from then on.
	restarted time.Time
}

// Run injects faults in turn, reps rounds, and returns every injection. A
// fault listed twice is injected twice a round; successive injections of
// a kill fault alternate the moment it strikes (see KillSource). Run stops
// early only when the lab cannot be brought back to a consistent state.
func (c *Campaign) Run(ctx context.Context, faults []Fault, reps int) ([]*Injection, error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	c.injected = map[Fault]int{}
	var err error
	if c.traffic, err = twosite.StartTraffic(ctx, c.Lab.Lab, time.Millisecond); err != nil {
		return nil, err
	}
	defer c.traffic.Close()
	var out []*Injection
	for rep := 1; rep <= reps; rep++ {
		for _, f := range faults {
			in, err := c.inject(ctx, f)
			if in != nil {
				out = append(out, in)
			}
			if err != nil {
				return out, fmt.Errorf("%s #%d: %w", f, c.injected[f], err)
			}
			if c.Progress != nil {
				fmt.Fprintf(c.Progress, "%s\n", in)
			}
			if len(in.Violations) > 0 {
				if err := c.repair(ctx); err != nil {
					return out, fmt.Errorf("after %s #%d the lab could not be repaired: %w", f, in.Rep, err)
				}
			}
		}
	}
	return out, nil
}

// inject injects one fault, waits for convergence and records it.
func (c *Campaign) inject(ctx context.Context, f Fault) (*Injection, error) {
	c.injected[f]++
	n := c.injected[f]
	in := &Injection{Fault: f, Rep: n}
	c.restarted = time.Time{}
	loc, err := c.Lab.Locations()
	if err != nil {
		return nil, err
	}
	src := loc[twosite.VM]
	if src == "" {
		return nil, errors.New("the moving VM is nowhere")
	}
	dst := twosite.Other(src)
	in.Start = time.Now()
	c.Log.Info("injecting", "fault", f, "n", n)
	switch f {
	case KillIdle:
		hv := []string{twosite.HV1, twosite.HV2}[n%2]
		in.Detail = hv + " killed, nothing moving"
		var r *restart
		if r, err = c.kill(hv, vmsOn(loc, hv)); err == nil {
			in.Watch, err = c.finish(ctx, r)
		}
	case KillSource:
		in.Detail, in.Watch, err = c.killMidMove(ctx, src, dst, src, n%2 == 1)
	case KillDestination:
		in.Detail, in.Watch, err = c.killMidMove(ctx, src, dst, dst, n%2 == 1)
	case RestartLeaf:
		leaf := twosite.LeafOf[src]
		in.Detail = leaf + " restarted, the VM on " + src
		err = c.Lab.RestartFRR(ctx, leaf)
	case ResetSession:
		leaf := twosite.LeafOf[src]
		in.Detail = fmt.Sprintf("%s cleared its session with %s", leaf, src)
		_, err = c.Lab.Vtysh(ctx, leaf, "clear bgp "+twosite.Uplink[src].String())
	case DeletePort:
		in.Detail, err = c.deleteMidMove(ctx, src, dst)
	default:
		return nil, fmt.Errorf("unknown fault %q", f)
	}
	if err != nil {
		return in, err
	}
	// A restarted roamd has had ConvergeDeadline from its start; any other
	// fault has it from now.
	deadline := time.Now().Add(ConvergeDeadline)
	if !c.restarted.IsZero() {
		deadline = c.restarted.Add(ConvergeDeadline)
	}
	cctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	_, err = c.Lab.Converge(cctx)
	in.end = time.Now()
	in.Converged = in.end.Sub(in.Start)
	in.Probe = probeWindow(ctx, c.traffic, in.Start, in.end)
	var nc *NotConverged
	if errors.As(err, &nc) {
		in.Violations = nc.Violations
		if len(in.Violations) == 0 {
			return in, err // the checks themselves failed
		}
		return in, nil
	}
	return in, err
}

// vmsOn returns the routed VMs running on hv.
func vmsOn(loc map[string]string, hv string) []string {
	var out []string
	for _, name := range RoutedVMs {
		if loc[name] == hv {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// restart is a roamd killed on a hypervisor, with the leaves watched.
type restart struct {
	hv     string
	killed time.Time
	watch  *RouteWatch
}

// kill starts watching the leaves for the routes of vms (which stay on hv)
// and kills roamd on hv.
func (c *Campaign) kill(hv string, vms []string) (*restart, error) {
	origin := map[netip.Prefix]uint32{}
	for _, name := range vms {
		for _, p := range VMs[name].Prefixes() {
			origin[p] = twosite.ASN[hv]
		}
	}
	w, err := c.Lab.WatchRoutes(origin)
	if err != nil {
		return nil, err
	}
	if err := c.Lab.KillRoamd(hv); err != nil {
		w.Stop()
		return nil, err
	}
	return &restart{hv: hv, killed: time.Now(), watch: w}, nil
}

// finish starts roamd again RestartDelay after it was killed and keeps
// watching the leaves until the lab has converged (the restarted roamd
// re-announced, the leaves dropped what it did not) or ConvergeDeadline.
func (c *Campaign) finish(ctx context.Context, r *restart) (*WatchReport, error) {
	defer r.watch.Stop()
	if err := nslab.Sleep(ctx, time.Until(r.killed.Add(RestartDelay))); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c.restarted = time.Now()
	if err := c.Lab.StartRoamd(sctx, r.hv); err != nil {
		return nil, err
	}
	cctx, ccancel := context.WithDeadline(ctx, c.restarted.Add(ConvergeDeadline))
	defer ccancel()
	_ = c.Lab.WaitConverged(cctx) // judged again by inject
	rep := r.watch.Stop()
	return &rep, nil
}

// killMidMove moves the VM from src to dst and kills roamd on victim (src
// or dst) in the middle: early, as soon as the port has left src (before
// the VM runs at dst), or else once dst has claimed the VM (while QEMU's
// RARPs are still going out). roamd starts again RestartDelay after it
// died.
func (c *Campaign) killMidMove(ctx context.Context, src, dst, victim string, early bool) (string, *WatchReport, error) {
	loc, err := c.Lab.Locations()
	if err != nil {
		return "", nil, err
	}
	stays := slices.DeleteFunc(vmsOn(loc, victim), func(s string) bool { return s == twosite.VM })
	phase := "once " + dst + " had claimed the VM"
	if early {
		phase = "as the port left " + src
	}
	detail := fmt.Sprintf("%s → %s, %s killed %s", src, dst, victim, phase)

	var r *restart
	move := nslab.Move{VM: twosite.VM, To: dst, Kind: nslab.Live, Pause: movePause}
	if early {
		move.Away = func(context.Context) error {
			var err error
			r, err = c.kill(victim, stays)
			return err
		}
		_, err = c.Lab.Move(ctx, move)
	} else {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { _, err := c.Lab.Move(gctx, move); return err })
		g.Go(func() error {
			wctx, cancel := context.WithTimeout(gctx, 5*time.Second)
			defer cancel()
			if _, err := c.Lab.WaitRoamdHost(wctx, dst, twosite.VMAddr, "announced"); err != nil {
				return err
			}
			var err error
			r, err = c.kill(victim, stays)
			return err
		})
		err = g.Wait()
	}
	if r == nil {
		return detail, nil, err
	}
	w, ferr := c.finish(ctx, r)
	return detail, w, errors.Join(err, ferr)
}

// deleteMidMove moves the VM's port from src to dst, lets the VM announce
// itself once there (one RARP, as QEMU does at resume), deletes the port
// once dst has claimed it (the destination VM dies: the migration failed
// after switchover), and boots the VM again on src with a fresh port: it
// announces itself with a gratuitous ARP and an unsolicited NA.
func (c *Campaign) deleteMidMove(ctx context.Context, src, dst string) (string, error) {
	detail := fmt.Sprintf("%s → %s, port deleted on %s after its claim, VM booted again on %s", src, dst, dst, src)
	if _, _, err := c.Lab.Unplug(twosite.VM); err != nil {
		return detail, err
	}
	if err := nslab.Sleep(ctx, movePause); err != nil {
		return detail, err
	}
	if _, err := c.Lab.Plug(twosite.VM, dst); err != nil {
		return detail, err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := nslab.Poll(wctx, dst+" claiming the VM", func(ctx context.Context) (bool, string, error) {
		if err := c.Lab.SendFrames(twosite.VM, frames.RARP(VMs[twosite.VM].MAC)); err != nil {
			return false, "", err // no carrier yet
		}
		h, err := c.Lab.RoamdHosts(ctx, dst)
		if err != nil {
			return false, "", err
		}
		for _, x := range h {
			if x.Address == twosite.VMAddr && x.State == "announced" {
				return true, "", nil
			}
		}
		return false, "not announced yet", nil
	})
	if err != nil {
		return detail, err
	}
	if _, err := c.Lab.DeletePort(twosite.VM); err != nil {
		return detail, err
	}
	// The VM is down for a moment before it boots again.
	if err := nslab.Sleep(ctx, 500*time.Millisecond); err != nil {
		return detail, err
	}
	if err := c.Lab.ReplugVM(ctx, twosite.VM, src); err != nil {
		return detail, err
	}
	// The guest boots before it announces itself (the two-site lab's cold
	// moves take the same time).
	if err := nslab.Sleep(ctx, bootTime); err != nil {
		return detail, err
	}
	return detail, c.Lab.AnnounceVM(twosite.VM)
}

// repair brings the lab back to a consistent state after an injection that
// did not converge: every VM announces itself again where it runs.
func (c *Campaign) repair(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ConvergeDeadline)
	defer cancel()
	loc, err := c.Lab.Locations()
	if err != nil {
		return err
	}
	for _, name := range RoutedVMs {
		if loc[name] != "" {
			if err := c.Lab.AnnounceVM(name); err != nil {
				return err
			}
		}
	}
	return c.Lab.WaitConverged(ctx)
}

// Row is one line of the fault table.
type Row struct {
	Fault      Fault
	Injections int
	// HostsLost counts VMs still unreachable or unrouted where they run
	// ConvergeDeadline after a fault; StaleRoutes routes still held where
	// a VM does not run.
	HostsLost, StaleRoutes int
	// LeafWithdrawals counts routes of VMs staying on a restarting roamd's
	// hypervisor that a leaf withdrew during the restart; Reinstalls the
	// kernel routes a leaf deleted and added back within reinstallGap.
	LeafWithdrawals, Reinstalls int
	// Watched is how many injections watched the leaves (kill faults).
	Watched int
	// Converged is the median and maximum time to convergence; Outage the
	// median and maximum longest probe loss.
	ConvergedMedian, ConvergedMax time.Duration
	OutageMedian, OutageMax       time.Duration
}

// Table summarises injections per fault, in the order of faults.
func Table(faults []Fault, ins []*Injection) []Row {
	var rows []Row
	for _, f := range faults {
		r := Row{Fault: f}
		var conv, outage []time.Duration
		for _, in := range ins {
			if in.Fault != f {
				continue
			}
			r.Injections++
			r.HostsLost += lostVMs(in.Violations)
			r.StaleRoutes += in.Stale()
			if in.Watch != nil {
				r.Watched++
				r.LeafWithdrawals += len(in.Watch.Withdrawals)
				r.Reinstalls += in.Watch.Reinstalls
			}
			conv = append(conv, in.Converged)
			outage = append(outage, in.Probe.Outage)
		}
		r.ConvergedMedian, r.ConvergedMax = medianMax(conv)
		r.OutageMedian, r.OutageMax = medianMax(outage)
		rows = append(rows, r)
	}
	return rows
}

// lostVMs counts the distinct VMs with a "lost" violation.
func lostVMs(vs []Violation) int {
	seen := map[string]bool{}
	for _, v := range vs {
		if v.Kind == "lost" {
			seen[v.VM] = true
		}
	}
	return len(seen)
}

func medianMax(ds []time.Duration) (time.Duration, time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2], s[len(s)-1]
}

// PrintTable writes the fault table.
func PrintTable(w io.Writer, faults []Fault, ins []*Injection) {
	fmt.Fprintf(w, "%-42s %5s %6s %6s %12s %10s %17s %17s\n", "fault", "times", "lost", "stale", "withdrawals", "reinstall", "converged med/max", "outage med/max")
	for _, r := range Table(faults, ins) {
		wd := "-"
		if r.Watched > 0 {
			wd = fmt.Sprintf("%d (%d watched)", r.LeafWithdrawals, r.Watched)
		}
		fmt.Fprintf(w, "%-42s %5d %6d %6d %12s %10d %8s/%-8s %8s/%-8s\n", r.Fault, r.Injections, r.HostsLost, r.StaleRoutes, wd, r.Reinstalls,
			secs(r.ConvergedMedian), secs(r.ConvergedMax), secs(r.OutageMedian), secs(r.OutageMax))
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// probeWindow returns the probe statistics of [from, to), once a reply to
// a probe sent after to has come back (so the window's last probes are not
// counted lost while in flight), or after two seconds without one.
func probeWindow(ctx context.Context, tr *twosite.Traffic, from, to time.Time) probe.Stats {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = tr.Prober.WaitReply(wctx, to)
	return tr.Prober.Snapshot().Window(from, to)
}
