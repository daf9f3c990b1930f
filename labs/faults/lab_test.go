package faults

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nstest"
)

// End-to-end tests: the faults lab with real FRR leaves and real roamd
// hypervisors, one lab per test, always torn down. They need root.

// bins are roamd and roamctl, built once for the package.
var (
	bins     nslab.Binaries
	buildErr error
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if root, err := nslab.FindModuleRoot("."); err != nil {
		buildErr = err
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		bins, buildErr = nslab.Build(ctx, root, dir)
		cancel()
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startLab brings the lab up with every VM placed and tears it down when
// the test ends, printing the daemons' logs if it failed.
func startLab(t *testing.T) *Lab {
	t.Helper()
	nstest.RequireRoot(t)
	if buildErr != nil {
		t.Fatalf("building roamd: %v", buildErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	lab, err := Up(ctx, nslab.Options{RoamdBin: bins.Roamd, RoamctlBin: bins.Roamctl, Logger: log})
	if lab != nil {
		t.Cleanup(func() {
			if t.Failed() {
				var b bytes.Buffer
				lab.DumpLogs(&b, 80)
				t.Log("daemon logs:\n" + b.String())
			}
			if err := lab.Close(); err != nil {
				t.Errorf("tearing down: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return lab
}
