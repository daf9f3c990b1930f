package movebench

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/roamd/roamd/labs/labtest"
	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nslab/probe"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// Every variant's topology parses, gives its nodes the roles the benchmark
// relies on and binds only files that exist.
func TestVariantsLoad(t *testing.T) {
	for _, v := range Variants() {
		t.Run(v.String(), func(t *testing.T) {
			path, err := v.Extract(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			topo := labtest.LoadTopology(t, path)
			leafRole := map[Leaves]nslab.Role{LeavesFRR: nslab.RoleFRR, LeavesBIRD: nslab.RoleBIRD}[v.Leaves]
			hvRole := map[Fabric]nslab.Role{FabricRoamd: nslab.RoleRoamd, FabricL2: nslab.RoleHost, FabricDIY: nslab.RoleFRR, FabricEVPN: nslab.RoleFRR}[v.Fabric]
			labtest.CheckTopology(t, topo, map[string]nslab.Role{Leaf1: leafRole, Leaf2: leafRole, HV1: hvRole, HV2: hvRole, Client: nslab.RoleHost})
		})
	}
}

// Each variant comes up, delivers the client's traffic to the VM on hv1,
// and to hv2 after one simulated live migration, with the TCP session
// opened before it intact. The benchmark proper (real QEMU migrations,
// many of them) is not run here.
func TestVariantsComeUpAndFollowAMove(t *testing.T) {
	labtest.Binaries(t)
	for _, v := range Variants() {
		t.Run(v.String(), func(t *testing.T) { testVariant(t, v) })
	}
}

func testVariant(t *testing.T, v Variant) {
	opts := labtest.Options(t, slog.LevelWarn)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	lab := labtest.Up(t, ctx, opts, 40, func(ctx context.Context, opts nslab.Options) (*SimLab, error) {
		return UpSimulated(ctx, v, opts)
	})
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
