package probe

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const ms1 = int64(time.Millisecond)

// record builds a Result of probes sent every millisecond; lost lists the
// sequence numbers without a reply, late gives replies with extra delay.
func record(n int, lost map[int]bool, delay map[int]time.Duration) *Result {
	r := &Result{Interval: time.Millisecond, Start: time.Unix(1000, 0)}
	for i := 0; i < n; i++ {
		sent := int64(i+1) * ms1
		r.Sent = append(r.Sent, sent)
		switch {
		case lost[i]:
			r.Recv = append(r.Recv, notReceived)
		default:
			r.Recv = append(r.Recv, sent+100*int64(time.Microsecond)+int64(delay[i]))
		}
	}
	return r
}

func TestWindowMeasuresTheOutage(t *testing.T) {
	// Probes 100..149 lost (50 ms), 200 lost alone, 160 delayed by 30 ms.
	lost := map[int]bool{200: true}
	for i := 100; i < 150; i++ {
		lost[i] = true
	}
	r := record(400, lost, map[int]time.Duration{160: 30 * time.Millisecond})

	got := r.Window(r.Start.Add(50*time.Millisecond), r.Start.Add(300*time.Millisecond))
	want := Stats{
		Sent: 250, Received: 199, Lost: 51,
		LongestLossRun: 50,
		Outage:         50 * time.Millisecond,
		// Probe 100 left at 101 ms, the window started at 50 ms.
		FirstLoss: 51 * time.Millisecond,
		// From probe 100's send (101 ms) to probe 150's reply (151.1 ms).
		Gap:      50*time.Millisecond + 100*time.Microsecond,
		MaxDelay: 30*time.Millisecond + 100*time.Microsecond,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Window (-want +got):\n%s", diff)
	}
}

func TestWindowWithoutLoss(t *testing.T) {
	r := record(100, nil, nil)
	got := r.Window(r.Start, time.Time{})
	if got.Lost != 0 || got.Sent != 100 || got.Gap != 0 || got.Outage != 0 || got.FirstLoss != 0 {
		t.Errorf("Window over a clean record = %+v, want 100 sent, nothing lost", got)
	}
}

func TestWindowLossUntilTheEndIsNotRecovered(t *testing.T) {
	lost := map[int]bool{}
	for i := 90; i < 100; i++ {
		lost[i] = true
	}
	r := record(100, lost, nil)
	got := r.Window(r.Start, time.Time{})
	if got.Gap != -1 || got.LongestLossRun != 10 {
		t.Errorf("Window = %+v, want a 10-probe run that never recovered (gap -1)", got)
	}
	if s := got.String(); s != "sent 100, lost 10 (longest run 10 = 10.0 ms), gap not recovered, max delay 0.1 ms" {
		t.Errorf("String() = %q", s)
	}
}

func TestWindowsSplitARecordBetweenMoves(t *testing.T) {
	lost := map[int]bool{10: true, 11: true, 60: true}
	r := record(100, lost, nil)
	mid := r.Start.Add(50 * time.Millisecond)
	a, b := r.Window(r.Start, mid), r.Window(mid, time.Time{})
	if a.Sent+b.Sent != 100 || a.Lost != 2 || b.Lost != 1 {
		t.Errorf("windows %+v and %+v: want every probe in exactly one, losses 2 and 1", a, b)
	}
	if total := r.Total(); total.Lost != 3 || total.Sent != 100 {
		t.Errorf("Total = %+v, want 3 of 100 lost", total)
	}
}
