package link

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connected         prometheus.Gauge
	messages          *prometheus.CounterVec
	handshakeFailures *prometheus.CounterVec
	disconnects       *prometheus.CounterVec
	callDuration      *prometheus.HistogramVec
	violations        *prometheus.CounterVec
	policyCloses      prometheus.Counter
	badMessages       prometheus.Counter
	rateCloses        *prometheus.CounterVec
	duplicates        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "agents_connected",
			Help: "Agent links currently connected to this hub (after hello).",
		}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "link_messages_total",
			Help: "Link messages by type and direction (in = from agents, out = to agents).",
		}, []string{"type", "direction"}),
		handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "link_handshake_failures_total",
			Help: "Refused link attempts by reason (unauthorized, credential_expired, origin, client_certificate_mismatch, upgrade, hello and others).",
		}, []string{"reason"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "link_disconnects_total",
			Help: "Closed agent links by reason.",
		}, []string{"reason"}),
		callDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "link_call_duration_seconds",
			Help:    "Time from sending a command to an agent until its reply, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"op"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "link_violations_total",
			Help: "Policy violations by agents, by kind (direction, replay, unknown_reply, refused).",
		}, []string{"kind"}),
		policyCloses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "link_policy_closes_total",
			Help: "Agent links closed with 1008 after too many policy violations.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "link_duplicate_commands_total",
			Help: "Copies of commands an agent link had already received (network duplicates or retries on the same link); answered with the first reply, never run twice.",
		}),
		badMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "link_bad_messages_total",
			Help: "Messages from agents answered with bad_message (invalid envelope or payload, unknown type).",
		}),
		rateCloses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "link_rate_closes_total",
			Help: "Agent links closed with 1008 by a rate policy (messages = flood, bad_messages = too many bad messages).",
		}, []string{"limit"}),
	}
	if reg != nil {
		reg.MustRegister(m.connected, m.messages, m.handshakeFailures, m.disconnects, m.callDuration, m.violations, m.policyCloses, m.badMessages, m.rateCloses, m.duplicates)
	}
	return m
}
