package movebench

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nslab/probe"
	"github.com/roamd/roamd/labs/nstest"
)

// bins are roamd and roamctl, built once for the package (as root only).
var (
	bins     nslab.Binaries
	buildErr error
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "movebench-bin-")
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

// Every variant's topology parses, gives its nodes the roles the benchmark
// relies on and binds only files that exist.
func TestVariantsLoad(t *testing.T) {
	for _, v := range Variants() {
		t.Run(v.String(), func(t *testing.T) {
			topo, err := v.Load(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if len(topo.Ignored) != 0 {
				t.Errorf("keys the namespace runner would ignore: %v", topo.Ignored)
			}
			leafRole := map[Leaves]nslab.Role{LeavesFRR: nslab.RoleFRR, LeavesBIRD: nslab.RoleBIRD}[v.Leaves]
			hvRole := map[Fabric]nslab.Role{FabricRoamd: nslab.RoleRoamd, FabricL2: nslab.RoleHost, FabricDIY: nslab.RoleFRR, FabricEVPN: nslab.RoleFRR}[v.Fabric]
			want := map[string]nslab.Role{Leaf1: leafRole, Leaf2: leafRole, HV1: hvRole, HV2: hvRole, Client: nslab.RoleHost}
			for name, role := range want {
				n := topo.Nodes[name]
				if n == nil {
					t.Errorf("node %s missing", name)
					continue
				}
				if got, err := nslab.RoleOf(n); err != nil || got != role {
					t.Errorf("node %s has role %q (%v), want %q", name, got, err, role)
				}
				for _, b := range n.Binds {
					if _, err := os.Stat(b.Source); err != nil {
						t.Errorf("node %s binds a missing file: %v", name, err)
					}
				}
			}
			if len(topo.Nodes) != len(want) {
				t.Errorf("%d nodes, want %d", len(topo.Nodes), len(want))
			}
		})
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Each variant comes up, delivers the client's traffic to the VM on hv1,
// and to hv2 after one simulated live migration, with the TCP session
// opened before it intact. The benchmark proper (real QEMU migrations,
// many of them) is not run here.
func TestVariantsComeUpAndFollowAMove(t *testing.T) {
	nstest.RequireRoot(t)
	if buildErr != nil {
		t.Fatalf("building roamd: %v", buildErr)
	}
	for _, v := range Variants() {
		t.Run(v.String(), func(t *testing.T) { testVariant(t, v) })
	}
}

func testVariant(t *testing.T, v Variant) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := time.Now()
	lab, err := UpSimulated(ctx, v, nslab.Options{RoamdBin: bins.Roamd, RoamctlBin: bins.Roamctl, Logger: log})
	if lab != nil {
		t.Cleanup(func() {
			if t.Failed() {
				var b bytes.Buffer
				lab.Lab.DumpLogs(&b, 40)
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
	placed := time.Since(start)

	echo, err := probe.StartEcho(lab.Lab.Node(SimVM), EchoPort)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	target := netip.AddrPortFrom(VMAddr, EchoPort)
	prober, err := probe.Start(lab.Lab.Node(Client), target, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer prober.Stop(0)
	if err := prober.WaitReply(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	tcp, err := probe.DialTCP(lab.Lab.Node(Client), target, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()

	m, err := lab.SimulatedMove(ctx, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if m.From != HV1 || m.To != HV2 {
		t.Fatalf("moved %s → %s, want hv1 → hv2", m.From, m.To)
	}
	if err := lab.WaitDelivers(ctx, HV2); err != nil {
		t.Error(err)
	}
	if err := prober.WaitReply(ctx, m.Resumed); err != nil {
		t.Fatal(err)
	}
	if _, err := tcp.Check(10 * time.Second); err != nil {
		t.Errorf("the TCP session opened before the move: %v", err)
	}
	res := prober.Stop(time.Second)
	t.Logf("%s: placed in %s; move %s → %s (pause %s): %s", v, placed.Round(time.Millisecond), m.From, m.To,
		m.Resumed.Sub(m.Paused).Round(time.Millisecond), res.Window(m.Paused, time.Time{}))
	for _, hv := range []string{HV1, HV2} {
		if w := lab.Watcher(hv); w != nil {
			if err := w.Err(); err != nil {
				t.Errorf("do-it-yourself watcher on %s: %v", hv, err)
			}
		}
	}
}
