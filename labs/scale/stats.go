package scale

import (
	"fmt"
	"slices"
	"time"
)

// Summary is the distribution of a set of durations.
type Summary struct {
	N                  int
	Min, P50, P99, Max time.Duration
}

// Summarize sorts ds and returns its summary; quantiles are nearest-rank.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(q float64) time.Duration {
		i := int(q*float64(len(s)) + 0.999999999) // ceil(q·n), 1-based
		return s[max(i, 1)-1]
	}
	return Summary{N: len(s), Min: s[0], P50: rank(0.50), P99: rank(0.99), Max: s[len(s)-1]}
}

func (s Summary) String() string {
	us := func(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)) }
	return fmt.Sprintf("n=%d min=%s p50=%s p99=%s max=%s", s.N, us(s.Min), us(s.P50), us(s.P99), us(s.Max))
}
