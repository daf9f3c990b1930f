package qemumigration

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/roamd/roamd/labs/nslab/probe"
	"github.com/roamd/roamd/labs/qemu-migration/qemu"
)

// record is a probe record of n probes one millisecond apart, the listed
// ones lost.
func record(start time.Time, n int, lost ...int) *probe.Result {
	r := &probe.Result{Interval: time.Millisecond, Start: start}
	for i := range n {
		sent := int64(i+1) * int64(time.Millisecond)
		r.Sent = append(r.Sent, sent)
		r.Recv = append(r.Recv, sent+int64(200*time.Microsecond))
	}
	for _, i := range lost {
		r.Recv[i] = -1
	}
	return r
}

// Two migrations in one record: each gets the probes from its start to the
// next one's, its runs of losses, and the losses after its switch.
func TestSummarise(t *testing.T) {
	start := time.Unix(1000, 0)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	// Probe i is sent at i+1 ms. Migration 1 from 100 ms (switch at 150),
	// migration 2 from 500 ms (no switch).
	rec := record(start, 1000, 148, 149, 150, 152, 600, 601, 602, 603)
	ms := []*Migration{
		{Seq: 1, Start: at(100), Switched: at(150), LostAfterSwitch: -1},
		{Seq: 2, Start: at(500), LostAfterSwitch: -1},
	}
	Summarise(ms, rec)
	if ms[0].Probe.Lost != 4 || ms[1].Probe.Lost != 4 {
		t.Errorf("lost %d and %d, want 4 and 4", ms[0].Probe.Lost, ms[1].Probe.Lost)
	}
	// Probes 149, 150 and 152 left at 150, 151 and 153 ms: at or after the
	// switch; 148 left before it.
	if ms[0].LostAfterSwitch != 3 || ms[1].LostAfterSwitch != -1 {
		t.Errorf("lost after the switch %d and %d, want 3 and -1 (no switch)", ms[0].LostAfterSwitch, ms[1].LostAfterSwitch)
	}
	want := []LossRun{{First: at(149), Count: 3}, {First: at(153), Count: 1}}
	if diff := cmp.Diff(want, ms[0].LossRuns); diff != "" {
		t.Errorf("loss runs (-want +got):\n%s", diff)
	}
}

func TestSummariesAndTable(t *testing.T) {
	mig := func(strategy string, lost int, downtimeMS int64, tcpErr error) *Migration {
		return &Migration{
			Strategy:        strategy,
			QEMU:            &qemu.Report{Info: qemu.Info{DowntimeMS: downtimeMS, TotalTimeMS: 100}},
			Probe:           probe.Stats{Lost: lost, MaxDelay: time.Duration(lost) * time.Millisecond},
			LostAfterSwitch: -1,
			TCPRTT:          time.Millisecond,
			TCPErr:          tcpErr,
		}
	}
	sw := func(lost, after int) *Migration {
		m := mig("switch", lost, 10, nil)
		m.LostAfterSwitch = after
		return m
	}
	ms := []*Migration{
		sw(2, 0), mig("rarp", 40, 30, nil), sw(3, 1), mig("rarp", 20, 50, errors.New("connection reset")), sw(1, 0), mig("rarp", 90, 40, nil),
	}
	got := Summaries(ms)
	want := []Summary{
		{Strategy: "switch", N: 3, LostMedian: 2, LostMax: 3, LostAfterSwitchMax: 1, HasSwitch: true,
			DowntimeMedian: 10 * time.Millisecond, DowntimeMax: 10 * time.Millisecond,
			MaxDelayMedian: 2 * time.Millisecond, MaxDelayMax: 3 * time.Millisecond, TotalMedian: 100 * time.Millisecond, TCPOK: 3},
		{Strategy: "rarp", N: 3, LostMedian: 40, LostMax: 90, LostAfterSwitchMax: -1,
			DowntimeMedian: 40 * time.Millisecond, DowntimeMax: 50 * time.Millisecond,
			MaxDelayMedian: 40 * time.Millisecond, MaxDelayMax: 90 * time.Millisecond, TotalMedian: 100 * time.Millisecond, TCPOK: 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Summaries (-want +got):\n%s", diff)
	}
	var b bytes.Buffer
	PrintTable(&b, ms, time.Millisecond)
	lines := strings.Split(b.String(), "\n")
	if !strings.Contains(lines[1], "switch") || !strings.Contains(lines[1], "3/3 ok") || !strings.Contains(lines[2], "2/3 ok") {
		t.Errorf("table:\n%s", b.String())
	}
}

type earlyQuitting struct{ RARPOnly }

func (earlyQuitting) QuitSourceEarly() bool { return true }

// A renamed strategy keeps its name apart and its optional behaviour.
func TestRenamedKeepsOptionalInterfaces(t *testing.T) {
	r := Renamed(earlyQuitting{}, "rarp, BIRD leaves")
	if r.Name() != "rarp, BIRD leaves" || r.PauseBeforeSwitchover() {
		t.Errorf("renamed strategy %q pauses %v", r.Name(), r.PauseBeforeSwitchover())
	}
	if eq, ok := r.(EarlyQuitter); !ok || !eq.QuitSourceEarly() {
		t.Error("the renamed strategy lost QuitSourceEarly")
	}
	if eq, ok := Renamed(ByHand{}, "x").(EarlyQuitter); ok && eq.QuitSourceEarly() {
		t.Error("a renamed ByHand asks for an early quit")
	}
}
