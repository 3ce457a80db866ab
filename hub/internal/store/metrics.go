package store

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the collectors of an instrumented store.
type metrics struct {
	// opDuration is labelled op (the Store method), engine (sqlite,
	// mongo) and result (ok, not_found, conflict, error).
	opDuration *prometheus.HistogramVec
}

// newMetrics registers the store's collectors on reg, or reuses the ones
// already registered there (another engine's, for example). A nil reg
// registers nothing.
func newMetrics(reg prometheus.Registerer) *metrics {
	opDuration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "ferry",
		Subsystem: "hub_store",
		Name:      "operation_duration_seconds",
		Help:      "Duration of hub store operations by operation, engine and result.",
		Buckets:   prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms … 4 s
	}, []string{"op", "engine", "result"})
	if reg != nil {
		if err := reg.Register(opDuration); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				// The collector is declared above; only a programming
				// error gets here, as with prometheus.MustRegister.
				panic(err)
			}
			opDuration = are.ExistingCollector.(*prometheus.HistogramVec)
		}
	}
	return &metrics{opDuration: opDuration}
}
