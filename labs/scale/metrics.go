package scale

import (
	"context"
	"math"

	dto "github.com/prometheus/client_model/go"

	"github.com/roamd/roamd/labs/nslab"
)

// Metrics is one scrape of a Prometheus endpoint, by metric family name.
type Metrics = nslab.Metrics

// Scrape fetches and parses http://addr/metrics from inside ns.
func Scrape(ns Namespace, addr string) (Metrics, error) {
	return nslab.Scrape(context.Background(), ns, addr)
}

// ParseMetrics parses the Prometheus text exposition format.
func ParseMetrics(text []byte) (Metrics, error) { return nslab.ParseMetrics(text) }

// Quantile estimates the q-quantile of a histogram by linear interpolation
// inside the bucket that holds it, as Prometheus' histogram_quantile does.
// It returns NaN for an empty histogram.
func Quantile(h *dto.Histogram, q float64) float64 {
	if h == nil || h.GetSampleCount() == 0 {
		return math.NaN()
	}
	rank := q * float64(h.GetSampleCount())
	lower, below := 0.0, 0.0
	for _, b := range h.GetBucket() {
		n := float64(b.GetCumulativeCount())
		if n >= rank {
			if n == below {
				return b.GetUpperBound()
			}
			return lower + (b.GetUpperBound()-lower)*(rank-below)/(n-below)
		}
		lower, below = b.GetUpperBound(), n
	}
	return math.Inf(1) // in the implicit +Inf bucket
}
