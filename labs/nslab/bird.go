package nslab

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// birdConfTarget is where a BIRD node's configuration is bound, as in a BIRD
// container.
const birdConfTarget = "/etc/bird/bird.conf"

// birdLogLine matches a BIRD log statement that writes to a file.
var birdLogLine = regexp.MustCompile(`(?m)^(\s*log\s+)"[^"]*"`)

// checkBIRD reports what is missing to run BIRD routers.
func checkBIRD() error {
	var missing []string
	for _, c := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("BIRD is not installed (missing %s): apt-get install bird2", strings.Join(missing, ", "))
	}
	return nil
}

// birdConf points the config's file log statements at logFile, adding one
// when there is none (BIRD logs to syslog by default, which a lab has not).
func birdConf(conf []byte, logFile string) []byte {
	if birdLogLine.Match(conf) {
		return birdLogLine.ReplaceAll(conf, []byte(`${1}"`+logFile+`"`))
	}
	return append(conf, []byte("\n# added by roamlab\nlog \""+logFile+"\" all;\n")...)
}

// startBIRDNodes starts BIRD in every BIRD node and waits until each answers
// on its control socket.
func (l *Lab) startBIRDNodes(ctx context.Context) error {
	var nodes []*Node
	for _, n := range l.Nodes() {
		if n.Role == RoleBIRD {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		return nil
	}
	if err := checkBIRD(); err != nil {
		return err
	}
	start := time.Now()
	for _, n := range nodes {
		d, err := startBIRD(n, l.nodeDir(n))
		if err != nil {
			return err
		}
		l.bird = append(l.bird, d)
	}
	for _, d := range l.bird {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := Poll(wctx, "BIRD in "+d.node.NS+" answering on its control socket", func(ctx context.Context) (bool, string, error) {
			if d.exited() {
				return false, "", Abort(fmt.Errorf("bird exited: %v; log %s:\n%s", d.err, d.logPath, tail(d.logPath, 20)))
			}
			_, err := l.Birdc(ctx, d.node.Name, "show", "status")
			return err == nil, "", err
		})
		cancel()
		if err != nil {
			return err
		}
	}
	l.log.Info("BIRD running", "routers", len(nodes), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// startBIRD runs bird in the foreground in the node's namespace, with the
// node's copy of its config (log statements pointed into the node's run
// directory), its control socket there too.
func startBIRD(n *Node, dir string) (*daemon, error) {
	src, ok := n.BindPath(birdConfTarget)
	if !ok {
		return nil, fmt.Errorf("node %s: a BIRD node needs a bind to %s", n.Name, birdConfTarget)
	}
	conf, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	logPath := filepath.Join(dir, "bird.log")
	confPath := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(confPath, birdConf(conf, logPath), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	cmd := exec.Command("ip", "netns", "exec", n.NS, "bird", "-f", "-c", confPath, "-s", birdSocket(dir), "-P", filepath.Join(dir, "bird.pid"))
	cmd.Stdout, cmd.Stderr = logf, logf
	// ip netns exec execs bird in place: bird gets the signal if this
	// process dies without tearing down.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting bird in %s: %w", n.NS, err)
	}
	d := &daemon{node: n, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// birdSocket is the control socket of the BIRD whose run directory is dir.
func birdSocket(dir string) string { return filepath.Join(dir, "bird.ctl") }

// Birdc runs one birdc command against a BIRD node and returns its output.
func (l *Lab) Birdc(ctx context.Context, node string, args ...string) (string, error) {
	n, err := l.nodeWithRole(node, RoleBIRD)
	if err != nil {
		return "", err
	}
	full := append([]string{"-s", birdSocket(l.nodeDir(n))}, args...)
	out, err := exec.CommandContext(ctx, "birdc", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc %s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// BIRDProtocol is one line of `birdc show protocols`.
type BIRDProtocol struct {
	Name, Proto, State string
	// Info is the rest of the line: "Established" for an up BGP session.
	Info string
}

// BIRDProtocols returns a BIRD node's protocols.
func (l *Lab) BIRDProtocols(ctx context.Context, node string) ([]BIRDProtocol, error) {
	out, err := l.Birdc(ctx, node, "show", "protocols")
	if err != nil {
		return nil, err
	}
	return parseBIRDProtocols(out)
}

// parseBIRDProtocols reads `show protocols`: a greeting, a header line
// ("Name Proto Table State Since Info"), then one protocol per line. Since
// is a time, or a date and a time when it is not today; Info is the rest,
// its words joined by single spaces.
func parseBIRDProtocols(out string) ([]BIRDProtocol, error) {
	var ps []BIRDProtocol
	header := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if !header {
			header = len(f) > 0 && f[0] == "Name"
			continue
		}
		if len(f) < 4 {
			continue
		}
		p := BIRDProtocol{Name: f[0], Proto: f[1], State: f[3]}
		info := 5 // after a one-field Since
		if len(f) > 5 && strings.Contains(f[4], "-") && strings.Contains(f[5], ":") {
			info = 6
		}
		if len(f) > info {
			p.Info = strings.Join(f[info:], " ")
		}
		ps = append(ps, p)
	}
	if !header {
		return nil, fmt.Errorf("birdc show protocols: no header line in %q", out)
	}
	return ps, nil
}

// WaitBIRDSessions waits until every BGP protocol of the BIRD node is
// established.
func (l *Lab) WaitBIRDSessions(ctx context.Context, node string) error {
	return Poll(ctx, "BGP sessions of "+node+" established", func(ctx context.Context) (bool, string, error) {
		ps, err := l.BIRDProtocols(ctx, node)
		if err != nil {
			return false, "", err
		}
		var down []string
		bgp := 0
		for _, p := range ps {
			if p.Proto != "BGP" {
				continue
			}
			bgp++
			if !strings.HasPrefix(p.Info, "Established") {
				down = append(down, fmt.Sprintf("%s %s %s", p.Name, p.State, p.Info))
			}
		}
		if bgp == 0 {
			down = append(down, "no BGP protocols")
		}
		return len(down) == 0, strings.Join(down, ", "), nil
	})
}
