package probe

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Result is everything a Prober recorded. Times are nanoseconds after Start.
type Result struct {
	Interval time.Duration
	Start    time.Time
	// Sent[i] is when probe i left; Recv[i] when its reply came back, or -1.
	Sent, Recv []int64
	Duplicates int
	// SendErrors counts probes the kernel refused to send (no route).
	SendErrors int
}

// Stats describe the probes sent within one window (one move).
type Stats struct {
	Sent, Received, Lost int
	// LongestLossRun is the longest run of consecutive lost probes.
	LongestLossRun int
	// Outage is LongestLossRun × the probe interval.
	Outage time.Duration
	// FirstLoss is when the first lost probe was sent, after the window's
	// start; zero when nothing was lost.
	FirstLoss time.Duration
	// Gap is from sending the first lost probe to receiving the first reply
	// to a later probe: the time the VM could not be reached. Zero when
	// nothing was lost; -1 when no later reply came.
	Gap time.Duration
	// MaxDelay is the longest round trip among the replies that came:
	// delayed, not lost.
	MaxDelay time.Duration
}

// Window returns the statistics of the probes sent in [from, to). A zero
// to means up to the last probe.
func (r *Result) Window(from, to time.Time) Stats {
	lo, hi := r.Bounds(from, to)
	i0 := sort.Search(len(r.Sent), func(i int) bool { return r.Sent[i] >= lo })
	i1 := sort.Search(len(r.Sent), func(i int) bool { return r.Sent[i] >= hi })
	return r.stats(i0, i1, lo)
}

// Bounds converts [from, to) into send times (ns after Start, as in Sent);
// a zero to means up to the last probe.
func (r *Result) Bounds(from, to time.Time) (lo, hi int64) {
	lo, hi = from.Sub(r.Start).Nanoseconds(), math.MaxInt64
	if !to.IsZero() {
		hi = to.Sub(r.Start).Nanoseconds()
	}
	return lo, hi
}

func (r *Result) stats(i0, i1 int, windowStart int64) Stats {
	var s Stats
	run, firstLost := 0, -1
	for i := i0; i < i1; i++ {
		s.Sent++
		if r.Recv[i] < 0 {
			s.Lost++
			run++
			s.LongestLossRun = max(s.LongestLossRun, run)
			if firstLost < 0 {
				firstLost = i
			}
			continue
		}
		run = 0
		s.Received++
		s.MaxDelay = max(s.MaxDelay, time.Duration(r.Recv[i]-r.Sent[i]))
	}
	s.Outage = time.Duration(s.LongestLossRun) * r.Interval
	if firstLost >= 0 {
		s.FirstLoss = time.Duration(r.Sent[firstLost] - windowStart)
		s.Gap = -1
		for j := firstLost + 1; j < len(r.Sent); j++ {
			if r.Recv[j] >= 0 {
				s.Gap = time.Duration(r.Recv[j] - r.Sent[firstLost])
				break
			}
		}
	}
	return s
}

// Total returns the statistics of every probe.
func (r *Result) Total() Stats { return r.stats(0, len(r.Sent), 0) }

func (s Stats) String() string {
	gap := "-"
	switch {
	case s.Gap > 0:
		gap = ms(s.Gap)
	case s.Gap < 0:
		gap = "not recovered"
	}
	return fmt.Sprintf("sent %d, lost %d (longest run %d = %s), gap %s, max delay %s",
		s.Sent, s.Lost, s.LongestLossRun, ms(s.Outage), gap, ms(s.MaxDelay))
}

// ms formats a duration in milliseconds with one decimal.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
