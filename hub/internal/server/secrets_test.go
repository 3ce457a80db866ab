package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"ferry.dev/hub/internal/api"
	"ferry.dev/hub/internal/promotion"
	"ferry.dev/shared/protocol"
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSecretsStayOutOfLogsAndAudit promotes a definition full of secrets
// through the workflow (create, deliver, accept) with every log level on,
// and checks that no secret value reaches the logs or the audit trail.
func TestSecretsStayOutOfLogsAndAudit(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newTestHub(t, func(d *api.Deps) { d.Logger = logger })
	acme := h.newOrg("acme")

	secrets := []string{
		"Bearer s3cr3t-authorization-value",
		"hunter2-password-value",
		"client-secret-value-42",
		"tok_abcdef0123456789",
		"apikey-9f8e7d6c5b4a",
		"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ",
	}
	def := map[string]any{
		"api": map[string]any{
			"name":  "Payments",
			"proxy": map[string]any{"headers": []map[string]string{{"name": "Authorization", "value": secrets[0]}}},
			"properties": []map[string]any{
				{"key": "password", "value": secrets[1]},
				{"key": "client_secret", "value": secrets[2], "encrypted": false},
				{"key": "token", "value": secrets[3]},
				{"key": "apiKey", "value": secrets[4]},
			},
			"tls": map[string]string{"key": "-----BEGIN PRIVATE KEY-----\n" + secrets[5] + "\n-----END PRIVATE KEY-----"},
		},
	}
	raw, err := json.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.svc.Create(t.Context(), promotion.Request{
		OrgID: acme.ID, SourceEnvID: acme.Env["Dev"].ID, TargetEnvID: acme.Env["Prod"].ID,
		By:  promotion.Caller{Name: "someone", Trusted: true},
		API: protocol.ExportedAPI{APIID: "api-pay", CrossID: "pay", Name: "Payments", Version: "1", Definition: raw},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.linkDecide(acme, p, "Prod", protocol.OutcomeAccepted, "", h.clock.now()); err != nil {
		t.Fatalf("accept: %v", err)
	}
	// Reading it back (with its definition) and a refused decision log too.
	h.must(http.StatusOK, testAdminToken, "GET", "/api/v1/orgs/acme/promotions/"+p.ID+"?include=definition", nil, nil)
	_ = h.linkDecide(acme, p, "QA", protocol.OutcomeRejected, "", h.clock.now())

	var trail strings.Builder
	for _, e := range h.audits(acme, 0) {
		b, _ := json.Marshal(e)
		trail.Write(b)
	}
	if trail.Len() == 0 || !strings.Contains(logs.String(), p.ID) {
		t.Fatalf("nothing captured (audit %d bytes, logs %d bytes): the test would prove nothing", trail.Len(), len(logs.String()))
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("secret %q in the logs", s)
		}
		if strings.Contains(trail.String(), s) {
			t.Errorf("secret %q in the audit trail", s)
		}
	}
}
