package main

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/roamd/roamd/labs/scale"
)

// TestMetricsAfterAMove scrapes roamd's Prometheus endpoint, inside its
// namespace, after a VM moved in from hv2 and another claim was refused:
// what a dashboard plots must be there at the next scrape, without waiting
// for a reconcile (the site's reconcile period is the default 30 s).
func TestMetricsAfterAMove(t *testing.T) {
	s := startSite(t, siteConfig)
	s.arrive(t)
	// The VM claims an address outside the mobility prefixes: refused.
	s.garp(t, vm1, netip.MustParseAddr("10.99.0.5"))

	type check struct {
		what string
		ok   func(scale.Metrics) (string, bool)
	}
	value := func(want float64, name string, labels ...string) check {
		return check{fmt.Sprintf("%s%v = %v", name, labels, want), func(m scale.Metrics) (string, bool) {
			v, ok := m.Value(name, labels...)
			return fmt.Sprintf("%v (present %v)", v, ok), ok && v == want
		}}
	}
	histogram := func(name string, count uint64, below time.Duration) check {
		return check{fmt.Sprintf("%s: %d observation(s), sum under %v", name, count, below), func(m scale.Metrics) (string, bool) {
			h := m.Histogram(name)
			if h == nil {
				return "absent", false
			}
			return fmt.Sprintf("count %d sum %gs", h.GetSampleCount(), h.GetSampleSum()),
				h.GetSampleCount() == count && h.GetSampleSum() > 0 && h.GetSampleSum() < below.Seconds()
		}}
	}
	checks := []check{
		value(1, "roamd_moves_total", "direction", "arrived"),
		histogram("roamd_detect_to_announce_seconds", 1, time.Second),
		histogram("roamd_announce_to_old_withdrawn_seconds", 1, 5*time.Second),
		value(1, "roamd_claims_refused_total", "reason", "outside-prefixes"),
		value(1, "roamd_hosts", "state", "announced"),
		value(0, "roamd_hosts", "state", "yielded"),
		value(1, "roamd_bgp_peer_established", "tenant", "default", "peer", leafAddr),
		{"roamd_reconcile_seconds is exposed", func(m scale.Metrics) (string, bool) {
			return "", m.Histogram("roamd_reconcile_seconds") != nil
		}},
	}
	var last []string
	err := scale.Poll(t.Context(), 5*time.Second, "the metrics after the move", func() (bool, error) {
		m, err := scale.Scrape(s.hv, metricsAddr)
		if err != nil {
			return false, err
		}
		last = last[:0]
		for _, c := range checks {
			if seen, ok := c.ok(m); !ok {
				last = append(last, fmt.Sprintf("%s: got %s", c.what, seen))
			}
		}
		return len(last) == 0, nil
	})
	if err != nil {
		t.Fatalf("%v; still wrong:\n  %s", err, strings.Join(last, "\n  "))
	}

	// A hypervisor runs thousands of VMs: no series may carry a VM's
	// address or MAC (the exposition must not even mention them).
	body, err := scale.HTTPGet(s.hv, "http://"+metricsAddr+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, vmID := range []string{vm1.addr.String(), remote.addr.String(), "10.99.0.5", vm1.mac.String(), remote.mac.String()} {
		if strings.Contains(string(body), vmID) {
			for _, l := range strings.Split(string(body), "\n") {
				if strings.Contains(l, vmID) {
					t.Errorf("a metric names VM %s: %s", vmID, l)
				}
			}
		}
	}
}
