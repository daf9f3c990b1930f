package nslab

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

const (
	// netnsDir is where iproute2 (and netns.NewNamed) keep named namespaces.
	netnsDir = "/var/run/netns"
	// registryDir records which process owns which prefix, so a clean-up
	// of crashed runs never touches a live one.
	registryDir = "/run/roamlab"
)

var prefixPattern = regexp.MustCompile(`^[a-z0-9]{1,10}$`)

// NewPrefix returns a fresh run prefix: "rl" and four random hex digits.
func NewPrefix() string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return "rl" + hex.EncodeToString(b)
}

func checkPrefix(prefix string) error {
	if !prefixPattern.MatchString(prefix) {
		return fmt.Errorf("prefix %q: want 1..10 lower-case letters and digits", prefix)
	}
	return nil
}

// registration is what a running lab records about itself.
type registration struct {
	Pid    int    `json:"pid"`
	Start  string `json:"start"` // the owner's start time in clock ticks, against pid reuse
	RunDir string `json:"run_dir"`
}

func register(prefix, runDir string) error {
	if err := os.MkdirAll(registryDir, 0o755); err != nil {
		return err
	}
	pid := os.Getpid()
	data, _ := json.Marshal(registration{Pid: pid, Start: processStart(pid), RunDir: runDir})
	path := filepath.Join(registryDir, prefix+".json")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("prefix %s is in use (or left by a crashed run: roamlab clean %s)", prefix, prefix)
		}
		return err
	}
	defer f.Close()
	_, err = f.Write(data)
	return err
}

func unregister(prefix string) error {
	err := os.Remove(filepath.Join(registryDir, prefix+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// processStart returns the process's start time (field 22 of
// /proc/PID/stat), or "" when it does not exist.
func processStart(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19] // field 22 counted from the pid
}

// owner returns the pid registered for prefix and whether that process
// still runs.
func owner(prefix string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(registryDir, prefix+".json"))
	if err != nil {
		return 0, false
	}
	var r registration
	if json.Unmarshal(data, &r) != nil || r.Pid <= 0 {
		return 0, false
	}
	return r.Pid, processStart(r.Pid) == r.Start
}

// Stale returns the prefixes of registered runs whose owning process is gone.
func Stale() ([]string, error) {
	entries, err := os.ReadDir(registryDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, e := range entries {
		prefix, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || checkPrefix(prefix) != nil {
			continue
		}
		if _, alive := owner(prefix); !alive {
			stale = append(stale, prefix)
		}
	}
	return stale, nil
}

// Clean removes everything a run with this prefix left behind: the
// processes in its namespaces and its FRR instances (watchfrr first), the
// namespaces, the FRR instance directories and its registration. It is for
// runs that crashed; a live lab removes its own things with Close. The run
// directory with the logs is kept.
func Clean(prefix string) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	if pid, alive := owner(prefix); alive {
		return fmt.Errorf("prefix %s belongs to running process %d: stop that lab instead", prefix, pid)
	}
	var errs []error
	insts, _ := filepath.Glob(filepath.Join(frrRunDir, prefix+"-*"))
	for _, dir := range insts {
		mark := "-N\x00" + filepath.Base(dir) + "\x00"
		if pid, err := readPid(filepath.Join(dir, "watchfrr.pid")); err == nil {
			errs = append(errs, stopPids([]int{pid}, mark, 0))
		}
		pidFiles, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
		var pids []int
		for _, pf := range pidFiles {
			if pid, err := readPid(pf); err == nil {
				pids = append(pids, pid)
			}
		}
		errs = append(errs, stopPids(pids, mark, time.Second))
	}
	namespaces, _ := filepath.Glob(filepath.Join(netnsDir, prefix+"-*"))
	for _, ns := range namespaces {
		errs = append(errs, killNamespace(ns))
		if err := netns.DeleteNamed(filepath.Base(ns)); err != nil {
			errs = append(errs, fmt.Errorf("deleting namespace %s: %w", filepath.Base(ns), err))
		}
	}
	for _, dir := range []string{frrConfDir, frrRunDir} {
		ds, _ := filepath.Glob(filepath.Join(dir, prefix+"-*"))
		for _, d := range ds {
			errs = append(errs, os.RemoveAll(d))
		}
	}
	errs = append(errs, unregister(prefix))
	return errors.Join(errs...)
}

// killNamespace stops every process whose network namespace is the named
// namespace at path.
func killNamespace(path string) error {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nil
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, p := range procs {
		if link, err := os.Readlink(p + "/ns/net"); err == nil && link == want {
			if pid, err := strconv.Atoi(filepath.Base(p)); err == nil && pid != os.Getpid() {
				pids = append(pids, pid)
			}
		}
	}
	return stopPids(pids, "", 2*time.Second)
}
