package fleet

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	enrollments *prometheus.CounterVec
	deliveries  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		enrollments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "link_enrollments_total",
			Help: "Agent enrollments with a link token, by result (ok, reused, unknown, malformed).",
		}, []string{"result"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "credential_deliveries_total",
			Help: "New installation credentials sent to agents (at a rotation, or when the agent links with its previous one), by result (acknowledged, not_connected, refused, failed).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.enrollments, m.deliveries)
	}
	return m
}
