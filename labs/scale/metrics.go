package scale

import (
	"bytes"
	"fmt"
	"math"
	"slices"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one scrape of a Prometheus endpoint, by metric family name.
type Metrics map[string]*dto.MetricFamily

// Scrape fetches and parses http://addr/metrics from inside ns.
func Scrape(ns Namespace, addr string) (Metrics, error) {
	body, err := HTTPGet(ns, "http://"+addr+"/metrics")
	if err != nil {
		return nil, err
	}
	return ParseMetrics(body)
}

// ParseMetrics parses the Prometheus text exposition format.
func ParseMetrics(text []byte) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	return Metrics(fams), nil
}

// find returns the sample of family name whose labels include every
// name=value pair given (as alternating strings).
func (m Metrics) find(name string, labels ...string) (*dto.Metric, bool) {
	f, ok := m[name]
	if !ok {
		return nil, false
	}
	for _, s := range f.GetMetric() {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !slices.ContainsFunc(s.GetLabel(), func(l *dto.LabelPair) bool {
				return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}) {
				match = false
				break
			}
		}
		if match {
			return s, true
		}
	}
	return nil, false
}

// Value returns a counter's or gauge's value (ok false when absent).
func (m Metrics) Value(name string, labels ...string) (float64, bool) {
	s, ok := m.find(name, labels...)
	if !ok {
		return 0, false
	}
	switch {
	case s.GetCounter() != nil:
		return s.GetCounter().GetValue(), true
	case s.GetGauge() != nil:
		return s.GetGauge().GetValue(), true
	case s.GetUntyped() != nil:
		return s.GetUntyped().GetValue(), true
	}
	return 0, false
}

// Histogram returns a histogram sample (nil when absent).
func (m Metrics) Histogram(name string, labels ...string) *dto.Histogram {
	s, ok := m.find(name, labels...)
	if !ok {
		return nil
	}
	return s.GetHistogram()
}

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
