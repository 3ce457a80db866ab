package link

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	state      prometheus.Gauge
	reconnects prometheus.Counter
	dialErrors *prometheus.CounterVec
	messages   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		state: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ferry", Subsystem: "agent", Name: "link_state",
			Help: "Link state: 0 closed, 1 connecting, 2 connected, 3 draining.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "agent", Name: "link_reconnects_total",
			Help: "Connections to the hub established after the first one.",
		}),
		dialErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "agent", Name: "link_dial_failures_total",
			Help: "Failed attempts to connect to the hub, by reason (network, unauthorized, refused, hello).",
		}, []string{"reason"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "agent", Name: "link_messages_total",
			Help: "Link messages by type and direction (in = from the hub).",
		}, []string{"type", "direction"}),
	}
	if reg != nil {
		reg.MustRegister(m.state, m.reconnects, m.dialErrors, m.messages)
	}
	return m
}
