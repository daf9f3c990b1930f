package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/roamd/roamd/labs/qemu-migration/qmp"
)

// MigrateOptions configure Migrate.
type MigrateOptions struct {
	// PauseBeforeSwitchover stops the source at `pre-switchover` (vCPUs
	// stopped) and calls AtPause before `migrate-continue`.
	PauseBeforeSwitchover bool
	// AtPause runs with the source paused at pre-switchover. Its error is
	// reported, but the migration continues (a guest must not stay paused
	// because a hook failed). It gets at most PauseTimeout.
	AtPause func(ctx context.Context) error
	// PauseTimeout bounds AtPause (default 2 s).
	PauseTimeout time.Duration
	// Timeout bounds the whole migration; when it passes, Migrate sends
	// migrate_cancel (default 60 s).
	Timeout time.Duration
	// MaxBandwidth is the migration's max-bandwidth in bytes per second
	// (default 10 GB/s, i.e. unlimited here).
	MaxBandwidth int64
	// DowntimeLimit is QEMU's downtime-limit (0: QEMU's default, 300 ms).
	DowntimeLimit time.Duration
}

// Info is what query-migrate reports about a migration.
type Info struct {
	Status string `json:"status"`
	// Milliseconds, as QEMU reports them.
	TotalTimeMS int64 `json:"total-time"`
	DowntimeMS  int64 `json:"downtime"`
	SetupTimeMS int64 `json:"setup-time"`
	RAM         *struct {
		Transferred int64 `json:"transferred"`
		Total       int64 `json:"total"`
		Duplicate   int64 `json:"duplicate"`
		Normal      int64 `json:"normal"`
	} `json:"ram"`
	ErrorDesc string `json:"error-desc"`
}

// Downtime and TotalTime are the figures as durations.
func (i Info) Downtime() time.Duration  { return time.Duration(i.DowntimeMS) * time.Millisecond }
func (i Info) TotalTime() time.Duration { return time.Duration(i.TotalTimeMS) * time.Millisecond }

// Report is one migration as QEMU saw it. Event times are QEMU's own
// timestamps (wall clock); Start, PreSwitchoverSeen, Continued and Done are
// the driver's.
type Report struct {
	// Start is when `migrate` was sent.
	Start time.Time
	// Stopped is when the source's vCPUs stopped for the switchover (its
	// STOP event).
	Stopped time.Time
	// PreSwitchover is the source's pre-switchover event; PreSwitchoverSeen
	// when the driver read it.
	PreSwitchover, PreSwitchoverSeen time.Time
	// Continued is when `migrate-continue` was sent (AtPause had returned).
	Continued time.Time
	// Completed is the source's `completed` event.
	Completed time.Time
	// Resumed is when the guest started running on the destination (its
	// RESUME event).
	Resumed time.Time
	// Done is when Migrate returned.
	Done time.Time
	// Info is query-migrate on the source after completion.
	Info Info
	// PauseErr is AtPause's error.
	PauseErr error
	// Cancelled says the driver sent migrate_cancel.
	Cancelled bool
}

// Migrate migrates the guest from src to dst (started with Incoming) and
// returns once the guest runs on dst. The source stays in state
// postmigrate: stop it (as libvirt does) when the caller is ready.
func Migrate(ctx context.Context, src, dst *Instance, o MigrateOptions) (*Report, error) {
	if dst.Incoming == "" {
		return nil, fmt.Errorf("migrating %s to %s: the destination was not started with Incoming", src.Name, dst.Name)
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.PauseTimeout <= 0 {
		o.PauseTimeout = 2 * time.Second
	}
	if o.MaxBandwidth <= 0 {
		o.MaxBandwidth = 10_000_000_000
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	srcEv := src.QMP.Subscribe()
	defer src.QMP.Unsubscribe(srcEv)
	dstEv := dst.QMP.Subscribe()
	defer dst.QMP.Unsubscribe(dstEv)

	type capability struct {
		Capability string `json:"capability"`
		State      bool   `json:"state"`
	}
	caps := map[string]any{"capabilities": []capability{
		{"events", true},
		{"pause-before-switchover", o.PauseBeforeSwitchover},
	}}
	if err := src.QMP.Execute(ctx, "migrate-set-capabilities", caps, nil); err != nil {
		return nil, err
	}
	params := map[string]any{"max-bandwidth": o.MaxBandwidth}
	if o.DowntimeLimit > 0 {
		params["downtime-limit"] = o.DowntimeLimit.Milliseconds()
	}
	if err := src.QMP.Execute(ctx, "migrate-set-parameters", params, nil); err != nil {
		return nil, err
	}

	r := &Report{Start: time.Now()}
	if err := src.QMP.Execute(ctx, "migrate", map[string]any{"uri": "unix:" + dst.Incoming}, nil); err != nil {
		return r, err
	}
	err := r.follow(ctx, src, dst, srcEv, dstEv, o)
	if err != nil && ctx.Err() != nil {
		// Timed out: never leave the guest paused at the source.
		r.Cancelled = true
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		if cerr := src.QMP.Execute(cctx, "migrate_cancel", nil, nil); cerr != nil {
			err = errors.Join(err, cerr)
		}
		ccancel()
	}
	if err != nil {
		return r, fmt.Errorf("migrating %s to %s: %w", src.Name, dst.Name, err)
	}
	r.finalInfo(ctx, src)
	r.Done = time.Now()
	return r, nil
}

// follow reads both sides' events until the source completed and the
// destination resumed, running the switchover hook on the way.
func (r *Report) follow(ctx context.Context, src, dst *Instance, srcEv, dstEv <-chan qmp.Event, o MigrateOptions) error {
	completed := false
	for !completed || r.Resumed.IsZero() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("not completed: %w", context.Cause(ctx))
		case <-src.done:
			return fmt.Errorf("the source QEMU exited: %w", src.explain(errors.New("exited")))
		case <-dst.done:
			return fmt.Errorf("the destination QEMU exited: %w", dst.explain(errors.New("exited")))
		case ev, ok := <-dstEv:
			if !ok {
				return errors.New("lost the destination's QMP connection")
			}
			if ev.Name == "RESUME" && r.Resumed.IsZero() {
				r.Resumed = ev.Time
			}
		case ev, ok := <-srcEv:
			if !ok {
				return errors.New("lost the source's QMP connection")
			}
			switch ev.Name {
			case "STOP":
				if r.Stopped.IsZero() {
					r.Stopped = ev.Time
				}
			case "MIGRATION":
				var d struct {
					Status string `json:"status"`
				}
				_ = json.Unmarshal(ev.Data, &d)
				switch d.Status {
				case "pre-switchover":
					r.PreSwitchover, r.PreSwitchoverSeen = ev.Time, time.Now()
					if o.AtPause != nil {
						pctx, cancel := context.WithTimeout(ctx, o.PauseTimeout)
						r.PauseErr = o.AtPause(pctx)
						cancel()
					}
					r.Continued = time.Now()
					if err := src.QMP.Execute(ctx, "migrate-continue", map[string]any{"state": "pre-switchover"}, nil); err != nil {
						return err
					}
				case "completed":
					r.Completed = ev.Time
					completed = true
				case "failed", "cancelled":
					var info Info
					_ = src.QMP.Execute(ctx, "query-migrate", nil, &info)
					return fmt.Errorf("migration %s: %s", d.Status, info.ErrorDesc)
				}
			}
		}
	}
	return nil
}

// finalInfo queries the source until query-migrate reports the downtime:
// right after `completed` it can still say 0 ms. The guest already runs on
// the destination, so a failing query only leaves the figures out.
func (r *Report) finalInfo(ctx context.Context, src *Instance) {
	deadline := time.Now().Add(500 * time.Millisecond)
	for {
		var info Info
		if err := src.QMP.Execute(ctx, "query-migrate", nil, &info); err != nil {
			return
		}
		r.Info = info
		if info.DowntimeMS > 0 || time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}
