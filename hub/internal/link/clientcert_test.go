package link_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"ferry.dev/hub/internal/agenttest"
	"ferry.dev/hub/internal/link"
)

// TestClientKeyBinding: an installation bound to a client certificate key
// is refused before the upgrade (403 client_certificate_mismatch) when the
// request presents no verified certificate, here over plain HTTP; the
// security event is reported before the agent hears the answer, and the
// refusal is counted. An unbound installation links as ever. The TLS cases
// (another key, the same key re-issued) run against the real hub in
// server.TestClientCertBinding.
func TestClientKeyBinding(t *testing.T) {
	const bound = "cred-bound"
	boundKey := strings.Repeat("5f", 32) // the hex SHA-256 of some key
	sec := newSecurityEvents()
	h := newTestHubWith(t, link.Config{}, nil, func(ep *link.Endpoint) { ep.OnSecurityEvent(sec.record) })
	h.sess.mu.Lock()
	h.sess.peers[bound] = link.Peer{InstallationID: "ins_bound", OrgID: "org_1", EnvIDs: []string{"env_prod"}, ClientKeyHash: boundKey}
	h.sess.mu.Unlock()

	_, err := (&agenttest.Agent{Credential: bound}).Dial(ctxTimeout(t, 5*time.Second), h.srv.URL)
	var he *agenttest.HandshakeError
	if !errors.As(err, &he) {
		t.Fatalf("bound installation without a client certificate: %v, want a refused upgrade", err)
	}
	var p struct{ Code, Detail string }
	if he.StatusCode != http.StatusForbidden || json.Unmarshal([]byte(he.Body), &p) != nil || p.Code != link.CodeClientCertificateMismatch {
		t.Fatalf("upgrade answered %d %s, want 403 %s", he.StatusCode, he.Body, link.CodeClientCertificateMismatch)
	}
	if !strings.Contains(p.Detail, "present it, or re-enroll") {
		t.Errorf("detail %q does not say what to do", p.Detail)
	}
	// The hook ran before the answer: no waiting.
	evs := sec.all()
	if len(evs) != 1 {
		t.Fatalf("%d security events when the refusal arrived, want 1: %+v", len(evs), evs)
	}
	ev := evs[0]
	if ev.Kind != link.KindClientCertificate || ev.Peer.InstallationID != "ins_bound" || ev.ConnID != "" || ev.Closed ||
		ev.Remote != "127.0.0.1" || !strings.Contains(ev.Detail, boundKey) || strings.Contains(ev.Detail, bound) {
		t.Errorf("security event %+v: want kind %s for ins_bound from 127.0.0.1, naming the bound key and not the credential", ev, link.KindClientCertificate)
	}
	if n := metric(t, h.reg, "ferry_hub_link_handshake_failures_total", "reason", link.CodeClientCertificateMismatch); n != 1 {
		t.Errorf("handshake failures for %s = %v, want 1", link.CodeClientCertificateMismatch, n)
	}
	select {
	case c := <-h.sess.connected:
		t.Errorf("the refused installation connected: %+v", c.Peer())
	default:
	}

	// Unbound: no certificate needed, nothing reported.
	c, _ := h.connect(t, &agenttest.Agent{Credential: cred1})
	if got := c.HelloReply().InstallationID; got != ins1 {
		t.Errorf("unbound installation linked as %s, want %s", got, ins1)
	}
	if n := len(sec.all()); n != 1 {
		t.Errorf("%d security events after an unbound link, want still 1", n)
	}
}
