package movebench

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/roamd/roamd/labs/nslab/probe"
)

func strategies(t *testing.T, names ...string) []Strategy {
	t.Helper()
	var ss []Strategy
	for _, n := range names {
		s, err := StrategyByName(n)
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	return ss
}

func TestSummarise(t *testing.T) {
	ss := strategies(t, "switchover", "l2")
	recs := []Record{
		{Leaves: LeavesFRR, Strategy: "switchover", Lost: 2, DowntimeMS: 20, PauseMS: 30, MaxDelayPausedMS: 31, LostAfterSwitch: 0, TCPSurvived: true},
		{Leaves: LeavesFRR, Strategy: "switchover", Lost: 60, DowntimeMS: 10, PauseMS: 15, MaxDelayPausedMS: 16, LostAfterSwitch: 57, TCPSurvived: true},
		{Leaves: LeavesFRR, Strategy: "switchover", Lost: 4, DowntimeMS: 40, PauseMS: 50, MaxDelayPausedMS: 52, LostAfterSwitch: 1, TCPSurvived: false},
		{Leaves: LeavesFRR, Strategy: "switchover", Error: "migration timed out"},
		{Leaves: LeavesBIRD, Strategy: "l2", Lost: 32, DowntimeMS: 25, PauseMS: 30, MaxDelayPausedMS: 3, LostAfterSwitch: -1, TCPSurvived: true},
		{Leaves: LeavesBIRD, Strategy: "l2", Lost: 22, DowntimeMS: 15, PauseMS: 20, MaxDelayPausedMS: 4, LostAfterSwitch: -1, TCPSurvived: true},
		{Leaves: LeavesFRR, Strategy: "diy", Lost: 999}, // not asked for
	}
	got := Summarise(recs, ss, AllLeaves, time.Millisecond)
	want := []Row{
		{Strategy: ss[0], Leaves: LeavesFRR, N: 3, Failed: 1, LostMedian: 4, LostMax: 60, DowntimeMedian: 20, PauseMedian: 30,
			RestMedian: -28, RestMax: 45, MaxDelayMedian: 31, MaxDelayMax: 52, LostAfterSwitchMax: 57, TCPSurvived: 2},
		{Strategy: ss[1], Leaves: LeavesBIRD, N: 2, LostMedian: 27, LostMax: 32, DowntimeMedian: 20, PauseMedian: 25,
			RestMedian: 2, RestMax: 2, MaxDelayMedian: 3.5, MaxDelayMax: 4, LostAfterSwitchMax: -1, TCPSurvived: 2},
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b Strategy) bool { return a.Name == b.Name })); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
	if got := msText(-0.4); got != "0 ms" {
		t.Errorf("msText(-0.4) = %q, want 0 ms", got)
	}
	var b strings.Builder
	PrintTable(&b, got, time.Millisecond)
	for _, s := range []string{"(a) roamd, lossless switchover", "max 57", "2/4", "(c) stretched L2", "2/2"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
}

func TestLossRuns(t *testing.T) {
	start := time.Now()
	ms := int64(time.Millisecond)
	// Probes every ms from 0; 3..5 and 8 lost, 1 lost too but before the
	// migration started (at 2 ms); 9 was answered 40 ms late.
	res := &probe.Result{Interval: time.Millisecond, Start: start}
	for i := int64(0); i < 10; i++ {
		res.Sent = append(res.Sent, i*ms)
		recv := i*ms + ms/2
		switch i {
		case 1, 3, 4, 5, 8:
			recv = -1
		case 9:
			recv = i*ms + 40*ms
		}
		res.Recv = append(res.Recv, recv)
	}
	from := start.Add(2 * time.Millisecond)
	got := lossRuns(res, from)
	want := []LossRun{{FromMS: 1, ToMS: 3, Count: 3}, {FromMS: 6, ToMS: 6, Count: 1}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("loss runs (-want +got)\n%s", d)
	}
	if at := slowestAt(res, from); at != 7 {
		t.Errorf("slowest reply's probe sent at %v ms, want 7", at)
	}
}

func TestRecordsAreWrittenAsTheyCome(t *testing.T) {
	dir := t.TempDir()
	s, err := newSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	claim := -2.5
	recs := []Record{
		{Leaves: LeavesBIRD, Strategy: "switchover", Round: 1, Seq: 1, From: HV1, To: HV2, Lost: 2, ClaimAfterResumeMS: &claim, TCPSurvived: true, Notes: []string{"a", "b"}},
		{Leaves: LeavesBIRD, Strategy: "evpn", Round: 1, Seq: 1, From: HV1, To: HV2, Error: "boom, with a comma"},
	}
	for _, r := range recs {
		if err := s.add(r); err != nil {
			t.Fatal(err)
		}
	}
	// The CSV is complete before the end of the run.
	f, err := os.Open(filepath.Join(dir, RecordsCSV))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || len(rows[1]) != len(csvHeader) {
		t.Fatalf("CSV rows %v, want a header and two records of %d columns", rows, len(csvHeader))
	}
	col := func(row int, name string) string {
		for i, h := range csvHeader {
			if h == name {
				return rows[row][i]
			}
		}
		t.Fatalf("no column %s", name)
		return ""
	}
	if col(1, "claim_after_resume_ms") != "-2.500" || col(1, "notes") != "a; b" || col(2, "error") != "boom, with a comma" || col(2, "claim_after_resume_ms") != "" {
		t.Errorf("CSV rows %q", rows[1:])
	}
	if err := s.writeJSON(recs); err != nil {
		t.Fatal(err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, RecordsJSON))
	if err != nil {
		t.Fatal(err)
	}
	var back []Record
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(recs, back); d != "" {
		t.Errorf("JSON round trip (-want +got)\n%s", d)
	}
}

// Each strategy migrates first in the same number of rounds as any other
// strategy of its fabric: with two per lab, that is how often it takes the
// guest from hv1 to hv2 rather than back.
func TestRoundOrderBalancesDirections(t *testing.T) {
	ss := strategies(t, "switchover", "rarp", "l2", "diy", "evpn", "byhand")
	const rounds = 12
	first := map[string]int{}
	for r := 1; r <= rounds; r++ {
		order := roundOrder(ss, r)
		if len(order) != len(ss) {
			t.Fatalf("round %d: %d strategies, want %d", r, len(order), len(ss))
		}
		seen := map[string]bool{}
		for _, s := range order {
			if seen[s.Name] {
				t.Fatalf("round %d: %s twice in %v", r, s.Name, order)
			}
			seen[s.Name] = true
		}
		for _, s := range order {
			if s.Fabric == FabricRoamd {
				first[s.Name]++
				break
			}
		}
	}
	// Three strategies on the roamd fabric: each leads a third of the
	// rounds; with two, half.
	for _, name := range []string{"switchover", "rarp", "byhand"} {
		if first[name] != rounds/3 {
			t.Errorf("%s first among the roamd strategies in %d of %d rounds: %v", name, first[name], rounds, first)
		}
	}
	two := strategies(t, "switchover", "rarp", "l2")
	first = map[string]int{}
	for r := 1; r <= 10; r++ {
		for _, s := range roundOrder(two, r) {
			if s.Fabric == FabricRoamd {
				first[s.Name]++
				break
			}
		}
	}
	if first["switchover"] != 5 || first["rarp"] != 5 {
		t.Errorf("first of the roamd pair in 10 rounds: %v, want 5 each", first)
	}
}
