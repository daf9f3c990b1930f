// Package labtest holds what the labs' end-to-end tests share: roamd and
// roamctl built once per test binary (Main, Binaries), logs into the
// test's own log (Writer, Logger), a lab torn down when the test ends with
// its logs shown if the test failed (CloseAtEnd), and checks of a lab's
// files against its address plan (CheckTopology, LoadRoamdConfig,
// CheckFileHas).
//
// A lab package's tests call Main from TestMain; tests that bring a lab up
// start with Options (or Binaries), which skips them unless they run as
// root.
package labtest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nstest"
)

// buildTimeout bounds building roamd and roamctl.
const buildTimeout = 5 * time.Minute

// What Main built, for Binaries.
var (
	built    nslab.Binaries
	buildErr error
)

// Main runs the test binary's tests; call it from TestMain. As root it
// first builds roamd and roamctl, once for every test of the binary, from
// the source tree the tests run in, and removes them afterwards. Without
// root nothing is built: the lab tests skip.
func Main(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	remove := func() {}
	root, err := nslab.FindModuleRoot(".")
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		built, remove, err = nslab.BuildTemp(ctx, root)
		cancel()
	}
	// A failed build fails each test that needs the binaries (Binaries),
	// not the tests that read files only.
	buildErr = err
	code := m.Run()
	remove()
	os.Exit(code)
}

// Binaries returns roamd and roamctl as Main built them. It skips tb unless
// it runs as root, and fails it when they could not be built.
func Binaries(tb testing.TB) nslab.Binaries {
	tb.Helper()
	nstest.RequireRoot(tb)
	switch {
	case buildErr != nil:
		tb.Fatalf("building roamd: %v", buildErr)
	case built.Roamd == "":
		tb.Fatal("roamd was not built: call labtest.Main from TestMain")
	}
	return built
}

// Options returns the namespace runner's options for a lab under test: the
// Binaries, and the runner's progress logged into tb's log from level on.
func Options(tb testing.TB, level slog.Level) nslab.Options {
	tb.Helper()
	b := Binaries(tb)
	return nslab.Options{RoamdBin: b.Roamd, RoamctlBin: b.Roamctl, Logger: Logger(tb, level)}
}

// Writer returns a writer that logs each write to tb (without its final
// newlines), so output shows beside the test that caused it.
func Writer(tb testing.TB) io.Writer { return testWriter{tb} }

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Logger returns a text logger writing records of level and above into
// tb's log.
func Logger(tb testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer(tb), &slog.HandlerOptions{Level: level}))
}
