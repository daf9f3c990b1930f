package nslab

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/roamd/roamd/labs/clab"
)

func TestRoleOf(t *testing.T) {
	frrBind := []clab.Bind{{Source: "/x/frr.conf", Target: "/etc/frr/frr.conf"}}
	tests := []struct {
		name string
		node clab.Node
		want Role
		err  string
	}{
		{"label wins", clab.Node{Name: "a", Labels: map[string]string{RoleLabel: "vm"}, Binds: frrBind}, RoleVM, ""},
		{"frr bind", clab.Node{Name: "a", Binds: frrBind}, RoleFRR, ""},
		{"roamd cmd", clab.Node{Name: "a", Cmd: "roamd --config /etc/roamd/roamd.yaml"}, RoleRoamd, ""},
		{"plain", clab.Node{Name: "a", Cmd: "sleep infinity"}, RoleHost, ""},
		{"bad label", clab.Node{Name: "a", Labels: map[string]string{RoleLabel: "router"}}, "", `unknown role "router"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RoleOf(&tt.node)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("RoleOf error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("RoleOf = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestRoamdArgsMapBindTargetsToSources(t *testing.T) {
	n := &Node{Name: "hv1", spec: &clab.Node{
		Name: "hv1",
		Cmd:  "roamd --config /etc/roamd/roamd.yaml --other=/etc/roamd/extra.yaml -v",
	}, binds: map[string]string{
		"/etc/roamd/roamd.yaml": "/lab/hv1/roamd.yaml",
		"/etc/roamd/extra.yaml": "/lab/extra.yaml",
	}}
	got, err := roamdArgs(n, "/bin/roamd")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/bin/roamd", "--config", "/lab/hv1/roamd.yaml", "--other=/lab/extra.yaml", "-v"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("roamdArgs (-want +got):\n%s", diff)
	}
	n.spec.Cmd = "/usr/bin/roamd"
	if _, err := roamdArgs(n, "/bin/roamd"); err == nil {
		t.Error("roamdArgs accepted a cmd that does not start with roamd")
	}
}

func TestFRRConfRewritesTheLogFile(t *testing.T) {
	conf := "hostname leaf1\nlog file /var/log/frr/frr.log informational\n!\n"
	got := string(frrConf([]byte(conf), "/run/lab/leaf1/frr.log"))
	want := "hostname leaf1\nlog file /run/lab/leaf1/frr.log informational\n!\n"
	if got != want {
		t.Errorf("frrConf = %q, want %q", got, want)
	}
	got = string(frrConf([]byte("hostname leaf1\n"), "/run/lab/leaf1/frr.log"))
	if !strings.HasSuffix(got, "\nlog file /run/lab/leaf1/frr.log\n") {
		t.Errorf("frrConf without a log line = %q, want one appended", got)
	}
}

func TestFRRDaemonsGetNetns(t *testing.T) {
	got := string(frrDaemons([]byte("bgpd=yes\n")))
	if !strings.Contains(got, `watchfrr_options="${watchfrr_options} --netns"`) {
		t.Errorf("frrDaemons = %q, want --netns added to watchfrr_options", got)
	}
	already := "bgpd=yes\nwatchfrr_options=\"--netns\"\n"
	if got := string(frrDaemons([]byte(already))); got != already {
		t.Errorf("frrDaemons changed a file that has --netns: %q", got)
	}
}

func TestBatchable(t *testing.T) {
	for line, want := range map[string]bool{
		"ip addr add 192.0.2.1/24 dev eth1":     true,
		"ip route add ::/0 via 2001:db8::1":     true,
		"ip -6 route add default via fe80::1":   false, // global option
		"ip link":                               false, // too short to be a command worth batching
		"sysctl -w net.ipv4.ip_forward=1":       false,
		"ip addr add $ADDR dev eth1":            false,
		"ip addr show dev eth1 | grep inet":     false,
		"ip link set eth1 address 52:54:00:1:2": true,
	} {
		if got := batchable(line); got != want {
			t.Errorf("batchable(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestParseTraceroute(t *testing.T) {
	out := `traceroute to 10.10.0.10 (10.10.0.10), 12 hops max, 60 byte packets
 1  198.51.100.129  0.061 ms
 2  *
 3  192.0.2.12  0.101 ms
 4  10.10.0.10  0.120 ms
`
	got, err := parseTraceroute(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("198.51.100.129"), {}, netip.MustParseAddr("192.0.2.12"), netip.MustParseAddr("10.10.0.10")}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("parseTraceroute (-want +got):\n%s", diff)
	}
	if _, err := parseTraceroute("traceroute to x\n 2  192.0.2.1  1 ms\n"); err == nil {
		t.Error("parseTraceroute accepted output that skips hop 1")
	}
}

func TestPollReportsWhatItLastSaw(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*PollInterval)
	defer cancel()
	calls := 0
	err := Poll(ctx, "the answer", func(context.Context) (bool, string, error) {
		calls++
		return false, "still 41", nil
	})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Poll error = %v, want a deadline error", err)
	}
	if !strings.Contains(err.Error(), "waiting for the answer") || !strings.Contains(err.Error(), "last seen: still 41") {
		t.Errorf("Poll error %q does not say what it waited for and what it saw", err)
	}
	if calls < 2 {
		t.Errorf("condition checked %d times, want it polled repeatedly", calls)
	}
}

func TestPollStopsAtAbort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gone := errors.New("roamd exited")
	calls := 0
	err := Poll(ctx, "roamd", func(context.Context) (bool, string, error) {
		calls++
		return false, "", Abort(gone)
	})
	if !errors.Is(err, gone) || calls != 1 {
		t.Errorf("Poll = %v after %d calls, want the abort error after 1", err, calls)
	}
}

func TestPollSucceedsOnceTheConditionHolds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	err := Poll(ctx, "three calls", func(context.Context) (bool, string, error) {
		n++
		if n < 3 {
			return false, "", errors.New("not yet")
		}
		return true, "", nil
	})
	if err != nil || n != 3 {
		t.Errorf("Poll = %v after %d calls, want success on the third", err, n)
	}
}

func TestProcessStartIdentifiesALiveProcess(t *testing.T) {
	if processStart(os.Getpid()) == "" || !processAlive(os.Getpid()) {
		t.Fatal("this process is not seen as alive")
	}
	if processStart(1<<30) != "" || processAlive(1<<30) {
		t.Error("a pid that cannot exist is seen as alive")
	}
}

func TestPrefixes(t *testing.T) {
	p := NewPrefix()
	if err := checkPrefix(p); err != nil || !strings.HasPrefix(p, "rl") || len(p) != 6 {
		t.Errorf("NewPrefix() = %q (%v), want rl and 4 hex digits", p, err)
	}
	for _, bad := range []string{"", "RL01", "rl-1", "rl/1", "averyveryverylongprefix"} {
		if checkPrefix(bad) == nil {
			t.Errorf("checkPrefix(%q) accepted it", bad)
		}
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestLastArrival(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	addr := netip.MustParseAddr("10.10.0.10")
	ms := []RoamdMove{
		{Time: t0.Add(1 * time.Second), Tenant: "red", Address: "10.10.0.10", Direction: "arrived", Source: "rarp"},
		{Time: t0.Add(2 * time.Second), Tenant: "blue", Address: "10.10.0.10", Direction: "arrived", Source: "garp"},
		{Time: t0.Add(3 * time.Second), Tenant: "red", Address: "10.10.0.10", Direction: "departed"},
		{Time: t0.Add(4 * time.Second), Tenant: "red", Address: "10.10.0.11", Direction: "arrived"},
	}
	tests := []struct {
		name   string
		tenant string
		after  time.Time
		want   string // the Source of the move found, "" for none
	}{
		{"any tenant", "", time.Time{}, "garp"},
		{"one tenant", "red", time.Time{}, "rarp"},
		{"after", "red", t0.Add(1 * time.Second), ""},
		{"after, any tenant", "", t0.Add(1 * time.Second), "garp"},
	}
	for _, tt := range tests {
		m, ok := LastArrival(ms, tt.tenant, addr, tt.after)
		if ok != (tt.want != "") || m.Source != tt.want {
			t.Errorf("%s: LastArrival = %+v, %v; want source %q", tt.name, m, ok, tt.want)
		}
	}
}
