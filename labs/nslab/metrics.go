package nslab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Namespace runs functions inside a network namespace (Node and
// nstest.NS both do).
type Namespace interface {
	Do(fn func() error) error
}

// HTTPGet fetches url from inside the namespace (roamd's metrics listen on
// the namespace's loopback): the connection is opened on a thread in the
// namespace, then used from here.
func HTTPGet(ctx context.Context, ns Namespace, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	var conn net.Conn
	if err := ns.Do(func() error {
		d := net.Dialer{Timeout: 5 * time.Second}
		var err error
		conn, err = d.DialContext(ctx, "tcp", req.URL.Host)
		return err
	}); err != nil {
		return nil, fmt.Errorf("connecting to %s in its namespace: %w", req.URL.Host, err)
	}
	tr := &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil },
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// Metrics is one scrape of a Prometheus endpoint, by metric family name.
type Metrics map[string]*dto.MetricFamily

// Scrape fetches and parses http://addr/metrics from inside ns.
func Scrape(ctx context.Context, ns Namespace, addr string) (Metrics, error) {
	body, err := HTTPGet(ctx, ns, "http://"+addr+"/metrics")
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
