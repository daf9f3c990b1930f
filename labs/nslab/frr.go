package nslab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Where Debian's frr package keeps things. An FRR instance named N (the
// "pathspace" of -N) has its configuration in frrConfDir/N and its pid files
// and sockets in frrRunDir/N.
const (
	frrConfDir       = "/etc/frr"
	frrRunDir        = "/var/run/frr"
	frrLibDir        = "/usr/lib/frr"
	frrInit          = frrLibDir + "/frrinit.sh"
	frrConfTarget    = "/etc/frr/frr.conf"
	frrDaemonsTarget = "/etc/frr/daemons"
)

// frrInstance is one FRR instance running in a node's namespace.
type frrInstance struct {
	node *Node
	name string // instance name = namespace name
	// pids of watchfrr and the daemons, read from their pid files.
	watchfrr int
	daemons  map[string]int
}

// checkFRR reports what is missing to run FRR instances.
func checkFRR() error {
	var missing []string
	for _, f := range []string{frrInit, frrLibDir + "/watchfrr", frrLibDir + "/zebra", frrLibDir + "/bgpd"} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		missing = append(missing, "vtysh")
	}
	if _, err := user.Lookup("frr"); err != nil {
		missing = append(missing, "user frr")
	}
	if len(missing) > 0 {
		return fmt.Errorf("FRR is not installed (missing %s): apt-get install frr", strings.Join(missing, ", "))
	}
	return nil
}

var logFileLine = regexp.MustCompile(`(?m)^(\s*log file)\s+\S+(.*)$`)

// prepareFRR writes the instance's configuration directory from the node's
// bound daemons and frr.conf: watchfrr gets --netns so the daemons run in
// the namespace named like the instance, and "log file" points into the
// node's run directory.
func prepareFRR(n *Node, logDir string) (*frrInstance, error) {
	conf, ok := n.BindPath(frrConfTarget)
	if !ok {
		return nil, fmt.Errorf("node %s: an FRR node needs a bind to %s", n.Name, frrConfTarget)
	}
	daemons, ok := n.BindPath(frrDaemonsTarget)
	if !ok {
		return nil, fmt.Errorf("node %s: an FRR node needs a bind to %s", n.Name, frrDaemonsTarget)
	}
	confText, err := os.ReadFile(conf)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	daemonsText, err := os.ReadFile(daemons)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}

	u, err := user.Lookup("frr")
	if err != nil {
		return nil, fmt.Errorf("looking up user frr: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	confText = frrConf(confText, filepath.Join(logDir, "frr.log"))
	daemonsText = frrDaemons(daemonsText)

	inst := &frrInstance{node: n, name: n.NS, daemons: map[string]int{}}
	dir := filepath.Join(frrConfDir, inst.name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	for name, data := range map[string][]byte{"frr.conf": confText, "daemons": daemonsText, "vtysh.conf": nil} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o640); err != nil {
			return inst, err
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return inst, err
		}
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return inst, err
	}
	// The daemons write their log as user frr.
	if err := os.Chown(logDir, uid, gid); err != nil {
		return inst, err
	}
	return inst, nil
}

// frrConf points the config's "log file" at logFile (adding one if there
// is none): the lab's own log path is inside a container.
func frrConf(conf []byte, logFile string) []byte {
	if logFileLine.Match(conf) {
		return logFileLine.ReplaceAll(conf, []byte("${1} "+logFile+"${2}"))
	}
	return append(conf, []byte("\nlog file "+logFile+"\n")...)
}

// frrDaemons adds --netns to watchfrr's options so watchfrr starts the
// daemons inside the namespace named like the instance.
func frrDaemons(daemons []byte) []byte {
	if strings.Contains(string(daemons), "--netns") {
		return daemons
	}
	return append(daemons, []byte("\n# added by roamlab: run the daemons in the namespace named like the instance\nwatchfrr_options=\"${watchfrr_options} --netns\"\n")...)
}

// start runs frrinit.sh for the instance and waits until watchfrr reports
// every daemon up, then records their pids.
func (f *frrInstance) start(ctx context.Context, log func(string)) error {
	out, err := exec.CommandContext(ctx, frrInit, "start", f.name).CombinedOutput()
	log(string(out))
	if err != nil {
		return fmt.Errorf("starting FRR in %s: %w: %s", f.name, err, strings.TrimSpace(string(out)))
	}
	runDir := filepath.Join(frrRunDir, f.name)
	if pid, err := readPid(filepath.Join(runDir, "watchfrr.pid")); err == nil {
		f.watchfrr = pid
	}
	err = Poll(ctx, "FRR daemons up in "+f.name, func(context.Context) (bool, string, error) {
		if _, err := os.Stat(filepath.Join(runDir, "watchfrr.started")); err != nil {
			return false, "watchfrr has not reported all daemons up", nil
		}
		return true, "", nil
	})
	if err != nil {
		return err
	}
	f.watchfrr, err = readPid(filepath.Join(runDir, "watchfrr.pid"))
	if err != nil {
		return fmt.Errorf("FRR in %s: %w", f.name, err)
	}
	entries, err := os.ReadDir(runDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		d, ok := strings.CutSuffix(e.Name(), ".pid")
		if !ok || d == "watchfrr" {
			continue
		}
		pid, err := readPid(filepath.Join(runDir, e.Name()))
		if err != nil {
			return fmt.Errorf("FRR in %s: %w", f.name, err)
		}
		f.daemons[d] = pid
	}
	return nil
}

// stop kills watchfrr first (it would restart the daemons), then the daemons,
// then removes the instance's directories. Only pids whose command line
// names this instance are signalled.
func (f *frrInstance) stop() error {
	var errs []error
	runDir := filepath.Join(frrRunDir, f.name)
	if f.watchfrr == 0 {
		f.watchfrr, _ = readPid(filepath.Join(runDir, "watchfrr.pid"))
	}
	if f.watchfrr > 0 {
		errs = append(errs, stopPids([]int{f.watchfrr}, "-N\x00"+f.name+"\x00", 0))
	}
	var pids []int
	for _, p := range f.daemons {
		pids = append(pids, p)
	}
	// Daemons that came up after start stopped waiting (it failed or was
	// interrupted) left only their pid files in the instance's directory.
	files, _ := filepath.Glob(filepath.Join(runDir, "*.pid"))
	for _, pf := range files {
		if pid, err := readPid(pf); err == nil && pid != f.watchfrr && !slices.Contains(pids, pid) {
			pids = append(pids, pid)
		}
	}
	errs = append(errs, stopPids(pids, "-N\x00"+f.name+"\x00", time.Second))
	errs = append(errs, os.RemoveAll(filepath.Join(frrConfDir, f.name)))
	errs = append(errs, os.RemoveAll(filepath.Join(frrRunDir, f.name)))
	return errors.Join(errs...)
}

// stopPids sends SIGTERM to each pid whose /proc cmdline contains mark (so a
// recycled pid is never hit), SIGKILL to those still alive after grace
// (grace 0: SIGKILL at once), and waits for them to go.
func stopPids(pids []int, mark string, grace time.Duration) error {
	var mine []int
	for _, pid := range pids {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmdline)+"\x00", mark) {
			continue // already gone, or not ours any more
		}
		mine = append(mine, pid)
	}
	sig := syscall.SIGTERM
	if grace == 0 {
		sig = syscall.SIGKILL
	}
	for _, pid := range mine {
		_ = syscall.Kill(pid, sig)
	}
	deadline := time.Now().Add(grace)
	killed := grace == 0
	for {
		alive := 0
		for _, pid := range mine {
			if processAlive(pid) {
				alive++
			}
		}
		if alive == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if killed {
				if time.Now().After(deadline.Add(5 * time.Second)) {
					return fmt.Errorf("processes %v did not exit after SIGKILL", mine)
				}
			} else {
				for _, pid := range mine {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				killed = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: bad pid %q", path, strings.TrimSpace(string(b)))
	}
	return pid, nil
}

// Vtysh runs one vtysh command against an FRR node and returns its output.
func (l *Lab) Vtysh(ctx context.Context, node, command string) (string, error) {
	n, err := l.nodeWithRole(node, RoleFRR)
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, "vtysh", "-N", n.NS, "-c", command).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh -N %s -c %q: %w: %s", n.NS, command, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
