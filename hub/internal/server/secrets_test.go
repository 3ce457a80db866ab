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
	"ferry.dev/hub/internal/state"
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

// TestSecretsStayOutOfLogsAndAudit checks, with every log level on, that no
// secret value of a definition reaches the logs or the audit trail: a
// definition full of plaintext secrets is refused at creation (R33), and
// one whose secret-named API properties are encrypted (ciphertext, still
// not to be logged) goes through the workflow (create, deliver, accept).
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
	definition := func(encrypted bool, auth, key string) json.RawMessage {
		def := map[string]any{
			"api": map[string]any{
				"name":  "Payments",
				"proxy": map[string]any{"headers": []map[string]string{{"name": "Authorization", "value": auth}}},
				"properties": []map[string]any{
					{"key": "password", "value": secrets[1], "encrypted": encrypted},
					{"key": "client_secret", "value": secrets[2], "encrypted": encrypted},
					{"key": "token", "value": secrets[3], "encrypted": encrypted},
					{"key": "apiKey", "value": secrets[4], "encrypted": encrypted},
				},
				"tls": map[string]string{"key": key},
			},
		}
		raw, err := json.Marshal(def)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	create := func(def json.RawMessage) (state.Promotion, error) {
		return h.svc.Create(t.Context(), promotion.Request{
			OrgID: acme.ID, SourceEnvID: acme.Env["Dev"].ID, TargetEnvID: acme.Env["Prod"].ID,
			By:  promotion.Caller{Name: "someone", Trusted: true},
			API: protocol.ExportedAPI{APIID: "api-pay", CrossID: "pay", Name: "Payments", Version: "1", Definition: def},
		})
	}
	plain := definition(false, secrets[0], "-----BEGIN PRIVATE KEY-----\n"+secrets[5]+"\n-----END PRIVATE KEY-----")
	if _, err := create(plain); protocol.CodeOf(err) != protocol.CodeSecretInDefinition {
		t.Fatalf("plaintext secrets: %v, want %s", err, protocol.CodeSecretInDefinition)
	}
	p, err := create(definition(true, "Bearer {{secret:payments-auth}}", "{{secret:payments-tls-key}}"))
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
