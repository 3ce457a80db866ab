package promotion

import (
	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/shared/protocol"
)

type metrics struct {
	transitions     *prometheus.CounterVec
	active          prometheus.Gauge
	waiting         prometheus.Gauge
	taskRaised      prometheus.Histogram
	decision        prometheus.Histogram
	deliveryRetries prometheus.Counter
	auditCaughtUp   prometheus.Counter
	refused         *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "promotions_total",
			Help: "Promotions entering each status (CREATED, TO_BE_VALIDATED, ACCEPTED, REJECTED, ERROR, CANCELLED).",
		}, []string{"status"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "promotions_active",
			Help: "Promotions not yet decided (CREATED or TO_BE_VALIDATED).",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "promotions_waiting",
			Help: "Promotions waiting for their target environment's agent to connect.",
		}),
		taskRaised: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "promotion_task_raised_seconds",
			Help:    "Time from a promotion's request until the target agent stored its task.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2.5, 12),
		}),
		decision: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "promotion_decision_seconds",
			Help:    "Time from a task being raised until the hub recorded its decision.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 12),
		}),
		deliveryRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "promotion_delivery_retries_total",
			Help: "Delivery attempts to a connected target agent that failed and will be retried.",
		}),
		auditCaughtUp: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "audit_entries_caught_up_total",
			Help: "Audit entries written late by the catch-up, for promotion changes whose entry was not written at the time (the hub stopped or the audit write failed). Any increase means check the hub's logs and store.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "promotions_refused_total",
			Help: "Promotion requests refused at creation, by reason: secret_in_definition (a plaintext secret in the definition) or environment_backlog_full (the target's agent is offline or slow).",
		}, []string{"reason"}),
	}
	for _, reason := range []protocol.Code{protocol.CodeSecretInDefinition, protocol.CodeBacklogFull} {
		m.refused.WithLabelValues(string(reason))
	}
	if reg != nil {
		reg.MustRegister(m.transitions, m.active, m.waiting, m.taskRaised, m.decision, m.deliveryRetries, m.auditCaughtUp, m.refused)
	}
	return m
}
