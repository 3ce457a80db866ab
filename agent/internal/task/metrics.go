package task

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the task package's collectors, under ferry_agent_.
type metrics struct {
	// tasksPending is the number of tasks waiting for the admin.
	tasksPending prometheus.Gauge
	// imports counts imports into APIM by outcome: created, updated, failed.
	imports *prometheus.CounterVec
	// decisions counts decisions stored by outcome: accepted, rejected, error.
	decisions *prometheus.CounterVec
	// reportsPending is the number of decisions the hub has not acknowledged.
	reportsPending prometheus.Gauge
	// reportRetries counts failed reports that will be retried.
	reportRetries prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		tasksPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ferry_agent", Name: "tasks_pending",
			Help: "Promotion tasks waiting for this environment's admin.",
		}),
		imports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry_agent", Name: "imports_total",
			Help: "Imports of accepted promotions into APIM, by outcome (created, updated, failed).",
		}, []string{"outcome"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry_agent", Name: "decisions_total",
			Help: "Decisions stored on promotion tasks, by outcome (accepted, rejected, error).",
		}, []string{"outcome"}),
		reportsPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ferry_agent", Name: "decision_reports_pending",
			Help: "Decisions not yet acknowledged by the hub.",
		}),
		reportRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ferry_agent", Name: "decision_report_retries_total",
			Help: "Reports of decisions to the hub that failed and will be retried.",
		}),
	}
	for _, o := range []string{"created", "updated", "failed"} {
		m.imports.WithLabelValues(o)
	}
	for _, o := range []string{"accepted", "rejected", "error"} {
		m.decisions.WithLabelValues(o)
	}
	for _, c := range []prometheus.Collector{m.tasksPending, m.imports, m.decisions, m.reportsPending, m.reportRetries} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register task metrics: %w", err)
		}
	}
	return m, nil
}
