package scale

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nstest"
)

var built struct {
	once sync.Once
	bin  nslab.Binaries
	err  error
	// remove deletes the binaries built (nil when none were).
	remove func()
}

// Binaries builds roamd and roamctl from this source tree once per process
// (the ROAMD_BIN and ROAMCTL_BIN environment variables name prebuilt ones
// instead, e.g. to measure a fixed build).
func Binaries(tb testing.TB) nslab.Binaries {
	tb.Helper()
	built.once.Do(func() {
		if r, c := os.Getenv("ROAMD_BIN"), os.Getenv("ROAMCTL_BIN"); r != "" && c != "" {
			built.bin = nslab.Binaries{Roamd: r, Roamctl: c}
			return
		}
		wd, err := os.Getwd()
		if err != nil {
			built.err = err
			return
		}
		root, err := nslab.FindModuleRoot(wd)
		if err != nil {
			built.err = err
			return
		}
		// Not tb.TempDir: the binaries outlive the first test that asks.
		built.bin, built.remove, built.err = nslab.BuildTemp(context.Background(), root)
	})
	if built.err != nil {
		tb.Fatal(built.err)
	}
	return built.bin
}

// RemoveBinaries deletes what Binaries built; call it at the end of TestMain.
func RemoveBinaries() {
	if built.remove != nil {
		built.remove()
	}
}

// Roamd is a roamd process running in a namespace, observed from outside.
type Roamd struct {
	NS  *nstest.NS
	Dir string // its socket, journal, config and log
	Cmd *exec.Cmd
	API *api.Client
	Log string // path of its log
	// Started is when the process was started.
	Started time.Time
	done    chan struct{}
}

// Socket is the path of roamd's API socket.
func (r *Roamd) Socket() string { return filepath.Join(r.Dir, "roamd.sock") }

// ConfigPath is the path of roamd's configuration file.
func (r *Roamd) ConfigPath() string { return filepath.Join(r.Dir, "roamd.yaml") }

// StartRoamd writes config (a YAML text in which every "{{dir}}" is
// replaced by roamd's own directory, for the socket and journal), starts
// roamd in ns and waits until its API answers. extraEnv is added to its
// environment. Cleanup stops it (SIGTERM, then SIGKILL after 15 s) and
// prints its log when the test failed.
func StartRoamd(tb testing.TB, ns *nstest.NS, config string, extraEnv ...string) *Roamd {
	tb.Helper()
	bin := Binaries(tb).Roamd
	r := &Roamd{NS: ns, Dir: tb.TempDir(), done: make(chan struct{})}
	config = strings.ReplaceAll(config, "{{dir}}", r.Dir)
	if err := os.WriteFile(r.ConfigPath(), []byte(config), 0o600); err != nil {
		tb.Fatal(err)
	}
	r.Log = filepath.Join(r.Dir, "roamd.log")
	logf, err := os.Create(r.Log)
	if err != nil {
		tb.Fatal(err)
	}
	r.Cmd = exec.Command("ip", "netns", "exec", ns.Name, bin, "--config", r.ConfigPath())
	r.Cmd.Stdout, r.Cmd.Stderr = logf, logf
	r.Cmd.Env = append(os.Environ(), extraEnv...)
	r.Started = time.Now()
	if err := r.Cmd.Start(); err != nil {
		logf.Close()
		tb.Fatalf("starting roamd: %v", err)
	}
	go func() { _ = r.Cmd.Wait(); logf.Close(); close(r.done) }()
	tb.Cleanup(func() {
		r.Stop()
		if tb.Failed() {
			tb.Logf("roamd log (last 60 lines):\n%s", r.LogTail(60))
		}
	})
	r.API = api.NewClient(r.Socket())
	err = Poll(context.Background(), 30*time.Second, "roamd's API to answer", func() (bool, error) {
		if r.Exited() {
			return false, fmt.Errorf("roamd exited: %s", r.LogTail(20))
		}
		_, err := r.API.Status(context.Background())
		return err == nil, nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// Exited reports whether the process has ended.
func (r *Roamd) Exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to roamd.
func (r *Roamd) Signal(sig os.Signal) error { return r.Cmd.Process.Signal(sig) }

// Stop ends roamd with SIGTERM (it drains) and waits for it, killing it
// after 15 s.
func (r *Roamd) Stop() {
	if r.Exited() {
		return
	}
	_ = r.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		_ = r.Cmd.Process.Kill()
		<-r.done
	}
}

// LogTail returns the last n lines of roamd's log.
func (r *Roamd) LogTail(n int) string {
	b, _ := os.ReadFile(r.Log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// RSS is roamd's resident set size in bytes, from /proc.
func (r *Roamd) RSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", r.Cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", r.Cmd.Process.Pid)
}

// CPUTime is the CPU time roamd has used (user + system), from /proc.
func (r *Roamd) CPUTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.Cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line, in clock ticks (100 Hz on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", r.Cmd.Process.Pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %q %q", r.Cmd.Process.Pid, f[11], f[12])
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// Namespace runs functions inside a network namespace (nstest.NS and
// nslab.Node both do).
type Namespace = nslab.Namespace

// HTTPGet fetches url from inside the namespace (nslab.HTTPGet).
func HTTPGet(ns Namespace, url string) ([]byte, error) {
	return nslab.HTTPGet(context.Background(), ns, url)
}

// Poll calls cond every 10 ms until it returns true, an error, or timeout
// passes.
func Poll(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	return PollEvery(ctx, 10*time.Millisecond, timeout, what, cond)
}

// PollEvery is Poll with another interval, for conditions that cost the
// daemon something to check (nslab.PollEvery, ending at cond's first error).
func PollEvery(ctx context.Context, every, timeout time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("timed out after %v", timeout))
	defer cancel()
	return nslab.PollEvery(ctx, every, what, func(context.Context) (bool, string, error) {
		ok, err := cond()
		if err != nil {
			return false, "", nslab.Abort(err)
		}
		return ok, "", nil
	})
}
