// Package configs holds roamd's reference configuration and systemd unit;
// its tests check that they agree with each other and with roamd.
package configs

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/daemon/config"
	"github.com/roamd/roamd/labs/nstest"
	"github.com/roamd/roamd/labs/scale"
)

func TestMain(m *testing.M) {
	code := m.Run()
	scale.RemoveBinaries()
	os.Exit(code)
}

// unit is a parsed systemd unit: section → key → values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// one returns the single value of a key ("" when unset).
func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	vs := u[section][key]
	if len(vs) > 1 {
		t.Errorf("[%s] %s is set %d times", section, key, len(vs))
	}
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

func seconds(t *testing.T, s string) time.Duration {
	t.Helper()
	if !strings.ContainsAny(s, "smh") {
		s += "s" // systemd's default unit
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

// TestServiceUnit checks the unit against what roamd does and what the
// reference configuration says: notify readiness, reload by SIGHUP after a
// check, restart policy, the runtime directory holding the socket and the
// journal, capabilities instead of root's full powers. systemd-analyze
// verify checks the syntax where systemd is installed.
func TestServiceUnit(t *testing.T) {
	u := parseUnit(t, "roamd.service")
	ref, err := config.Load("roamd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const run = "/usr/sbin/roamd --config /etc/roamd/roamd.yaml"
	want := map[string]string{
		"Type":                     "notify",
		"NotifyAccess":             "main",
		"ExecStart":                run,
		"ExecStartPre":             "/usr/sbin/roamd check --config /etc/roamd/roamd.yaml",
		"Restart":                  "on-failure",
		"RuntimeDirectory":         "roamd",
		"RuntimeDirectoryPreserve": "yes",
		"NoNewPrivileges":          "yes",
	}
	for k, v := range want {
		if got := u.one(t, "Service", k); got != v {
			t.Errorf("[Service] %s=%q, want %q", k, got, v)
		}
	}
	if got := u["Service"]["ExecReload"]; !slices.Equal(got, []string{"/usr/sbin/roamd check --config /etc/roamd/roamd.yaml", "/bin/kill -HUP $MAINPID"}) {
		t.Errorf("ExecReload %q: want a check of the file, then SIGHUP", got)
	}

	// The socket and the journal must be where systemd creates (and keeps)
	// the runtime directory.
	for what, p := range map[string]string{"api.socket": ref.API.Socket, "state.journal": ref.State.Journal} {
		if filepath.Dir(p) != "/run/"+u.one(t, "Service", "RuntimeDirectory") {
			t.Errorf("reference %s %s is not in the unit's RuntimeDirectory", what, p)
		}
	}
	// Stopping waits for the drain; a restart comes back well inside the
	// graceful restart time the peers keep roamd's routes for.
	if stop := seconds(t, u.one(t, "Service", "TimeoutStopSec")); stop <= ref.Timers.Drain {
		t.Errorf("TimeoutStopSec %v does not leave roamd its drain time %v", stop, ref.Timers.Drain)
	}
	if rs := seconds(t, u.one(t, "Service", "RestartSec")); rs >= ref.BGP.GracefulRestart/10 {
		t.Errorf("RestartSec %v is long against graceful restart %v", rs, ref.BGP.GracefulRestart)
	}
	if wd := seconds(t, u.one(t, "Service", "WatchdogSec")); wd < 2*time.Second {
		t.Errorf("WatchdogSec %v: too tight for a loaded hypervisor", wd)
	}

	caps := strings.Fields(u.one(t, "Service", "CapabilityBoundingSet"))
	slices.Sort(caps)
	if want := []string{"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}; !slices.Equal(caps, want) {
		t.Errorf("CapabilityBoundingSet %q, want exactly %q", caps, want)
	}
	if u := u.one(t, "Service", "User"); u != "" && u != "root" {
		t.Errorf("User=%s: /proc/sys/net writes and the root-only API assume root's user ID", u)
	}
	if u.one(t, "Service", "ProtectKernelTunables") == "yes" {
		t.Error("ProtectKernelTunables=yes makes /proc/sys read-only; roamd writes port sysctls")
	}
	fams := strings.Fields(u.one(t, "Service", "RestrictAddressFamilies"))
	for _, f := range []string{"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"} {
		if !slices.Contains(fams, f) {
			t.Errorf("RestrictAddressFamilies lacks %s", f)
		}
	}
	if got := u.one(t, "Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("WantedBy=%q", got)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: syntax not verified")
		return
	}
	// verify also checks that the binaries exist: point it at a built roamd.
	bin := scale.Binaries(t).Roamd
	text, err := os.ReadFile("roamd.service")
	if err != nil {
		t.Fatal(err)
	}
	unitPath := filepath.Join(t.TempDir(), "roamd.service")
	if err := os.WriteFile(unitPath, []byte(strings.ReplaceAll(string(text), "/usr/sbin/roamd", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unitPath).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// notifications collects what roamd sends to $NOTIFY_SOCKET.
type notifications struct {
	conn *net.UnixConn
	ch   chan string
}

func listenNotify(t *testing.T) (*notifications, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	n := &notifications{conn: c, ch: make(chan string, 64)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				close(n.ch)
				return
			}
			n.ch <- string(buf[:k])
		}
	}()
	return n, path
}

// next returns the next message that has line (e.g. "READY=1").
func (n *notifications) next(t *testing.T, line string, within time.Duration) string {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m, ok := <-n.ch:
			if !ok {
				t.Fatalf("notification socket closed before %s", line)
			}
			if slices.Contains(strings.Split(m, "\n"), line) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s from roamd within %v", line, within)
		}
	}
}

const notifyConfig = `
version: 1
router_id: 192.0.2.11
asn: 65011
gateway_mac: "02:00:5e:10:00:01"
state: {journal: "{{dir}}/journal"}
api: {socket: "{{dir}}/roamd.sock"}
tenants:
  - name: default
    id: 1
    ports: ["tap*"]
    gateways: [10.10.0.1]
    prefixes: [10.10.0.0/24]
`

// TestRoamdTellsSystemd runs roamd as systemd would (NOTIFY_SOCKET,
// WATCHDOG_USEC) after a restart: READY=1 must mean what the unit promises
// (the API answers and the hosts left in the kernel are restored with the
// journal's sequence), a reload is bracketed by RELOADING=1 and READY=1,
// the watchdog is fed, and SIGTERM announces STOPPING=1 and exits cleanly.
func TestRoamdTellsSystemd(t *testing.T) {
	hv := nstest.New(t, "hv")
	vm := nstest.New(t, "vm")
	nstest.Veth(t, hv, "tapvm1", vm, "eth0")
	// What the previous roamd left: its route in the kernel and the
	// sequence it announced in the journal.
	hv.MustRun(t, "ip", "route", "add", "10.10.0.10/32", "dev", "tapvm1", "proto", "77")
	notify, sock := listenNotify(t)

	dir := t.TempDir()
	cfg := strings.ReplaceAll(notifyConfig, "{{dir}}", dir)
	if err := os.WriteFile(filepath.Join(dir, "journal"), []byte("default 10.10.0.10 7 52:54:00:00:00:10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "roamd.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", hv.Name, scale.Binaries(t).Roamd, "--config", filepath.Join(dir, "roamd.yaml"))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000")
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("roamd log:\n%s", log.String())
		}
	})

	notify.next(t, "READY=1", 20*time.Second)
	// No retry: whoever systemd starts after roamd talks to it at once.
	c := apiClient(dir)
	h, err := c.Host(context.Background(), "", "10.10.0.10")
	if err != nil {
		t.Fatalf("READY=1 was sent, but the API does not answer: %v", err)
	}
	if h.Sequence != 7 || h.Port != "tapvm1" {
		t.Errorf("READY=1 was sent before the restore: host %+v, want sequence 7 on tapvm1", h)
	}

	notify.next(t, "WATCHDOG=1", 2*time.Second)

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	notify.next(t, "RELOADING=1", 5*time.Second)
	notify.next(t, "READY=1", 5*time.Second)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	notify.next(t, "STOPPING=1", 5*time.Second)
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("roamd exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("roamd still runs 15 s after SIGTERM")
	}

}

func apiClient(dir string) *api.Client { return api.NewClient(filepath.Join(dir, "roamd.sock")) }
