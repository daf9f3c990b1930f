package bgp

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// levelFilter passes records at or above min to the wrapped handler. The
// standard library has no handler that raises another handler's minimum
// level, and GoBGP logs every session event at info.
type levelFilter struct {
	h    slog.Handler
	min  *slog.LevelVar
	mute *atomic.Bool // set once the server is stopped on purpose
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return !f.mute.Load() && l >= f.min.Level() && f.h.Enabled(ctx, l)
}

func (f levelFilter) Handle(ctx context.Context, r slog.Record) error {
	return f.h.Handle(ctx, r)
}

func (f levelFilter) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFilter{h: f.h.WithAttrs(as), min: f.min, mute: f.mute}
}

func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{h: f.h.WithGroup(name), min: f.min, mute: f.mute}
}

// gobgpLogger returns the logger handed to GoBGP: warn and above, or
// everything when log has debug enabled.
func gobgpLogger(log *slog.Logger, mute *atomic.Bool) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelWarn)
	if log.Enabled(context.Background(), slog.LevelDebug) {
		lv.Set(slog.LevelDebug)
	}
	return slog.New(levelFilter{h: log.Handler(), min: lv, mute: mute}).With("component", "gobgp"), lv
}
