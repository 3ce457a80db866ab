package fleet

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	enrollments *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		enrollments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "link_enrollments_total",
			Help: "Agent enrollments with a link token, by result (ok, reused, unknown, malformed).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.enrollments)
	}
	return m
}
