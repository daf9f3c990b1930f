package faults

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/roamd/roamd/labs/labtest"
)

// End-to-end tests: the faults lab with real FRR leaves and real roamd
// hypervisors, one lab per test, always torn down. They need root.

func TestMain(m *testing.M) { labtest.Main(m) }

// startLab brings the lab up with every VM placed and tears it down when
// the test ends, printing the daemons' logs if it failed.
func startLab(t *testing.T) *Lab {
	t.Helper()
	opts := labtest.Options(t, slog.LevelInfo)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return labtest.Up(t, ctx, opts, 80, Up)
}
