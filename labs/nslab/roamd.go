package nslab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/roamd/roamd/daemon/api"
)

// daemon is a process the lab started and owns (roamd).
type daemon struct {
	node    *Node
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // its exit status, valid after done
}

// roamdArgs turns the node's cmd into the command to run here: the leading
// "roamd" becomes the roamd binary and every argument naming a bind target
// becomes the node's copy of the bound file.
func roamdArgs(n *Node, roamdBin string) ([]string, error) {
	f := strings.Fields(n.spec.Cmd)
	if len(f) == 0 || f[0] != "roamd" {
		return nil, fmt.Errorf("node %s: a roamd node needs cmd \"roamd --config FILE\", got %q", n.Name, n.spec.Cmd)
	}
	args := []string{roamdBin}
	for _, a := range f[1:] {
		key, val, isFlag := strings.Cut(a, "=")
		if p, ok := n.BindPath(a); ok {
			a = p
		} else if isFlag {
			if p, ok := n.BindPath(val); ok {
				a = key + "=" + p
			}
		}
		args = append(args, a)
	}
	return args, nil
}

// startRoamd starts roamd in the node's namespace with its API socket in the
// run directory, logging to roamd.log there.
func startRoamd(n *Node, roamdBin, logDir string) (*daemon, error) {
	args, err := roamdArgs(n, roamdBin)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(logDir, "roamd.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	cmd := exec.Command("ip", append([]string{"netns", "exec", n.NS}, args...)...)
	cmd.Env = os.Environ()
	for k, v := range n.spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Each roamd keeps its own journal: a shared default path would mix
	// the sequence numbers of every hypervisor of every lab on the machine.
	cmd.Env = append(cmd.Env, "ROAMD_API_SOCKET="+n.APISocket, "ROAMD_STATE_JOURNAL="+filepath.Join(logDir, "journal"))
	cmd.Stdout, cmd.Stderr = logf, logf
	// ip netns exec execs roamd in place, so roamd gets the signal if this
	// process dies without tearing down.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting roamd in %s: %w", n.NS, err)
	}
	d := &daemon{node: n, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// exited reports whether the process has ended.
func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM (roamd withdraws its routes and drains), then SIGKILL
// after grace.
func (d *daemon) stop(grace time.Duration) error {
	if d.exited() {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(grace):
	}
	_ = d.cmd.Process.Kill()
	<-d.done
	return fmt.Errorf("roamd in %s did not stop within %s; killed", d.node.NS, grace)
}

// Roamctl runs roamctl against a roamd node's API socket.
func (l *Lab) Roamctl(ctx context.Context, node string, args ...string) ([]byte, error) {
	n, err := l.nodeWithRole(node, RoleRoamd)
	if err != nil {
		return nil, err
	}
	if l.roamctl == "" {
		return nil, fmt.Errorf("roamctl binary not given (Options.RoamctlBin)")
	}
	full := append([]string{"--socket", n.APISocket}, args...)
	cmd := exec.CommandContext(ctx, l.roamctl, full...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("roamctl %s (%s): %w: %s", strings.Join(full, " "), node, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// RoamctlJSON runs `roamctl ARGS -o json` against a roamd node's API socket
// and decodes what it prints into v.
func (l *Lab) RoamctlJSON(ctx context.Context, node string, v any, args ...string) error {
	out, err := l.Roamctl(ctx, node, slices.Concat(args, []string{"-o", "json"})...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("parsing roamctl %s on %s: %w: %q", strings.Join(args, " "), node, err, out)
	}
	return nil
}

// RoamdHost is one host as `roamctl show hosts -o json` prints it.
type RoamdHost struct {
	Tenant     string     `json:"tenant"`
	Address    netip.Addr `json:"address"`
	MAC        string     `json:"mac"`
	Port       string     `json:"port"`
	State      string     `json:"state"`
	Sequence   uint32     `json:"sequence"`
	Pinned     bool       `json:"pinned"`
	Frozen     bool       `json:"frozen"`
	Since      time.Time  `json:"since"`
	LastSeen   time.Time  `json:"last_seen"`
	LastSource string     `json:"last_source"`
	ForwardTo  string     `json:"forward_to"`
}

// RoamdHosts returns roamd's host table on a node.
func (l *Lab) RoamdHosts(ctx context.Context, node string) ([]RoamdHost, error) {
	var hs []RoamdHost
	err := l.RoamctlJSON(ctx, node, &hs, "show", "hosts")
	return hs, err
}

// RoamdMove is one move as roamd's API and `roamctl show moves -o json`
// give it: a host arriving at or departing from this site, with roamd's own
// timings.
type RoamdMove = api.Move

// LastArrival returns the latest of ms recording addr arriving after the
// time after (the zero time: any), in tenant ("": any tenant); false when
// none does.
func LastArrival(ms []RoamdMove, tenant string, addr netip.Addr, after time.Time) (RoamdMove, bool) {
	var last RoamdMove
	found := false
	for _, m := range ms {
		if m.Direction != "arrived" || m.Address != addr.String() || (tenant != "" && m.Tenant != tenant) || !m.Time.After(after) {
			continue
		}
		if !found || !m.Time.Before(last.Time) {
			last, found = m, true
		}
	}
	return last, found
}

// RoamdMoves returns the recent moves roamd on node recorded.
func (l *Lab) RoamdMoves(ctx context.Context, node string) ([]RoamdMove, error) {
	var ms []RoamdMove
	err := l.RoamctlJSON(ctx, node, &ms, "show", "moves")
	return ms, err
}
