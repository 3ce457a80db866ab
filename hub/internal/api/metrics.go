package api

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the REST API's collectors.
type metrics struct {
	// authRejected counts refused credentials by reason: missing,
	// malformed (not "Bearer <token>"), checksum (refused before any
	// lookup), unknown, revoked, expired, session, installation_credential,
	// other (a disabled or deleted user, a store failure).
	authRejected *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		authRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "hub", Name: "auth_rejected_total",
			Help: "REST credentials refused, by reason; checksum failures are refused without a store lookup.",
		}, []string{"reason"}),
	}
	for _, r := range []string{"missing", "malformed", "checksum", "unknown", "revoked", "expired", "session", "installation_credential", "other"} {
		m.authRejected.WithLabelValues(r)
	}
	if err := reg.Register(m.authRejected); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}
