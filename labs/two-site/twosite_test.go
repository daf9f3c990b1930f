package twosite

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/roamd/roamd/labs/labtest"
	"github.com/roamd/roamd/labs/nslab"
)

// End-to-end tests: the whole lab with real FRR leaves and real roamd
// hypervisors, one lab per test, always torn down. They need root.

func TestMain(m *testing.M) { labtest.Main(m) }

// startLab brings the lab up with the VM placed on hv1 and probe traffic
// flowing, and tears it all down when the test ends (printing the daemons'
// logs if it failed).
func startLab(t *testing.T) (*nslab.Lab, *Traffic) {
	t.Helper()
	opts := labtest.Options(t, slog.LevelInfo)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lab := labtest.Up(t, ctx, opts, 60, Up)
	hv, err := PlaceVM(ctx, lab)
	if err != nil {
		t.Fatal(err)
	}
	if hv != HV1 {
		t.Fatalf("the VM starts on %s, want hv1", hv)
	}
	traffic, err := StartTraffic(ctx, lab, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { traffic.Close() })
	return lab, traffic
}

// checkPath runs traceroute from node to dst (until every hop answers) and
// checks the nodes it passes through, in order; avoid is the VM's old
// hypervisor, which a trombone would pass through.
func checkPath(t *testing.T, ctx context.Context, lab *nslab.Lab, from string, dst netip.Addr, want []string, avoid string) {
	t.Helper()
	var got []string
	err := nslab.Poll(ctx, fmt.Sprintf("traceroute %s → %s through %v", from, dst, want), func(ctx context.Context) (bool, string, error) {
		hops, err := lab.Traceroute(ctx, from, dst)
		if err != nil {
			return false, "", err
		}
		got = got[:0]
		for _, h := range hops {
			if !h.IsValid() {
				return false, fmt.Sprintf("hops %v (one did not answer)", hops), nil
			}
			owners, err := lab.NodesOwning(h)
			if err != nil {
				return false, "", err
			}
			if len(owners) != 1 {
				return false, "", nslab.Abort(fmt.Errorf("hop %s belongs to %v: cannot tell which node answered", h, owners))
			}
			got = append(got, owners[0])
		}
		return slices.Equal(got, want), fmt.Sprintf("hops %v = %v", hops, got), nil
	})
	if slices.Contains(got, avoid) {
		t.Errorf("traceroute %s → %s passes through %s, the VM's old hypervisor (a trombone): %v", from, dst, avoid, got)
	} else if err != nil {
		t.Error(err)
	}
}

// Paths between the client and the VM on each hypervisor.
var (
	pathToVM = map[string][]string{
		HV1: {Leaf1, HV1, VM},
		HV2: {Leaf1, Leaf2, HV2, VM},
	}
	pathFromVM = map[string][]string{
		HV1: {HV1, Leaf1, Client},
		HV2: {HV2, Leaf2, Leaf1, Client},
	}
)

// checkAt checks everything that says the VM runs on hv after a move from
// the other hypervisor: roamd states, kernel routes, BGP paths and the data
// path both ways.
func checkAt(t *testing.T, ctx context.Context, lab *nslab.Lab, hv string) {
	t.Helper()
	old := Other(hv)
	// WaitVMAt checked both leaves' routes and that the old hypervisor's
	// leaf holds no path from it; the new leaf must not either.
	if err := lab.WaitNoPathFrom(ctx, LeafOf[hv], VMRoute, Uplink[old]); err != nil {
		t.Error(err)
	}
	if h, err := lab.WaitRoamdHost(ctx, hv, VMAddr, "announced"); err != nil {
		t.Error(err)
	} else {
		t.Logf("roamd on %s: %s %s on %s, sequence %d", hv, h.Address, h.State, h.Port, h.Sequence)
	}
	if m, err := arrivalOf(ctx, lab, hv, VMAddr); err != nil {
		t.Error(err)
	} else {
		t.Logf("roamd on %s: arrival from %s via %s, frame→route %d µs, frame→announce %d µs, old site withdrawn %d µs later",
			hv, m.From, m.Source, m.DetectToRouteUS, m.DetectToAnnounceUS, m.OldWithdrawnUS)
	}
	if err := lab.WaitNoRoamdRoute(ctx, old, VMAddr); err != nil {
		t.Error(err)
	}
	checkNotAnnounced(t, ctx, lab, old, VMAddr, hv)
	checkPath(t, ctx, lab, Client, VMAddr, pathToVM[hv], old)
	checkPath(t, ctx, lab, VM, ClientAddr, pathFromVM[hv], old)
}

// checkNotAnnounced checks that roamd on old no longer announces addr, now
// that the VM runs on hv.
func checkNotAnnounced(t *testing.T, ctx context.Context, lab *nslab.Lab, old string, addr netip.Addr, hv string) {
	t.Helper()
	hs, err := lab.RoamdHosts(ctx, old)
	if err != nil {
		t.Error(err)
		return
	}
	for _, h := range hs {
		if h.Address == addr && h.State == "announced" {
			t.Errorf("roamd on %s still announces %s after the VM moved to %s", old, addr, hv)
		}
	}
}

func TestLiveMoveRARPOnly(t *testing.T) {
	lab, traffic := startLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var results []*MoveResult
	for _, to := range []string{HV2, HV1} {
		r, err := MoveVM(ctx, lab, traffic, nslab.Move{To: to, Kind: nslab.Live})
		results = append(results, r)
		if err != nil {
			t.Fatal(err)
		}
		if r.TCPErr != nil {
			t.Errorf("the TCP session opened before the moves failed after moving to %s: %v", to, r.TCPErr)
		}
		checkAt(t, ctx, lab, to)
		if t.Failed() {
			break
		}
	}
	Summarise(results, traffic.Close())
	var b bytes.Buffer
	PrintReport(&b, results)
	t.Log("\n" + b.String())
	for i, r := range results {
		if r.Probe.Sent == 0 || r.Probe.Gap < 0 {
			t.Errorf("move %d: probes %s: replies never came back", i+1, r.Probe)
		}
	}
}

func TestColdMove(t *testing.T) {
	lab, traffic := startLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// While the VM is down, hv1 (whose port went away) withdraws: no leaf
	// routes to the VM any more.
	withdrawn := func(ctx context.Context) error {
		for _, leaf := range []string{Leaf1, Leaf2} {
			if err := lab.WaitNoRoute(ctx, leaf, VMRoute); err != nil {
				return fmt.Errorf("hv1 did not withdraw the VM when its port went away: %w", err)
			}
		}
		return nil
	}
	r, err := MoveVM(ctx, lab, traffic, nslab.Move{To: HV2, Kind: nslab.Cold, Pause: 2 * time.Second, Boot: 300 * time.Millisecond, Away: withdrawn})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Report.Frames) != 1 || r.Report.Frames[0].Kind != "garp" {
		t.Fatalf("the VM announced itself with %+v, want one gratuitous ARP", r.Report.Frames)
	}
	if _, err := lab.WaitRoamdHost(ctx, HV2, VMAddr, "announced"); err != nil {
		t.Error(err)
	}
	if m, err := arrivalOf(ctx, lab, HV2, VMAddr); err != nil {
		t.Error(err)
	} else if m.Source != "garp" {
		t.Errorf("hv2 claimed the VM on %q, want its gratuitous ARP", m.Source)
	}
	if err := lab.WaitNoRoamdRoute(ctx, HV1, VMAddr); err != nil {
		t.Error(err)
	}
	if r.TCPErr != nil {
		t.Errorf("TCP after the cold move: %v", r.TCPErr)
	}
	Summarise([]*MoveResult{r}, traffic.Close())
	var b bytes.Buffer
	PrintReport(&b, []*MoveResult{r})
	t.Log("\n" + b.String())
}
