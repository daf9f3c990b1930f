package nslab

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netns"

	"github.com/roamd/roamd/detect/frames"
	"github.com/roamd/roamd/labs/clab"
	"github.com/roamd/roamd/labs/nstest"
)

// Privileged tests: each brings up its own small lab under a fresh prefix
// and checks it is gone afterwards.

// parseTopo parses a topology whose bind sources are files in a fresh
// directory, each holding its own name.
func parseTopo(t *testing.T, text string, files ...string) *clab.Topology {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	topo, err := clab.Parse([]byte(text), dir)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func up(t *testing.T, topo *clab.Topology, opts Options) *Lab {
	t.Helper()
	nstest.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lab, err := Up(ctx, topo, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			lab.DumpLogs(os.Stderr, 30)
		}
		if err := lab.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		assertGone(t, lab.Prefix)
	})
	return lab
}

// assertGone checks nothing of the run is left: namespaces, FRR instance
// directories, registration.
func assertGone(t *testing.T, prefix string) {
	t.Helper()
	for _, pattern := range []string{netnsDir, frrConfDir, frrRunDir} {
		if left, _ := filepath.Glob(filepath.Join(pattern, prefix+"-*")); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	}
	if _, err := os.Stat(filepath.Join(registryDir, prefix+".json")); err == nil {
		t.Errorf("registration of %s left behind", prefix)
	}
}

// fakeRoamd is a stand-in for roamd for tests of the plumbing alone.
func fakeRoamd(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "roamd")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexec sleep 3600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

const pairLab = `
name: pair
topology:
  nodes:
    a:
      kind: linux
      exec:
        - ip addr add 192.0.2.1/24 dev eth1
        - ip addr add 2001:db8::1/64 dev eth1 nodad
        - sh -c "echo 1 > /proc/sys/net/ipv4/ip_forward"
    b:
      kind: linux
      exec:
        - ip addr add 192.0.2.2/24 dev eth1
  links:
    - endpoints: ["a:eth1", "b:eth1"]
`

func TestUpLinksNodesRunsExecAndTearsDown(t *testing.T) {
	lab := up(t, parseTopo(t, pairLab), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := lab.Node("a").Run(ctx, "ping", "-c1", "-W2", "192.0.2.2"); err != nil {
		t.Fatalf("a cannot reach b over their link: %v\n%s", err, out)
	}
	fwd, err := lab.Node("a").Run(ctx, "cat", "/proc/sys/net/ipv4/ip_forward")
	if err != nil || strings.TrimSpace(fwd) != "1" {
		t.Errorf("the shell exec line did not run in a's namespace: ip_forward=%q (%v)", fwd, err)
	}
	if dad, _ := lab.Node("b").Run(ctx, "cat", "/proc/sys/net/ipv6/conf/eth1/accept_dad"); strings.TrimSpace(dad) != "0" {
		t.Errorf("accept_dad on b's eth1 = %q, want 0 (DAD would delay every move)", dad)
	}
	owners, err := lab.NodesOwning(mustAddr("192.0.2.2"))
	if err != nil || len(owners) != 1 || owners[0] != "b" {
		t.Errorf("NodesOwning(192.0.2.2) = %v, %v; want [b]", owners, err)
	}
}

func TestUpNamesTheFailingExecLineAndRemovesEverything(t *testing.T) {
	nstest.RequireRoot(t)
	topo := parseTopo(t, strings.Replace(pairLab, "ip addr add 192.0.2.2/24 dev eth1", "ip addr add 192.0.2.2/24 dev eth9", 1))
	prefix := NewPrefix()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lab, err := Up(ctx, topo, Options{Prefix: prefix, RunDir: t.TempDir()})
	if lab != nil {
		t.Fatal("Up returned a lab on failure")
	}
	if err == nil || !strings.Contains(err.Error(), `node b exec[0] "ip addr add 192.0.2.2/24 dev eth9"`) {
		t.Fatalf("Up error = %v, want it to name node b's failing exec line", err)
	}
	assertGone(t, prefix)
}

func TestUpSaysWhatIsMissing(t *testing.T) {
	nstest.RequireRoot(t)
	topo := parseTopo(t, `
name: r
topology:
  nodes:
    hv: {kind: linux, cmd: roamd --config /etc/roamd/roamd.yaml}
`)
	ctx := context.Background()
	if _, err := Up(ctx, topo, Options{}); err == nil || !strings.Contains(err.Error(), "roamd binary not given") || !strings.Contains(err.Error(), "go build") {
		t.Errorf("Up without roamd = %v, want an error saying how to build it", err)
	}
	if _, err := Up(ctx, topo, Options{RoamdBin: "/nonexistent/roamd"}); err == nil || !strings.Contains(err.Error(), "not found (not built?)") {
		t.Errorf("Up with a missing roamd = %v, want a not-built error", err)
	}
}

func TestCleanRemovesACrashedRun(t *testing.T) {
	nstest.RequireRoot(t)
	prefix := NewPrefix()
	// A crashed run: its registration names a process that has exited, and
	// a process still lives in one of its namespaces.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(registration{Pid: dead.Process.Pid, Start: "1", RunDir: t.TempDir()})
	if err := os.MkdirAll(registryDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(registryDir, prefix+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := newNamespace(prefix + "-x")
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(func() { _ = netns.DeleteNamed(prefix + "-x") })
	sleeper := exec.Command("ip", "netns", "exec", prefix+"-x", "sleep", "3600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { _ = sleeper.Wait(); close(waited) }()

	stale, err := Stale()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range stale {
		found = found || p == prefix
	}
	if !found {
		t.Fatalf("Stale() = %v, want it to list the crashed run %s", stale, prefix)
	}
	if err := Clean(prefix); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Error("the process in the crashed run's namespace survived Clean")
	}
	assertGone(t, prefix)
}

func TestCleanRefusesALiveRun(t *testing.T) {
	lab := up(t, parseTopo(t, pairLab), Options{})
	if err := Clean(lab.Prefix); err == nil || !strings.Contains(err.Error(), "belongs to running process") {
		t.Errorf("Clean of a live lab = %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, lab.Node("a").NS)); err != nil {
		t.Errorf("Clean of a live lab removed its namespace: %v", err)
	}
}

const moveLab = `
name: move
topology:
  nodes:
    hv1: {kind: linux, cmd: roamd --config /etc/roamd.yaml, binds: ["roamd.yaml:/etc/roamd.yaml"]}
    hv2: {kind: linux, cmd: roamd --config /etc/roamd.yaml, binds: ["roamd.yaml:/etc/roamd.yaml"]}
    vm:
      kind: linux
      labels: {roamlab.role: vm}
      exec:
        - ip link set eth1 address 52:54:00:10:00:10
        - ip addr add 10.10.0.10/24 dev eth1
  links:
    - endpoints: ["hv1:tapvm1", "vm:eth1"]
`

// capture collects the ARP and RARP frames hv sees on any interface.
func capture(t *testing.T, n *Node) <-chan []byte {
	t.Helper()
	var conn *packet.Conn
	err := n.Do(func() error {
		var err error
		// Interface index 0: every interface, including ones moved in later.
		conn, err = packet.Listen(&net.Interface{Index: 0}, packet.Raw, 0x0003, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := make(chan []byte, 64)
	go func() {
		buf := make([]byte, 1600)
		for {
			k, _, err := conn.ReadFrom(buf)
			if err != nil {
				close(c)
				return
			}
			if k >= 14 {
				if et := binary.BigEndian.Uint16(buf[12:14]); et == 0x8035 || et == 0x0806 {
					c <- bytes.Clone(buf[:k])
				}
			}
		}
	}()
	return c
}

func TestMoveCarriesThePortAndAnnouncesLikeQEMU(t *testing.T) {
	lab := up(t, parseTopo(t, moveLab, "roamd.yaml"), Options{RoamdBin: fakeRoamd(t)})
	// Each node runs with its own copy of the bound file.
	for _, hv := range []string{"hv1", "hv2"} {
		p, ok := lab.Node(hv).BindPath("/etc/roamd.yaml")
		if data, err := os.ReadFile(p); !ok || err != nil || string(data) != "roamd.yaml\n" || !strings.HasPrefix(p, lab.RunDir) {
			t.Errorf("%s's copy of /etc/roamd.yaml: %q in %s (%v), want the bound file inside the run directory", hv, data, p, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mac, _ := net.ParseMAC("52:54:00:10:00:10")
	seen := capture(t, lab.Node("hv2"))

	rep, err := lab.Move(ctx, Move{VM: "vm", To: "hv2", Kind: Live, Pause: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if at, _ := lab.PortLocation("vm"); at != "hv2" {
		t.Fatalf("after the move the port is on %q, want hv2", at)
	}
	if _, err := lab.Node("hv1").Handle.LinkByName("tapvm1"); err == nil {
		t.Error("tapvm1 is still on hv1")
	}
	if rep.From != "hv1" || rep.Port != "tapvm1" || !rep.Left.After(rep.Start.Add(-time.Nanosecond)) || rep.Arrived.Sub(rep.Left) < 20*time.Millisecond {
		t.Errorf("report %+v: want from hv1, port tapvm1, arrival at least the pause after leaving", rep)
	}
	if len(rep.Frames) != len(RARPSchedule) {
		t.Fatalf("sent %d frames, want %d RARPs", len(rep.Frames), len(RARPSchedule))
	}
	for i, f := range rep.Frames {
		if f.Kind != "rarp" || f.At.Sub(rep.Frames[0].At) < RARPSchedule[i] {
			t.Errorf("frame %d: %s at +%s, want a RARP no earlier than +%s", i, f.Kind, f.At.Sub(rep.Frames[0].At), RARPSchedule[i])
		}
	}
	want := frames.RARP(mac)
	for i := range RARPSchedule {
		select {
		case got := <-seen:
			if !bytes.Equal(got, want) {
				t.Errorf("hv2 received frame %d\n%x\nwant QEMU's RARP\n%x", i, got, want)
			}
		case <-ctx.Done():
			t.Fatalf("hv2 received %d of %d RARPs", i, len(RARPSchedule))
		}
	}
	// The VM kept its address through the move and reaches the port.
	if out, err := lab.Node("vm").Run(ctx, "ip", "-br", "addr", "show", "eth1"); err != nil || !strings.Contains(out, "10.10.0.10/24") {
		t.Errorf("VM lost its address: %q %v", out, err)
	}

	// A cold move announces with one gratuitous ARP after the boot delay.
	seen1 := capture(t, lab.Node("hv1"))
	rep, err = lab.Move(ctx, Move{VM: "vm", To: "hv1", Kind: Cold, Pause: 50 * time.Millisecond, Boot: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Frames) != 1 || rep.Frames[0].Kind != "garp" || rep.Frames[0].At.Sub(rep.Arrived) < 30*time.Millisecond {
		t.Fatalf("cold move sent %+v, want one gratuitous ARP after the boot delay", rep.Frames)
	}
	select {
	case got := <-seen1:
		if wantG := frames.GratuitousARP(mac, mustAddr("10.10.0.10")); !bytes.Equal(got, wantG) {
			t.Errorf("hv1 received\n%x\nwant a gratuitous ARP\n%x", got, wantG)
		}
	case <-ctx.Done():
		t.Fatal("hv1 received no gratuitous ARP")
	}
	if _, err := lab.Move(ctx, Move{VM: "vm", To: "hv1"}); err == nil {
		t.Error("moving the VM to where it is succeeded")
	}
}

// BenchmarkPortMove measures the move's plumbing alone: the port leaving one
// hypervisor namespace and coming up in the other (two LinkSetNsFd and a
// LinkSetUp), with nothing watching the ports.
func BenchmarkPortMove(b *testing.B) {
	nstest.RequireRoot(b)
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "roamd.yaml"), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	roamd := filepath.Join(dir, "roamd")
	if err := os.WriteFile(roamd, []byte("#!/bin/sh\nexec sleep 3600\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	topo, err := clab.Parse([]byte(moveLab), dir)
	if err != nil {
		b.Fatal(err)
	}
	lab, err := Up(context.Background(), topo, Options{RoamdBin: roamd})
	if err != nil {
		b.Fatal(err)
	}
	defer lab.Close()
	hv := []string{"hv2", "hv1"}
	for i := 0; b.Loop(); i++ {
		if _, _, err := lab.Unplug("vm"); err != nil {
			b.Fatal(err)
		}
		if _, err := lab.Plug("vm", hv[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}
