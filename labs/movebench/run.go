package movebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/roamd/roamd/labs/nslab"
	qm "github.com/roamd/roamd/labs/qemu-migration"
	"github.com/roamd/roamd/labs/qemu-migration/guest"
)

// Options configure Run.
type Options struct {
	// N is the number of migrations per strategy and kind of leaves
	// (default 10).
	N int
	// Strategies are the strategies to compare (default DefaultStrategies).
	Strategies []Strategy
	// Leaves are the kinds of leaves to run them with (default both).
	Leaves []Leaves
	// Interval is the probe interval (default 1 ms).
	Interval time.Duration
	// Tail is how long the probe keeps running after a migration has
	// settled and replies flow again, so late losses are counted (default
	// 1 s).
	Tail time.Duration
	// NoGuestAnnounce runs the guest with guest_announce=off: after a
	// migration only QEMU's RARPs announce it.
	NoGuestAnnounce bool
	// MemoryMiB is the guest's RAM (default: the QEMU lab's, 128).
	MemoryMiB int
	// RunDir receives the records (records.csv, records.json) and each
	// lab's logs (<leaves>/<fabric>/). Required.
	RunDir string
	// Binaries are roamd and roamctl.
	Binaries nslab.Binaries
	// Build configures the guest image build.
	Build guest.Options
	// Out receives progress lines; Logger the labs' logs (nil discards).
	Out    io.Writer
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.N <= 0 {
		o.N = 10
	}
	if len(o.Strategies) == 0 {
		for _, name := range DefaultStrategies {
			s, err := StrategyByName(name)
			if err != nil {
				return err
			}
			o.Strategies = append(o.Strategies, s)
		}
	}
	if len(o.Leaves) == 0 {
		o.Leaves = AllLeaves
	}
	if o.Interval <= 0 {
		o.Interval = time.Millisecond
	}
	if o.Tail <= 0 {
		o.Tail = time.Second
	}
	if o.RunDir == "" {
		return errors.New("movebench: a run directory is required")
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Run brings up, for each kind of leaves in turn, one lab per fabric the
// strategies need (each with its QEMU guest), migrates the guests N times
// per strategy, alternating strategies migration by migration (roundOrder:
// each round in another order, each strategy going both ways), and tears
// the labs down. The probe
// runs only around each migration: from before it starts until Tail after
// replies flow again. Every record is written to the run directory as it
// comes (records.csv, records.json at the end). Run returns the records
// and the first error that stopped it; a failed migration is recorded and
// the run goes on.
func Run(ctx context.Context, o Options) ([]Record, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	sink, err := newSink(o.RunDir)
	if err != nil {
		return nil, err
	}
	defer sink.close()
	var recs []Record
	for _, leaves := range o.Leaves {
		rs, err := runLeaves(ctx, o, leaves, sink)
		recs = append(recs, rs...)
		if err != nil {
			return recs, errors.Join(err, sink.writeJSON(recs))
		}
	}
	return recs, sink.writeJSON(recs)
}

// maxLabReplacements bounds how often a fabric's lab is brought up anew
// after failed migrations, per kind of leaves.
const maxLabReplacements = 3

// runLeaves runs every strategy with one kind of leaves. A failed
// migration is recorded and its lab replaced by a fresh one (guest booted
// anew) before that fabric's next migration, since the guest or the
// fabric may be left in any state.
func runLeaves(ctx context.Context, o Options, leaves Leaves, sink *sink) (recs []Record, err error) {
	labs := map[Fabric]*QEMULab{}
	ups := map[Fabric]int{}
	defer func() {
		for f, l := range labs {
			if cerr := l.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("tearing down %s: %w", Variant{f, leaves}, cerr))
			}
		}
	}()
	up := func(f Fabric) error {
		v := Variant{f, leaves}
		ups[f]++
		dir := filepath.Join(o.RunDir, string(leaves), string(f))
		if ups[f] > 1 {
			dir += fmt.Sprintf("-%d", ups[f])
		}
		fmt.Fprintf(o.Out, "bringing up %s with its guest (logs in %s)...\n", v, dir)
		start := time.Now()
		l, err := UpQEMU(ctx, v, qm.Options{
			Guest:           &GuestConfig,
			Build:           o.Build,
			MemoryMiB:       o.MemoryMiB,
			NoGuestAnnounce: o.NoGuestAnnounce,
			Logger:          o.Logger,
			Lab: nslab.Options{
				RoamdBin:   o.Binaries.Roamd,
				RoamctlBin: o.Binaries.Roamctl,
				RunDir:     dir,
				Logger:     o.Logger,
			},
		})
		if err != nil {
			return fmt.Errorf("bringing up %s: %w", v, err)
		}
		labs[f] = l
		fmt.Fprintf(o.Out, "  %s ready, guest on %s (%s)\n", v, l.At, time.Since(start).Round(100*time.Millisecond))
		return nil
	}
	for _, s := range o.Strategies {
		if labs[s.Fabric] == nil {
			if err := up(s.Fabric); err != nil {
				return nil, err
			}
		}
	}

	for round := 1; round <= o.N; round++ {
		for _, s := range roundOrder(o.Strategies, round) {
			if labs[s.Fabric] == nil {
				if ups[s.Fabric] > maxLabReplacements {
					continue // given up on: the records say why
				}
				if err := up(s.Fabric); err != nil {
					return recs, err
				}
			}
			lab := labs[s.Fabric]
			r := migrate(ctx, o, lab, s, leaves, round)
			recs = append(recs, r)
			if err := sink.add(r); err != nil {
				return recs, err
			}
			status := fmt.Sprintf("lost %d, pause %.0f ms, downtime %.0f ms, TCP %v", r.Lost, r.PauseMS, r.DowntimeMS, r.TCPSurvived)
			if r.Error != "" {
				status = "FAILED: " + r.Error
				// Replace the lab before the fabric's next migration.
				if err := lab.Close(); err != nil {
					fmt.Fprintf(o.Out, "  tearing down %s: %v\n", Variant{s.Fabric, leaves}, err)
				}
				delete(labs, s.Fabric)
			}
			fmt.Fprintf(o.Out, "  %s round %d/%d %-10s %s → %s: %s\n", leaves, round, o.N, s.Name, r.From, r.To, status)
			if err := ctx.Err(); err != nil {
				return recs, context.Cause(ctx)
			}
		}
	}
	return recs, nil
}

// roundOrder returns the order of the strategies in round r (from 1): the
// list rotated to start with strategy r-1, so none is always first or
// last; strategies sharing a fabric (a lab, a guest) then take their slots
// in their own order rotated by r-1 too. A lab with two strategies has its
// guest back where it started after each round, so its first migration of
// a round always goes the same way: the rotation makes each strategy lead
// equally often, and so go both ways equally often.
func roundOrder(strategies []Strategy, r int) []Strategy {
	n := len(strategies)
	out := make([]Strategy, n)
	for i := range out {
		out[i] = strategies[(i+r-1)%n]
	}
	for _, f := range Fabrics {
		var slots []int
		var mine []Strategy
		for _, s := range strategies {
			if s.Fabric == f {
				mine = append(mine, s)
			}
		}
		for i, s := range out {
			if s.Fabric == f {
				slots = append(slots, i)
			}
		}
		for i, slot := range slots {
			out[slot] = mine[(i+r-1)%len(mine)]
		}
	}
	return out
}

// migrate runs one migration under probe traffic and records it.
func migrate(ctx context.Context, o Options, lab *QEMULab, s Strategy, leaves Leaves, round int) Record {
	r := Record{Leaves: leaves, Strategy: s.Name, Round: round, From: lab.At, To: lab.Other(lab.At), LostAfterSwitch: -1}
	r.Load = machineLoad(ctx, time.Second)
	t, err := lab.StartTraffic(ctx, o.Interval)
	if err != nil {
		r.Error = fmt.Sprintf("starting the probe before the migration: %v", err) + guestTrouble(lab)
		return r
	}
	defer t.Stop()
	m, err := lab.Migrate(ctx, s.driver(lab.Net), t)
	if m != nil {
		r.Seq, r.From, r.To, r.Start, r.Notes = m.Seq, m.From, m.To, m.Start, m.Notes
	}
	if err != nil {
		r.Error = err.Error() + guestTrouble(lab)
		return r
	}
	// Late losses (a route flapping back, a forwarding hold running out)
	// show within the tail.
	if err := nslab.Sleep(ctx, o.Tail); err != nil {
		r.Error = err.Error()
		return r
	}
	res := t.Stop()
	st := res.Window(m.Start, time.Time{})
	r.Sent, r.Lost, r.LongestLossRun = st.Sent, st.Lost, st.LongestLossRun
	r.GapMS, r.MaxDelayMS = ms(max(st.Gap, 0)), ms(st.MaxDelay)
	if st.Gap < 0 {
		r.Error = "probe replies never came back" + guestTrouble(lab)
	}
	if !m.Switched.IsZero() {
		r.LostAfterSwitch = res.Window(m.Switched, time.Time{}).Lost
	}
	r.LossRuns = lossRuns(res, m.Start)
	r.MaxDelayAtMS = slowestAt(res, m.Start)
	if m.QEMU != nil && !m.QEMU.Stopped.IsZero() {
		r.MaxDelayPausedMS = ms(res.Window(m.QEMU.Stopped, time.Time{}).MaxDelay)
	}
	r.Events = map[string]float64{}
	event := func(name string, t time.Time) {
		if !t.IsZero() {
			r.Events[name] = ms(t.Sub(m.Start))
		}
	}
	event("switch", m.Switched)
	event("source_gone", m.SourceGone)
	event("claim", m.Claimed)
	event("claim_route", m.ClaimedRoute)
	if m.QEMU != nil {
		r.DowntimeMS, r.TotalMS = ms(m.QEMU.Info.Downtime()), ms(m.QEMU.Info.TotalTime())
		if !m.Claimed.IsZero() && !m.QEMU.Resumed.IsZero() {
			d := ms(m.Claimed.Sub(m.QEMU.Resumed))
			r.ClaimAfterResumeMS = &d
		}
		event("stop", m.QEMU.Stopped)
		event("resume", m.QEMU.Resumed)
		event("complete", m.QEMU.Completed)
		if !m.QEMU.Stopped.IsZero() && !m.QEMU.Resumed.IsZero() {
			r.PauseMS = ms(m.QEMU.Resumed.Sub(m.QEMU.Stopped))
		}
	}
	r.TCPSurvived, r.TCPRTTMS = m.TCPErr == nil, ms(m.TCPRTT)
	if m.TCPErr != nil {
		r.Notes = append(r.Notes, "TCP: "+m.TCPErr.Error())
	}
	return r
}

// guestTrouble returns the first line of a kernel oops or panic on the
// running guest's console, if there is one (a guest that crashed answers
// nothing, whatever the network does).
func guestTrouble(lab *QEMULab) string {
	if lab.VM == nil {
		return ""
	}
	for _, line := range strings.Split(lab.VM.SerialTail(200), "\n") {
		if strings.Contains(line, "BUG:") || strings.Contains(line, "Oops") || strings.Contains(line, "Kernel panic") {
			return fmt.Sprintf("; the guest's kernel crashed on %s: %s (console %s)", lab.At, strings.TrimSpace(line), lab.VM.SerialLog)
		}
	}
	return ""
}
