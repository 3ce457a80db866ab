package apim

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's collectors. Labels: op is one of the op*
// constants; code is the final HTTP status, or "error" when no response came
// back.
type metrics struct {
	// duration observes each call, retries and backoff included.
	duration *prometheus.HistogramVec
	// retries counts attempts after the first.
	retries *prometheus.CounterVec
	// indexLookups counts crossId lookups by how they were answered: hit
	// (index, confirmed by a GET), miss (index) or list (full listing).
	indexLookups *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ferry_agent",
			Subsystem: "apim",
			Name:      "request_duration_seconds",
			Help:      "Duration of calls to the APIM Management API, retries included, by operation and final status code.",
			Buckets:   []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"op", "code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry_agent",
			Subsystem: "apim",
			Name:      "retries_total",
			Help:      "Retried attempts of calls to the APIM Management API, by operation.",
		}, []string{"op"}),
		indexLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry_agent",
			Subsystem: "apim",
			Name:      "crossid_lookups_total",
			Help:      "Lookups of an API by crossId, by how they were answered: hit or miss from the agent's crossId index, or list (every API of the environment was listed).",
		}, []string{"result"}),
	}
	var err error
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.retries, err = register(reg, m.retries); err != nil {
		return nil, err
	}
	if m.indexLookups, err = register(reg, m.indexLookups); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c on reg, or returns the collector already registered
// there under the same name, so that several clients (one per environment)
// can share a registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register apim metrics: %w", err)
}
