package faults

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
	// The connection must be made from inside the namespace; once made, it
	// stays there.
	var conn net.Conn
	err := n.Do(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "tcp", MetricsAddr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to roamd's metrics on %s: %w", hv, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+MetricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	req.Close = true
	if err := req.Write(conn); err != nil {
		return nil, fmt.Errorf("asking roamd on %s for metrics: %w", hv, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, fmt.Errorf("reading roamd's metrics on %s: %w", hv, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("roamd's metrics on %s: %s", hv, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing roamd's metrics on %s: %w", hv, err)
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
