package labtest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/roamd/roamd/labs/nslab"
)

// Lab is a running lab as a test tears it down.
type Lab interface {
	// DumpLogs writes the last lines of each of the lab's logs to w.
	DumpLogs(w io.Writer, lines int)
	Close() error
}

// CloseAtEnd closes lab when tb ends (after the cleanups registered later,
// which stop what runs in the lab). If tb failed, it first logs the last
// lines of each of the lab's logs: what the daemons saw is usually the
// explanation.
func CloseAtEnd(tb testing.TB, lab Lab, lines int) {
	tb.Cleanup(func() {
		if tb.Failed() {
			var b bytes.Buffer
			lab.DumpLogs(&b, lines)
			tb.Log("lab logs:\n" + b.String())
		}
		if err := lab.Close(); err != nil {
			tb.Errorf("tearing down: %v", err)
		}
	})
}

// Up brings a lab up with up and opts under ctx, closes it when tb ends
// (CloseAtEnd, with lines of each log if tb failed), and stops tb if up
// failed. up returns the lab also with an error when it is up but not ready,
// for its logs.
func Up[T any, L interface {
	*T
	Lab
}](tb testing.TB, ctx context.Context, opts nslab.Options, lines int, up func(context.Context, nslab.Options) (L, error)) L {
	tb.Helper()
	lab, err := up(ctx, opts)
	if lab != nil {
		CloseAtEnd(tb, lab, lines)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return lab
}
