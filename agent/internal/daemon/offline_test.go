package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry.dev/agent/apimsim"
	"ferry.dev/agent/internal/config"
	"ferry.dev/agent/internal/definition"
	"ferry.dev/agent/internal/enroll"
	"ferry.dev/agent/internal/hubtest"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// TestSessionsVerifyOfflineAfterRestart: the agent learns the hub's keys,
// restarts while the hub is stopped, and still verifies sessions with the
// persisted keys: a valid session decides (the decision waits in the
// outbox), a forged or expired one is refused, and a session without the
// permission changes nothing.
func TestSessionsVerifyOfflineAfterRestart(t *testing.T) {
	sim := apimsim.New(apimsim.Options{})
	apimTS := httptest.NewServer(sim)
	defer apimTS.Close()
	keys := newHubKeys(t)
	hub := &hubtest.Hub{OnHello: keys.hello, OnCommand: func(*hubtest.Conn, *protocol.Command) *protocol.Reply {
		return protocol.ErrorReply(protocol.CodeUnavailable, "not now")
	}}
	hub.Start(t)

	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, enroll.CredentialFile), []byte("cred-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{HubURL: hub.URL(), APIMURL: apimTS.URL + "/management/v2", APIMEnv: "DEFAULT", Listen: freeAddr(t), DataDir: dataDir, LogFormat: "text"}
	admin := keys.sign(t, "usr_ada", "Ada", time.Now().Add(time.Hour), "env_prod")

	// First run: connect, learn the keys, receive a promotion.
	stop := startDaemon(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := hub.WaitConn(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	waitKeys(t, "http://"+cfg.Listen, admin)
	raw, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	san, err := definition.Sanitize(raw, definition.StableCrossID("env_dev", "api-id"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := conn.Call(ctx, protocol.OpDeliverPromotion, protocol.Promotion{ID: "prm_1", SourceEnvID: "env_dev", TargetEnvID: "env_prod",
		TargetEnv: "Prod", CrossID: san.CrossID, APIName: san.Name, Status: protocol.PromotionToBeValidated, Definition: san.JSON})
	if err != nil || rep.Status != protocol.StatusOK {
		t.Fatalf("deliver = %+v, %v", rep, err)
	}
	stop()

	// The hub goes away; the agent restarts without it.
	hub.Close()
	cfg.Listen = freeAddr(t)
	defer startDaemon(t, cfg)()
	base := "http://" + cfg.Listen
	if code, body := call(t, http.MethodGet, base+"/api/v1/status", ""); code != http.StatusOK || strings.Contains(body, `"hubReachable":true`) ||
		!strings.Contains(body, `"env_prod"`) {
		t.Fatalf("status = %d %s", code, body)
	}

	forged := newHubKeys(t).sign(t, "usr_ada", "Ada", time.Now().Add(time.Hour), "env_prod")
	expired := keys.sign(t, "usr_ada", "Ada", time.Now().Add(-2*session.Leeway), "env_prod")
	reader := keys.sign(t, "usr_rita", "Rita", time.Now().Add(time.Hour), "env_prod", session.EnvAPIRead)
	for name, tok := range map[string]string{"forged": forged, "expired": expired} {
		for _, path := range []string{"/api/v1/tasks", "/api/v1/tasks/prm_1/_accept"} {
			method := http.MethodGet
			if strings.HasSuffix(path, "_accept") {
				method = http.MethodPost
			}
			if code, body := call(t, method, base+path, tok); code != http.StatusUnauthorized {
				t.Errorf("%s session: %s %s = %d %s", name, method, path, code, body)
			}
		}
	}
	if code, body := call(t, http.MethodPost, base+"/api/v1/tasks/prm_1/_accept", reader); code != http.StatusForbidden ||
		!strings.Contains(body, "needs ENVIRONMENT_API[CREATE,UPDATE] on Prod") {
		t.Errorf("reader accept = %d %s", code, body)
	}
	if n := len(sim.APIs("DEFAULT")); n != 0 {
		t.Fatalf("APIM holds %d APIs after refusals", n)
	}

	if code, body := call(t, http.MethodGet, base+"/api/v1/tasks", admin); code != http.StatusOK || !strings.Contains(body, `"id":"prm_1"`) {
		t.Fatalf("GET /api/v1/tasks offline = %d %s", code, body)
	}
	code, body := call(t, http.MethodPost, base+"/api/v1/tasks/prm_1/_accept", admin)
	var d struct{ Outcome, Actor, Report string }
	if err := json.Unmarshal([]byte(body), &d); code != http.StatusOK || err != nil || d.Outcome != "ACCEPTED" || d.Actor != "Ada (usr_ada)" || d.Report != "PENDING" {
		t.Fatalf("accept offline = %d %s", code, body)
	}
	if n := len(sim.APIs("DEFAULT")); n != 1 {
		t.Errorf("APIM holds %d APIs after the offline accept, want 1", n)
	}
}
