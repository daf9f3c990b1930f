package twosite

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nslab/probe"
)

const us = time.Microsecond

// liveMove builds a live move hv1 → hv2 as the runner and roamd would
// record it: the port leaves at 15 ms, is parked for pause, is up with
// carrier 20 ms after the pause, the VM sends QEMU's five RARPs at once,
// and roamd reads the one at claimRARP (0-based) 80 µs after it was sent.
func liveMove(t0 time.Time, pause time.Duration, claimRARP int) *MoveResult {
	left := t0.Add(15 * time.Millisecond)
	carrier := left.Add(pause + 20*time.Millisecond)
	rep := &nslab.MoveReport{
		Move:  nslab.Move{VM: VM, To: HV2, Kind: nslab.Live, Pause: pause},
		From:  HV1,
		Start: t0, Left: left, Arrived: carrier.Add(-100 * us), CarrierUp: carrier,
	}
	for _, at := range nslab.RARPSchedule {
		rep.Frames = append(rep.Frames, nslab.SentFrame{Kind: "rarp", At: carrier.Add(at)})
	}
	seen := rep.Frames[claimRARP].At.Add(80 * us)
	announced := seen.Add(300 * us)
	firstLoss := 300 * us
	repliesAgain := announced.Add(90 * time.Millisecond)
	return &MoveResult{
		Report: rep,
		Probe: probe.Stats{
			Sent: 1000, Lost: 400, LongestLossRun: 400, Outage: 400 * time.Millisecond,
			FirstLoss: firstLoss, Gap: repliesAgain.Sub(t0.Add(firstLoss)),
		},
		// As parsed from roamctl's JSON: no monotonic clock reading.
		Arrival: &nslab.RoamdMove{
			Time: seen.Round(0), Address: VMAddr.String(), Direction: "arrived", From: "192.0.2.11",
			Source: "rarp", DetectToRouteUS: 150, DetectToAnnounceUS: 300, OldWithdrawnUS: 30000,
		},
		LeafRoutes: []RouteChange{
			{Node: Leaf1, At: t0.Add(70 * time.Millisecond)}, // the old site's withdrawal
			{Node: Leaf2, At: announced.Add(40 * time.Millisecond), Via: Uplink[HV2]},
			{Node: Leaf1, At: announced.Add(89 * time.Millisecond), Via: InterLeaf[Leaf2]},
		},
	}
}

func TestAccountSplitsTheGap(t *testing.T) {
	t0 := time.Now()
	r := liveMove(t0, 100*time.Millisecond, 1)
	got := AccountFor(r)
	want := Account{
		From: HV1, To: HV2, Kind: nslab.Live,
		Lost: 400, Outage: 400 * time.Millisecond, Gap: r.Probe.Gap, Recovered: true,
		Pause:    100 * time.Millisecond,
		Plumbing: 35*time.Millisecond - 300*us, // port up with carrier at 135 ms, first loss at 0.3 ms
		Unplug:   15 * time.Millisecond, Plug: 20 * time.Millisecond,
		VM:         0,
		Missed:     50 * time.Millisecond, // roamd claimed on QEMU's second RARP
		ClaimFrame: "rarp 2/5",
		Delivery:   80 * us,
		Roamd:      300 * us, RoamdRoute: 150 * us, RoamdSpeaker: 300 * us,
		Fabric:     90 * time.Millisecond,
		LeafSwitch: 89 * time.Millisecond, // leaf2 moved first, leaf1 last
		OldGone:    30 * time.Millisecond,
		Complete:   true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AccountFor (-want +got):\n%s", diff)
	}
	sum := got.Pause + got.Plumbing + got.VM + got.Missed + got.Delivery + got.Roamd + got.Fabric
	if sum != got.Gap {
		t.Errorf("the parts add up to %s, the gap is %s", sum, got.Gap)
	}
}

func TestAccountEndsRoamdsShareWithTheUpdate(t *testing.T) {
	t0 := time.Now()
	r := liveMove(t0, 0, 0)
	seen := r.Arrival.Time
	r.Updates = []SentUpdate{
		{Node: HV1, At: seen.Add(-time.Second)},       // an older UPDATE of the old site
		{Node: HV2, At: seen.Add(1500 * us).Round(0)}, // roamd's, as the kernel stamped it
		{Node: HV2, At: seen.Add(9 * time.Millisecond)},
	}
	got := AccountFor(r)
	if !got.UpdateSeen || got.Roamd != 1500*us || got.RoamdSpeaker != 300*us {
		t.Errorf("roamd's share %s (UPDATE seen %v), handed to GoBGP after %s; want 1.5ms up to the UPDATE, 300µs to GoBGP",
			got.Roamd, got.UpdateSeen, got.RoamdSpeaker)
	}
	if want := 90*time.Millisecond - 1200*us; got.Fabric != want {
		t.Errorf("fabric %s, want %s (from the UPDATE on)", got.Fabric, want)
	}
	if sum := got.Pause + got.Plumbing + got.VM + got.Missed + got.Delivery + got.Roamd + got.Fabric; sum != got.Gap {
		t.Errorf("the parts add up to %s, the gap is %s", sum, got.Gap)
	}
}

// update builds a BGP UPDATE announcing prefixes (IPv4, no ADD-PATH) with
// a few attributes, as a hypervisor sends it.
func update(prefixes ...netip.Prefix) []byte {
	attrs := []byte{0x40, 1, 1, 0, 0x40, 3, 4, 198, 51, 100, 5} // ORIGIN, NEXT_HOP
	var nlri []byte
	for _, p := range prefixes {
		nlri = append(nlri, byte(p.Bits()))
		nlri = append(nlri, p.Addr().AsSlice()[:(p.Bits()+7)/8]...)
	}
	body := append([]byte{0, 0, 0, byte(len(attrs))}, attrs...)
	body = append(body, nlri...)
	msg := bytes.Repeat([]byte{0xff}, 16)
	msg = append(msg, byte((19+len(body))>>8), byte(19+len(body)), 2)
	return append(msg, body...)
}

func TestAnnouncesVM(t *testing.T) {
	keepalive := append(bytes.Repeat([]byte{0xff}, 16), 0, 19, 4)
	other := netip.MustParsePrefix("10.10.0.11/32")
	for _, tc := range []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"the VM's /32", update(VMRoute), true},
		{"after a keepalive in the same segment", append(keepalive, update(other, VMRoute)...), true},
		{"another host", update(other), false},
		{"the VM's /24", update(netip.MustParsePrefix("10.10.0.0/24")), false},
		{"a keepalive", keepalive, false},
		{"a segment starting mid-message", update(VMRoute)[5:], false},
		{"truncated", update(VMRoute)[:30], false},
	} {
		if got := announcesVM(tc.payload); got != tc.want {
			t.Errorf("%s: announcesVM = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestAccountClaimOnAFrameTheLabDidNotSend(t *testing.T) {
	r := liveMove(time.Now(), 0, 2)
	r.Arrival.Source = "arp-request"
	got := AccountFor(r)
	if got.ClaimFrame != "arp-request (not sent by the lab)" {
		t.Errorf("claimed on %q, want roamd's source marked as not sent by the lab", got.ClaimFrame)
	}
	// Everything from the VM's first RARP to roamd reading the frame it
	// claimed on counts as missed; the delivery is unknown.
	if want := 200*time.Millisecond + 80*us; got.Missed != want || got.Delivery != 0 {
		t.Errorf("missed %s, delivery %s; want %s and 0", got.Missed, got.Delivery, want)
	}
	if sum := got.Pause + got.Plumbing + got.VM + got.Missed + got.Delivery + got.Roamd + got.Fabric; sum != got.Gap {
		t.Errorf("the parts add up to %s, the gap is %s", sum, got.Gap)
	}
}

func TestAccountWithoutRoamdsRecord(t *testing.T) {
	r := liveMove(time.Now(), 0, 0)
	r.Arrival = nil
	got := AccountFor(r)
	if got.Complete || got.Missing != "roamd logged no arrival" {
		t.Errorf("complete %v, missing %q; want an incomplete account naming roamd's missing record", got.Complete, got.Missing)
	}
	var b bytes.Buffer
	PrintReport(&b, []*MoveResult{r})
	if !strings.Contains(b.String(), "move 1: no split: roamd logged no arrival") {
		t.Errorf("the report does not say why move 1 has no split:\n%s", b.String())
	}
}

func TestReportSummary(t *testing.T) {
	t0 := time.Now()
	var results []*MoveResult
	for i, lost := range []int{100, 300, 200, 500} {
		r := liveMove(t0.Add(time.Duration(i)*2*time.Second), 0, i%2)
		r.Probe.Lost = lost
		if i%2 == 1 {
			r.Report.From, r.Report.To = HV2, HV1
		}
		results = append(results, r)
	}
	var b bytes.Buffer
	PrintReport(&b, results)
	out := b.String()
	for _, want := range []string{"hv1 → hv2 (2)", "hv2 → hv1 (2)", "all (4)",
		"claimed on, hv1 → hv2: rarp 1/5 ×2", "claimed on, hv2 → hv1: rarp 2/5 ×2"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	// Median and max per direction (100, 200 | 300, 500) and over all.
	var row []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "probes" && f[1] == "lost" {
			row = f[2:]
		}
	}
	if diff := cmp.Diff([]string{"150", "200", "400", "500", "250", "500"}, row); diff != "" {
		t.Errorf("probes lost, median and max per group (-want +got):\n%s", diff)
	}
}

func TestMedianMax(t *testing.T) {
	for _, tc := range []struct {
		in          []time.Duration
		median, max time.Duration
	}{
		{[]time.Duration{3}, 3, 3},
		{[]time.Duration{5, 1, 3}, 3, 5},
		{[]time.Duration{4, 1, 3, 2}, 2, 4}, // (2+3)/2, rounded down
	} {
		med, mx := medianMax(tc.in)
		if med != tc.median || mx != tc.max {
			t.Errorf("medianMax(%v) = %v, %v; want %v, %v", tc.in, med, mx, tc.median, tc.max)
		}
	}
}

func TestPathSwitchedAt(t *testing.T) {
	t0 := time.Now()
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	for _, tc := range []struct {
		name    string
		hv      string
		changes []RouteChange
		want    time.Time // zero: not switched
	}{
		{"to hv2: leaf2 first, then leaf1", HV2, []RouteChange{
			{Node: Leaf2, At: ms(40), Via: Uplink[HV2]},
			{Node: Leaf1, At: ms(89), Via: InterLeaf[Leaf2]},
		}, ms(89)},
		{"to hv2: leaf1 first, the path waits for leaf2", HV2, []RouteChange{
			{Node: Leaf1, At: ms(20), Via: InterLeaf[Leaf2]},
			{Node: Leaf2, At: ms(35), Via: Uplink[HV2]},
		}, ms(35)},
		{"to hv1: leaf2 is not on the path", HV1, []RouteChange{
			{Node: Leaf1, At: ms(30), Via: Uplink[HV1]},
			{Node: Leaf2, At: ms(80), Via: InterLeaf[Leaf1]},
		}, ms(30)},
		{"a change before the UPDATE does not count", HV1, []RouteChange{
			{Node: Leaf1, At: ms(-5), Via: Uplink[HV1]},
		}, time.Time{}},
		{"leaf1 lost the route and never got the new one", HV2, []RouteChange{
			{Node: Leaf2, At: ms(40), Via: Uplink[HV2]},
			{Node: Leaf1, At: ms(60)},
		}, time.Time{}},
	} {
		got, ok := pathSwitchedAt(tc.changes, tc.hv, t0)
		if ok != !tc.want.IsZero() || (ok && !got.Equal(tc.want)) {
			t.Errorf("%s: switched at %v (%v), want %v", tc.name, got.Sub(t0), ok, tc.want.Sub(t0))
		}
	}
}

func TestSummariseMeasuresTheProbersStalls(t *testing.T) {
	start := time.Now()
	ms := int64(time.Millisecond)
	// Probes 0-3 on time; 4-6 sent together at 25 ms (a prober starved
	// for 20 ms catching up); 7-9 at 26-28 ms, still 18 ms behind. The
	// second move starts at 25.5 ms.
	sent := []int64{1 * ms, 2 * ms, 3 * ms, 4 * ms, 25 * ms, 25*ms + 10, 25*ms + 20, 26 * ms, 27 * ms, 28 * ms}
	rec := &probe.Result{Interval: time.Millisecond, Start: start, Sent: sent, Recv: make([]int64, len(sent))}
	results := []*MoveResult{
		{Report: &nslab.MoveReport{Start: start}},
		{Report: &nslab.MoveReport{Start: start.Add(26*time.Millisecond - 500*us)}},
	}
	rec.Recv[4], rec.Recv[5], rec.Recv[6] = -1, -1, -1 // lost: sent after a 21 ms silence
	Summarise(results, rec)
	if want := 20 * time.Millisecond; results[0].ProbeBlind != want {
		t.Errorf("first move: %s without probes before the first lost one, want %s", results[0].ProbeBlind, want)
	}
	if results[1].ProbeBlind != 0 {
		t.Errorf("second move: %s without probes before a loss, want 0: it lost none", results[1].ProbeBlind)
	}
	if want := 20 * time.Millisecond; results[0].ProbeLag != want {
		t.Errorf("first move: lag %s, want %s (probe 4 due at 5 ms, sent at 25 ms)", results[0].ProbeLag, want)
	}
	if want := 18 * time.Millisecond; results[1].ProbeLag != want {
		t.Errorf("second move: lag %s, want %s (probe 7 due at 8 ms, sent at 26 ms)", results[1].ProbeLag, want)
	}
}
