package faults

import (
	"context"
	"fmt"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/roamd/roamd/labs/nslab"
)

// MetricsAddr is where roamd serves its metrics inside each hypervisor's
// namespace (metrics.listen in hv1/roamd.yaml and hv2/roamd.yaml).
const MetricsAddr = "127.0.0.1:9477"

// Metrics reads roamd's metrics on a hypervisor.
func (l *Lab) Metrics(ctx context.Context, hv string) (map[string]*dto.MetricFamily, error) {
	n := l.Node(hv)
	if n == nil {
		return nil, fmt.Errorf("no node %q", hv)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	mfs, err := nslab.Scrape(ctx, n, MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("roamd's metrics on %s: %w", hv, err)
	}
	return mfs, nil
}

// Counter returns the value of the counter name whose labels include every
// label given ("reason=gateway-address"), summed over the matching series.
func Counter(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
	sum := 0.0
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		match := true
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if have[k] != v {
				match = false
			}
		}
		if match {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// RefusedMetric is roamd's counter of refused claims, labelled by reason.
const RefusedMetric = "roamd_claims_refused_total"
