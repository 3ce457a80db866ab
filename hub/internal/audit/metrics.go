package audit

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	entries  *prometheus.CounterVec
	failures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "audit_entries_total",
			Help: "Audit entries appended, by event.",
		}, []string{"event"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "audit_append_failures_total",
			Help: "Audit entries that could not be appended; each is logged at error level with its content.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.entries, m.failures)
	}
	return m
}
