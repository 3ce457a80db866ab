package daemon

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry.dev/agent/apimsim"
	"ferry.dev/agent/internal/config"
	"ferry.dev/agent/internal/definition"
	"ferry.dev/agent/internal/enroll"
	"ferry.dev/agent/internal/hubtest"
	"ferry.dev/shared/protocol"
)

const samplePath = "../../../../shared/reference/gravitee/samples/v4-http-proxy-with-members-groups-plans-pages-media.json"

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestPromotionThroughTheDaemon wires the real agent to a fake hub and the
// APIM stand-in: the hub delivers a promotion, the admin accepts it over
// REST, the API appears in APIM and the decision reaches the hub; the hub
// asks for an export and gets a sanitized one.
func TestPromotionThroughTheDaemon(t *testing.T) {
	sim := apimsim.New(apimsim.Options{})
	apimTS := httptest.NewServer(sim)
	defer apimTS.Close()

	var mu sync.Mutex
	var decisions []protocol.Decision
	keys := newHubKeys(t)
	hub := &hubtest.Hub{
		OnHello: keys.hello,
		OnCommand: func(_ *hubtest.Conn, cmd *protocol.Command) *protocol.Reply {
			var out any
			switch cmd.Op {
			case protocol.OpListPromotions:
				out = protocol.PromotionList{Promotions: []protocol.Promotion{}}
			case protocol.OpReportDecision:
				var d protocol.Decision
				if err := json.Unmarshal(cmd.Body, &d); err != nil || d.Validate() != nil {
					return protocol.ErrorReply(protocol.CodeInvalid, "bad decision")
				}
				mu.Lock()
				decisions = append(decisions, d)
				mu.Unlock()
				out = protocol.Promotion{ID: d.PromotionID, TargetEnvID: "env_prod", Status: protocol.PromotionStatus(d.Outcome), TargetAPIID: d.TargetAPIID}
			default:
				return protocol.ErrorReply(protocol.CodeUnsupported, "not in this test")
			}
			r, _ := protocol.OKReply(out)
			return r
		},
	}
	hub.Start(t)

	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, enroll.CredentialFile), []byte("cred-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	cfg := config.Config{HubURL: hub.URL(), APIMURL: apimTS.URL + "/management/v2", APIMEnv: "DEFAULT", Listen: listen, DataDir: dataDir, LogFormat: "text"}
	defer startDaemon(t, cfg)()

	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	conn, err := hub.WaitConn(wctx, 1)
	if err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	san, err := definition.Sanitize(raw, definition.StableCrossID("env_dev", "api-id"))
	if err != nil {
		t.Fatal(err)
	}
	p := protocol.Promotion{ID: "prm_1", SourceEnvID: "env_dev", TargetEnvID: "env_prod", CrossID: san.CrossID, APIName: san.Name,
		Status: protocol.PromotionToBeValidated, Definition: san.JSON}
	rep, err := conn.Call(wctx, protocol.OpDeliverPromotion, p)
	if err != nil || rep.Status != protocol.StatusOK {
		t.Fatalf("deliver = %+v, %v", rep, err)
	}

	base := "http://" + listen
	tok := keys.sign(t, "usr_ada", "Ada", time.Now().Add(time.Hour), "env_prod")
	get := func(path string) (int, string) { return call(t, http.MethodGet, base+path, tok) }
	waitKeys(t, base, tok)
	if code, body := get("/api/v1/tasks"); code != http.StatusOK || !strings.Contains(body, `"id":"prm_1"`) {
		t.Fatalf("GET /api/v1/tasks = %d %s", code, body)
	}
	if code, body := call(t, http.MethodPost, base+"/api/v1/tasks/prm_1/_accept", ""); code != http.StatusUnauthorized {
		t.Fatalf("accept without a session = %d %s", code, body)
	}
	if code, body := call(t, http.MethodPost, base+"/api/v1/tasks/prm_1/_accept", tok); code != http.StatusOK || !strings.Contains(body, `"outcome":"ACCEPTED"`) {
		t.Fatalf("accept = %d %s", code, body)
	}
	apis := sim.APIs("DEFAULT")
	if len(apis) != 1 || apis[0].CrossID != san.CrossID {
		t.Fatalf("APIM holds %+v", apis)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(decisions)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the decision never reached the hub")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	got := decisions[0]
	mu.Unlock()
	if got.PromotionID != "prm_1" || got.TargetAPIID != apis[0].ID || !got.Created || got.Actor != "Ada (usr_ada)" || got.Session != tok {
		t.Errorf("decision at the hub = %+v", got)
	}

	rep, err = conn.Call(wctx, protocol.OpExportAPI, protocol.ExportRequest{APIID: apis[0].ID})
	if err != nil || rep.Status != protocol.StatusOK {
		t.Fatalf("export = %+v, %v", rep, err)
	}
	var exp protocol.ExportedAPI
	if err := json.Unmarshal(rep.Body, &exp); err != nil || exp.CrossID != san.CrossID || strings.Contains(string(exp.Definition), `"members"`) {
		t.Errorf("exported = %+v (%v)", exp, err)
	}

	if code, body := call(t, http.MethodGet, base+"/api/v1/status", ""); code != http.StatusOK || !strings.Contains(body, `"link":"connected"`) || !strings.Contains(body, `"env_prod"`) {
		t.Errorf("status = %d %s", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "ferry_agent_imports_total") || !strings.Contains(body, "ferry_agent_tasks_pending") {
		t.Errorf("metrics = %d, missing the task metrics", code)
	}
}
