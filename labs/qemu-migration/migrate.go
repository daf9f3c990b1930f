package qemumigration

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/roamd/roamd/labs/nslab/probe"
	"github.com/roamd/roamd/labs/qemu-migration/qemu"
)

// Strategy is how the network follows the guest in a migration. The driver
// (Lab.Migrate) calls its hooks in order:
//
//  1. Prepare, once the destination QEMU listens for the migration and its
//     tap exists (and the fabric's PortUp hook ran): stage the destination.
//  2. Switch, only if PauseBeforeSwitchover: the source's vCPUs have
//     stopped at `pre-switchover`; the driver sends `migrate-continue` as
//     soon as Switch returns (or after the driver's pause timeout). Switch
//     the network to the destination here.
//  3. Settle, after the migration completed, the guest resumed on the
//     destination (the source QEMU is still there, paused, unless the lab
//     quits it early: Options.QuitSourceEarly) and the fabric's
//     Settled hook saw the network converge on the destination (how to
//     tell is the fabric's business, so one strategy runs on several
//     fabrics, FRR or BIRD leaves): wait for what the strategy itself waits
//     for and record what it knows about the move (Migration.Claimed,
//     Notes).
//
// A strategy that also implements Cleaner has Cleanup called after that,
// whatever happened, to undo what Prepare and Switch left.
type Strategy interface {
	Name() string
	PauseBeforeSwitchover() bool
	Prepare(ctx context.Context, m *Migration) error
	Switch(ctx context.Context, m *Migration) error
	Settle(ctx context.Context, m *Migration) error
}

// Cleaner is a Strategy with something to undo after each migration.
type Cleaner interface {
	Cleanup(ctx context.Context, m *Migration) error
}

// EarlyQuitter is a Strategy whose network settles only once the source
// QEMU is gone (it reacts to the source's tap disappearing, as a
// do-it-yourself script does). When QuitSourceEarly reports true, the
// driver quits the source as soon as the guest runs on the destination, as
// libvirt does, whatever Options.QuitSourceEarly says.
type EarlyQuitter interface {
	QuitSourceEarly() bool
}

// Migration is one live migration of the guest and what it cost.
type Migration struct {
	// Seq numbers the lab's migrations from 1.
	Seq      int
	Strategy string
	From, To string
	Lab      *Lab
	// Source and Dest are the QEMU processes.
	Source, Dest *qemu.Instance
	// QEMU is the migration as QEMU saw it (its timestamps and
	// query-migrate's downtime and total time).
	QEMU *qemu.Report
	// Start is when the driver began (the destination QEMU starting).
	Start time.Time
	// SwitchStart and Switched bracket the Switch hook: the network was
	// switched at Switched (zero without pause-before-switchover).
	SwitchStart, Switched time.Time
	// Claimed is when the destination took the guest over, as the strategy
	// reports it (roamd: the frame or hint that triggered the claim),
	// and ClaimedRoute when the destination's route was in place.
	Claimed, ClaimedRoute time.Time
	// SourceGone is when the source QEMU had quit (after Settled unless
	// the lab quits it early).
	SourceGone time.Time
	// Settled is when the fabric's Settled hook and the strategy's Settle
	// had returned.
	Settled time.Time
	// Probe is the probe traffic sent from Start to the next migration's
	// Start (Summarise fills it in); LostAfterSwitch counts the probes lost
	// among those sent after Switched, -1 when there was no switch.
	Probe           probe.Stats
	LostAfterSwitch int
	// LossRuns are the runs of consecutive lost probes in the window, in
	// the order they were sent.
	LossRuns []LossRun
	// TCPRTT is how long the check of the TCP session opened before the
	// migrations took after this one; TCPErr is why it failed.
	TCPRTT time.Duration
	TCPErr error
	// Notes are the strategy's remarks (e.g. roamd's own move timings).
	Notes []string
}

// Note adds a remark to the migration's report.
func (m *Migration) Note(format string, args ...any) {
	m.Notes = append(m.Notes, fmt.Sprintf(format, args...))
}

// Migrate live-migrates the guest to the other hypervisor with strategy s:
// it starts the destination QEMU (-incoming), runs the strategy's hooks
// around QEMU's migration (qemu.Migrate), waits until the network has
// settled, quits the source QEMU (see Options.QuitSourceEarly), and checks
// that the probe gets replies (if t is not nil) and the TCP session
// answers. On error the guest keeps running where it is (the source, if
// the migration did not complete).
func (l *Lab) Migrate(ctx context.Context, s Strategy, t *Traffic) (*Migration, error) {
	l.migrations++
	m := &Migration{Seq: l.migrations, Strategy: s.Name(), From: l.At, To: l.Other(l.At), Lab: l, Source: l.VM, LostAfterSwitch: -1, Start: time.Now()}
	if c, ok := s.(Cleaner); ok {
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := c.Cleanup(cctx, m); err != nil {
				l.log.Warn("strategy cleanup", "strategy", m.Strategy, "migration", m.Seq, "err", err)
			}
		}()
	}
	incoming := fmt.Sprintf("%s/migrate-%d.sock", l.Dir, m.Seq)
	dst, err := l.startQEMU(ctx, m.To, incoming)
	if err != nil {
		return m, err
	}
	m.Dest = dst
	fail := func(err error) (*Migration, error) {
		_ = dst.Stop(0)
		return m, fmt.Errorf("migration %d (%s, %s → %s): %w", m.Seq, m.Strategy, m.From, m.To, err)
	}
	if err := l.portUp(ctx, m.To); err != nil {
		return fail(err)
	}
	if err := s.Prepare(ctx, m); err != nil {
		return fail(fmt.Errorf("preparing: %w", err))
	}
	opts := qemu.MigrateOptions{PauseBeforeSwitchover: s.PauseBeforeSwitchover()}
	var switchErr error
	if opts.PauseBeforeSwitchover {
		opts.AtPause = func(ctx context.Context) error {
			m.SwitchStart = time.Now()
			switchErr = s.Switch(ctx, m)
			m.Switched = time.Now()
			return switchErr
		}
	}
	m.QEMU, err = qemu.Migrate(ctx, m.Source, dst, opts)
	if err != nil {
		return fail(err)
	}
	// The guest runs on the destination. Quit the source, as libvirt does,
	// which takes its tap away: at once, or after the network settled
	// (Options.QuitSourceEarly).
	l.VM, l.At = dst, m.To
	quitSource := func() {
		if err := m.Source.Stop(5 * time.Second); err != nil {
			l.log.Warn("stopping the source QEMU", "err", err)
		}
		m.SourceGone = time.Now()
	}
	early := l.opts.QuitSourceEarly
	if eq, ok := s.(EarlyQuitter); ok && eq.QuitSourceEarly() {
		early = true
	}
	if early {
		quitSource()
	} else {
		defer func() {
			if m.SourceGone.IsZero() {
				quitSource()
			}
		}()
	}
	if switchErr != nil {
		return m, fmt.Errorf("migration %d (%s): switching at pre-switchover: %w", m.Seq, m.Strategy, switchErr)
	}

	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if l.Fabric.Settled != nil {
		err = l.Fabric.Settled(sctx, m)
	}
	if err == nil {
		err = s.Settle(sctx, m)
	}
	m.Settled = time.Now()
	if err != nil {
		return m, fmt.Errorf("migration %d (%s, %s → %s): the network did not settle: %w", m.Seq, m.Strategy, m.From, m.To, err)
	}
	if m.SourceGone.IsZero() {
		quitSource()
	}
	if t != nil && t.Prober != nil {
		if err := t.Prober.WaitReply(sctx, m.QEMU.Resumed); err != nil {
			return m, fmt.Errorf("migration %d (%s): %w", m.Seq, m.Strategy, err)
		}
	}
	if t != nil && t.TCP != nil {
		m.TCPRTT, m.TCPErr = t.TCP.Check(10 * time.Second)
	}
	return m, nil
}

// Run migrates the guest n times with each strategy under probe traffic at
// interval, alternating strategies migration by migration, and returns
// every migration with its probe statistics. The guest goes back and forth
// between the hypervisors; with an even number of strategies their order
// rotates every round, so each one migrates in both directions.
func (l *Lab) Run(ctx context.Context, strategies []Strategy, n int, interval time.Duration) ([]*Migration, error) {
	if len(strategies) == 0 || n <= 0 {
		return nil, errors.New("nothing to run: no strategies or no migrations")
	}
	t, err := l.StartTraffic(ctx, interval)
	if err != nil {
		return nil, err
	}
	defer t.Stop()
	var ms []*Migration
	for round := 0; round < n; round++ {
		for i := range strategies {
			s := strategies[i]
			if len(strategies)%2 == 0 {
				s = strategies[(i+round)%len(strategies)]
			}
			m, err := l.Migrate(ctx, s, t)
			ms = append(ms, m)
			if err != nil {
				Summarise(ms, t.Stop())
				return ms, err
			}
			l.log.Info("migrated", "seq", m.Seq, "strategy", m.Strategy, "from", m.From, "to", m.To,
				"downtime", m.QEMU.Info.Downtime(), "total", m.QEMU.Info.TotalTime())
		}
	}
	// A second of steady traffic closes the last migration's window.
	select {
	case <-ctx.Done():
		return ms, context.Cause(ctx)
	case <-time.After(time.Second):
	}
	Summarise(ms, t.Stop())
	return ms, nil
}

// Summarise fills each migration's probe statistics from the probe's
// record: a migration's window runs from its start to the next one's start
// (the last one's to the end of the record).
func Summarise(ms []*Migration, rec *probe.Result) {
	if rec == nil {
		return
	}
	for i, m := range ms {
		if m == nil {
			continue
		}
		var end time.Time
		if i+1 < len(ms) && ms[i+1] != nil {
			end = ms[i+1].Start
		}
		m.Probe = rec.Window(m.Start, end)
		m.LossRuns = lossRuns(rec, m.Start, end)
		if !m.Switched.IsZero() {
			m.LostAfterSwitch = rec.Window(m.Switched, end).Lost
		}
	}
}

// LossRun is a run of consecutive lost probes.
type LossRun struct {
	// First is when the first of them was sent.
	First time.Time
	Count int
}

// lossRuns returns the runs of lost probes sent in [from, to) (to zero:
// up to the end).
func lossRuns(rec *probe.Result, from, to time.Time) []LossRun {
	lo, hi := rec.Bounds(from, to)
	var runs []LossRun
	inRun := false
	for i, sent := range rec.Sent {
		if sent < lo || sent >= hi {
			continue
		}
		if rec.Recv[i] >= 0 {
			inRun = false
			continue
		}
		if !inRun {
			runs = append(runs, LossRun{First: rec.Start.Add(time.Duration(sent))})
			inRun = true
		}
		runs[len(runs)-1].Count++
	}
	return runs
}

// Renamed returns s under another name, e.g. "roamd switchover, BIRD
// leaves", so a table comparing one strategy on several fabrics keeps them
// apart (PrintTable groups by name).
func Renamed(s Strategy, name string) Strategy { return renamed{s, name} }

type renamed struct {
	Strategy
	name string
}

func (r renamed) Name() string { return r.name }

// Cleanup forwards to the wrapped strategy's, if it has one.
func (r renamed) Cleanup(ctx context.Context, m *Migration) error {
	if c, ok := r.Strategy.(Cleaner); ok {
		return c.Cleanup(ctx, m)
	}
	return nil
}

// QuitSourceEarly forwards to the wrapped strategy's, if it has one.
func (r renamed) QuitSourceEarly() bool {
	eq, ok := r.Strategy.(EarlyQuitter)
	return ok && eq.QuitSourceEarly()
}
