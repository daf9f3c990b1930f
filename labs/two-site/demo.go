package twosite

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nslab/probe"
)

// MoveResult is one move of the VM and what it cost.
type MoveResult struct {
	Report *nslab.MoveReport
	// Probe is the probe traffic sent from the move's start to the next
	// move's start.
	Probe probe.Stats
	// TCPRTT is how long the TCP session's check after the move took;
	// TCPErr is why it failed.
	TCPRTT time.Duration
	TCPErr error
	// Arrival is roamd's record of the VM arriving on the new hypervisor
	// (`roamctl show moves`), nil if it logged none; Departure the old
	// hypervisor's record of yielding it to the new one, nil when it did
	// not (it had withdrawn already, when its port went).
	Arrival, Departure *nslab.RoamdMove
	// LeafRoutes are the leaves' route changes for the VM during the move
	// (see LeafRoutes.Attach); empty when not watched.
	LeafRoutes []RouteChange
	// Updates are the hypervisors' BGP UPDATEs announcing the VM during
	// the move (see UpdateTap.Attach); empty when not captured.
	Updates []SentUpdate
	// ProbeLag is the most a probe of the move's window left behind its
	// schedule (CPU contention); ProbeBlind how long no probe left before
	// the first lost one, beyond an interval. See Summarise.
	ProbeLag, ProbeBlind time.Duration
}

// MoveVM moves the VM to hypervisor m.To and waits until the fabric routes
// to it there and probe replies flow again; then it exercises the TCP
// session and collects both roamds' records of the move. The probe
// statistics are filled in later, by Summarise.
func MoveVM(ctx context.Context, lab *nslab.Lab, traffic *Traffic, m nslab.Move) (*MoveResult, error) {
	m.VM = VM
	rep, err := lab.Move(ctx, m)
	res := &MoveResult{Report: rep}
	if err != nil {
		return res, err
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := WaitVMAt(wctx, lab, m.To); err != nil {
		return res, fmt.Errorf("after moving the VM to %s: %w", m.To, err)
	}
	if traffic != nil {
		if err := traffic.Prober.WaitReply(wctx, rep.Arrived); err != nil {
			return res, fmt.Errorf("after moving the VM to %s: %w", m.To, err)
		}
		res.TCPRTT, res.TCPErr = traffic.TCP.Check(10 * time.Second)
	}
	if res.Arrival, err = arrival(wctx, lab, m.To, rep.Start); err != nil {
		return res, err
	}
	ms, err := lab.RoamdMoves(wctx, rep.From)
	if err != nil {
		return res, err
	}
	res.Departure = firstMove(ms, "departed", rep.Start)
	return res, nil
}

// oldGoneWait bounds the wait for the new hypervisor to see the old site's
// path go: FRR takes ~50 ms per hop, so seconds mean it never will.
const oldGoneWait = 3 * time.Second

// arrival returns roamd's record of the VM's arrival on hv after since,
// once it says when the old site's path went (ADD-PATH); after oldGoneWait
// without that, the record as it is.
func arrival(ctx context.Context, lab *nslab.Lab, hv string, since time.Time) (*nslab.RoamdMove, error) {
	var found *nslab.RoamdMove
	wctx, cancel := context.WithTimeout(ctx, oldGoneWait)
	defer cancel()
	err := nslab.Poll(wctx, "roamd on "+hv+" logging the VM's arrival and the old path's withdrawal", func(ctx context.Context) (bool, string, error) {
		ms, err := lab.RoamdMoves(ctx, hv)
		if err != nil {
			return false, "", err
		}
		found = firstMove(ms, "arrived", since)
		switch {
		case found == nil:
			return false, fmt.Sprintf("%d moves, no arrival of %s since the move started", len(ms), VMAddr), nil
		case found.From == "":
			return true, "", nil // no other site held it: nothing to withdraw
		default:
			return found.OldWithdrawnUS > 0, "arrival logged, old path not gone yet", nil
		}
	})
	if found != nil {
		return found, nil
	}
	return nil, err
}

// firstMove returns the VM's first move (of its IPv4 address) in direction
// ("arrived" or "departed") logged at or after since: the claim or the
// yield; later frames only refresh them.
func firstMove(ms []nslab.RoamdMove, direction string, since time.Time) *nslab.RoamdMove {
	var first *nslab.RoamdMove
	for i, m := range ms {
		if m.Address != VMAddr.String() || m.Direction != direction || m.Time.Before(since.Round(0)) {
			continue
		}
		if first == nil || m.Time.Before(first.Time) {
			first = &ms[i]
		}
	}
	return first
}

// Summarise fills each move's probe statistics from the probe's record: a
// move's window runs from its start to the next move's start.
func Summarise(results []*MoveResult, rec *probe.Result) {
	for r, end := range moveWindows(results) {
		r.Probe = rec.Window(r.Report.Start, end)
		r.ProbeLag = lag(rec, r.Report.Start, end)
		r.ProbeBlind = blindBeforeLoss(rec, r.Report.Start, end)
	}
}

// blindBeforeLoss returns how long before the first probe lost in [from,
// to) no probe was sent, beyond one interval: the loss began somewhere in
// that stretch, so the gap may start that much too late.
func blindBeforeLoss(rec *probe.Result, from, to time.Time) time.Duration {
	lo, hi := rec.Bounds(from, to)
	for i, sent := range rec.Sent {
		if sent < lo || sent >= hi || rec.Recv[i] >= 0 {
			continue
		}
		if i == 0 {
			return 0
		}
		return max(0, time.Duration(sent-rec.Sent[i-1])-rec.Interval)
	}
	return 0
}

// lag returns how far behind its schedule (probe n at (n+1) intervals
// after the start) the prober fell within [from, to): a prober starved of
// CPU sends the probes it owes in a burst, so fewer probes span the same
// outage.
func lag(rec *probe.Result, from, to time.Time) time.Duration {
	lo, hi := rec.Bounds(from, to)
	var worst int64
	for i, sent := range rec.Sent {
		if sent >= lo && sent < hi {
			worst = max(worst, sent-int64(i+1)*rec.Interval.Nanoseconds())
		}
	}
	return time.Duration(worst)
}

// DemoOptions configure Demo.
type DemoOptions struct {
	// Moves is how many times the VM moves (hv1→hv2, hv2→hv1, ...).
	Moves int
	Kind  nslab.MoveKind
	// Pause is how long the port is away between hypervisors; Boot the
	// delay from the port being up with carrier to the VM's first
	// announcement (a cold move's boot, a live VM's resume).
	Pause, Boot time.Duration
	// GARP makes live moves send a gratuitous ARP with each RARP.
	GARP bool
	// Interval is the probe interval (default 1 ms).
	Interval time.Duration
	// Lab configures the namespace runner.
	Lab nslab.Options
	// Out receives progress and the report.
	Out io.Writer
}

// Demo brings the lab up, places the VM on hv1, moves it back and forth
// under probe traffic, prints the per-move report and tears the lab down.
// On failure it prints the daemons' logs.
func Demo(ctx context.Context, o DemoOptions) (err error) {
	if o.Interval <= 0 {
		o.Interval = time.Millisecond
	}
	if o.Moves <= 0 {
		o.Moves = 4
	}
	out := o.Out
	fmt.Fprintln(out, "bringing up the two-site lab...")
	start := time.Now()
	lab, err := Up(ctx, o.Lab)
	if lab != nil {
		defer func() {
			if err != nil {
				fmt.Fprintln(out, "\nthe demo failed; daemon logs:")
				lab.DumpLogs(out, 30)
			}
			fmt.Fprintln(out, "tearing down...")
			if cerr := lab.Close(); cerr != nil {
				fmt.Fprintln(out, "teardown:", cerr)
			}
		}()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "fabric up in %s (namespaces %s-*, logs in %s)\n", time.Since(start).Round(time.Millisecond), lab.Prefix, lab.RunDir)

	hv, err := PlaceVM(ctx, lab)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "VM %s placed on %s\n", VMAddr, hv)
	traffic, err := StartTraffic(ctx, lab, o.Interval)
	if err != nil {
		return err
	}
	defer traffic.Close()
	fmt.Fprintf(out, "probing %s:%d from the client every %s, TCP session open\n", VMAddr, EchoPort, o.Interval)
	routes, err := WatchLeafRoutes(lab, Leaf1, Leaf2)
	if err != nil {
		return err
	}
	defer routes.Close()
	updates, err := TapUpdates(lab, HV1, HV2)
	if err != nil {
		return err
	}
	defer updates.Close()

	var results []*MoveResult
	for i := 0; i < o.Moves; i++ {
		to := Other(hv)
		fmt.Fprintf(out, "move %d: %s → %s (%s)\n", i+1, hv, to, o.Kind)
		r, err := MoveVM(ctx, lab, traffic, nslab.Move{To: to, Kind: o.Kind, Pause: o.Pause, Boot: o.Boot, GARP: o.GARP})
		results = append(results, r)
		if err != nil {
			return err
		}
		hv = to
	}
	// Let the last move's window see a second of steady traffic.
	if err := nslab.Sleep(ctx, time.Second); err != nil {
		return err
	}
	rec := traffic.Close()
	routes.Close()
	updates.Close()
	Summarise(results, rec)
	if err := routes.Attach(results); err != nil {
		fmt.Fprintln(out, "leaf route timings may be incomplete:", err)
	}
	if err := updates.Attach(results); err != nil {
		fmt.Fprintln(out, "UPDATE timings may be incomplete:", err)
	}
	fmt.Fprintln(out)
	PrintReport(out, results)
	for _, r := range results {
		if r.TCPErr != nil {
			return fmt.Errorf("the TCP session did not survive a move: %w", r.TCPErr)
		}
	}
	return nil
}
