package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are roamd's Prometheus metrics. No label ever carries a VM address:
// a hypervisor may run thousands.
type Metrics struct {
	hosts            *prometheus.GaugeVec
	moves            *prometheus.CounterVec
	refused          *prometheus.CounterVec
	actionErrors     *prometheus.CounterVec
	frozen           prometheus.Counter
	peers            *prometheus.GaugeVec
	detectToAnnounce prometheus.Histogram
	oldWithdrawn     prometheus.Histogram
	reconcile        prometheus.Histogram
	reconcileFixes   *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns = "roamd"
	m := &Metrics{
		hosts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "hosts", Help: "Hosts in the table by state.",
		}, []string{"state"}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "moves_total", Help: "Hosts that arrived at or departed from this hypervisor.",
		}, []string{"direction"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "claims_refused_total", Help: "Claims refused, by reason.",
		}, []string{"reason"}),
		actionErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "action_errors_total", Help: "Kernel or BGP actions that failed.",
		}, []string{"action"}),
		frozen: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "hosts_frozen_total", Help: "Hosts frozen by duplicate detection.",
		}),
		peers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "bgp", Name: "peer_established",
			Help: "1 when the BGP session is established.",
		}, []string{"tenant", "peer"}),
		detectToAnnounce: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "detect_to_announce_seconds",
			Help:    "From the frame or hint that revealed an arrival to the BGP path handed to the speaker.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 16),
		}),
		oldWithdrawn: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "announce_to_old_withdrawn_seconds",
			Help:    "From an arrival's announcement to the old site's path disappearing (seen through ADD-PATH).",
			Buckets: prometheus.ExponentialBuckets(1e-4, 2, 16),
		}),
		reconcile: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "reconcile_seconds", Help: "Duration of a full reconcile with the kernel and BGP.",
			Buckets: prometheus.ExponentialBuckets(1e-4, 2, 16),
		}),
		reconcileFixes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "reconcile_repairs_total", Help: "Differences a reconcile found and repaired.",
		}, []string{"what"}),
	}
	if reg != nil {
		reg.MustRegister(m.hosts, m.moves, m.refused, m.actionErrors, m.frozen, m.peers,
			m.detectToAnnounce, m.oldWithdrawn, m.reconcile, m.reconcileFixes)
	}
	return m
}
