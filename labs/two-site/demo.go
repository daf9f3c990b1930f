package twosite

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
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
}

// MoveVM moves the VM to hypervisor m.To and waits until the fabric routes
// to it there and probe replies flow again; then it exercises the TCP
// session. The probe statistics are filled in later, by Summarise.
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
	return res, nil
}

// Summarise fills each move's probe statistics from the probe's record: a
// move's window runs from its start to the next move's start.
func Summarise(results []*MoveResult, rec *probe.Result) {
	for i, r := range results {
		if r.Report == nil {
			continue
		}
		var end time.Time
		if i+1 < len(results) && results[i+1].Report != nil {
			end = results[i+1].Report.Start
		}
		r.Probe = rec.Window(r.Report.Start, end)
	}
}

// DemoOptions configure Demo.
type DemoOptions struct {
	// Moves is how many times the VM moves (hv1→hv2, hv2→hv1, ...).
	Moves int
	Kind  nslab.MoveKind
	// Pause is how long the port is away between hypervisors; Boot the
	// delay before a cold-moved VM announces itself.
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
	if err := sleepCtx(ctx, time.Second); err != nil {
		return err
	}
	rec := traffic.Close()
	Summarise(results, rec)
	fmt.Fprintln(out)
	PrintReport(out, results)
	for _, r := range results {
		if r.TCPErr != nil {
			return fmt.Errorf("the TCP session did not survive a move: %w", r.TCPErr)
		}
	}
	return nil
}

// PrintReport writes the per-move table and each move's timeline.
func PrintReport(w io.Writer, results []*MoveResult) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "move\tkind\tfrom → to\tpause\tprobes\tlost\toutage\tgap\tmax delay\tTCP\t")
	for i, r := range results {
		rep := r.Report
		if rep == nil {
			continue
		}
		tcp := "ok " + msf(r.TCPRTT)
		if r.TCPErr != nil {
			tcp = "FAILED"
		}
		gap := "-"
		switch {
		case r.Probe.Gap > 0:
			gap = msf(r.Probe.Gap)
		case r.Probe.Gap < 0:
			gap = "never"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s → %s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t\n", i+1, rep.Kind, rep.From, rep.To,
			msf(rep.Pause), r.Probe.Sent, r.Probe.Lost, msf(r.Probe.Outage), gap, msf(r.Probe.MaxDelay), tcp)
	}
	tw.Flush()
	fmt.Fprintln(w, "\noutage: longest run of lost probes × interval; gap: first lost probe sent → first later reply received;")
	fmt.Fprintln(w, "max delay: slowest reply that did come back; TCP: round trip of a check on a session opened before the moves.")
	fmt.Fprintln(w, "\ntimeline (ms after the port started to leave):")
	for i, r := range results {
		rep := r.Report
		if rep == nil {
			continue
		}
		at := func(t time.Time) string { return fmt.Sprintf("%.1f", float64(t.Sub(rep.Start))/1e6) }
		var frames []string
		for _, f := range rep.Frames {
			frames = append(frames, f.Kind+" "+at(f.At))
		}
		traffic := "no probe lost"
		if r.Probe.Lost > 0 {
			back := "never"
			if r.Probe.Gap > 0 {
				back = fmt.Sprintf("%.1f", float64(r.Probe.FirstLoss+r.Probe.Gap)/1e6)
			}
			traffic = fmt.Sprintf("probes lost from %.1f, replies again from %s", float64(r.Probe.FirstLoss)/1e6, back)
		}
		fmt.Fprintf(w, "  move %d: gone from %s %s, up on %s %s, sent [%s]; %s\n",
			i+1, rep.From, at(rep.Left), rep.To, at(rep.Arrived), strings.Join(frames, ", "), traffic)
	}
}

func msf(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
