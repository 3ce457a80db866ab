package faultstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/hub/internal/api"
	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/authz"
	"ferry.dev/hub/internal/faultstore"
	"ferry.dev/hub/internal/fleet"
	"ferry.dev/hub/internal/ids"
	"ferry.dev/hub/internal/promotion"
	"ferry.dev/hub/internal/state"
	"ferry.dev/hub/internal/store"
	"ferry.dev/shared/protocol"
)

// exporter is a promotion.Dispatcher whose source agent exports any API id
// as an API with the same crossId, and whose targets are offline (the
// promotion waits, which is enough here).
type exporter struct{}

func (exporter) CallEnv(_ context.Context, _ string, op protocol.Op, body, out any) error {
	if op != protocol.OpExportAPI {
		return protocol.Errorf(protocol.CodeUnavailable, "offline")
	}
	req := body.(protocol.ExportRequest)
	*out.(*protocol.ExportedAPI) = protocol.ExportedAPI{APIID: req.APIID, CrossID: "cross-" + req.APIID, Name: req.APIID,
		Definition: json.RawMessage(`{"api":{"name":"` + req.APIID + `"}}`)}
	return nil
}

func (exporter) Online(string) bool { return false }

type offline struct{}

func (offline) LastSeen(string) (time.Time, bool) { return time.Time{}, false }

func (offline) Disconnect(string, int, string) {}

func (offline) Call(context.Context, string, protocol.Op, any, any) error {
	return protocol.Errorf(protocol.CodeUnavailable, "offline")
}

const adminToken = "faultstore-admin-token-0123456789"

// newAPI wires the real REST API, workflow, audit trail, fleet and
// authority over a SQLite store wrapped by faultstore, as the server does,
// and serves it.
func newAPI(t *testing.T) (*faultstore.Store, *httptest.Server) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	sq, err := store.OpenSQLite(ctx, t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	st := faultstore.Wrap(sq)
	t.Cleanup(func() { st.Close() })
	if err := st.CreateAPIToken(ctx, state.APIToken{ID: ids.New("tok"), Hash: auth.Hash(adminToken), Name: "platform admin", CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	authority, err := authz.Open(ctx, st, log, authz.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fl, err := fleet.New(st, offline{}, log, reg, fleet.Options{SessionKeys: authority.PublicKeys()})
	if err != nil {
		t.Fatal(err)
	}
	trail, err := audit.New(st, log, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	promos, err := promotion.New(st, exporter{}, trail, log, reg, promotion.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Deps{Store: st, Fleet: fl, Promotions: promos, Audit: trail, Authority: authority,
		Link: http.NotFoundHandler(), Metrics: http.NotFoundHandler(), Logger: log, Argon2: auth.Argon2Params{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return st, srv
}

type call struct {
	name, method, path, body string
	ok                       int // the status once the store is back
}

func do(t *testing.T, srv *httptest.Server, c call) (int, http.Header, string) {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, _ := http.NewRequest(c.method, srv.URL+c.path, body)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.method == "POST" {
		// A retry of a call (same path and body) carries the same key.
		req.Header.Set("Idempotency-Key", fmt.Sprintf("test-%x", sha256.Sum256([]byte(c.path+"\x00"+c.body))))
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestOutage is A10: while every store call fails, the REST API answers
// 503 with Retry-After, never a 2xx (so nothing is acknowledged and then
// lost), and changes nothing; once the store is back the same calls
// succeed with no restart.
func TestOutage(t *testing.T) {
	st, srv := newAPI(t)
	setup := []call{
		{"create org", "POST", "/api/v1/orgs", `{"name":"demo"}`, http.StatusCreated},
		{"create Dev", "POST", "/api/v1/orgs/demo/environments", `{"name":"Dev"}`, http.StatusCreated},
		{"create Prod", "POST", "/api/v1/orgs/demo/environments", `{"name":"Prod"}`, http.StatusCreated},
	}
	for _, c := range setup {
		if st, _, b := do(t, srv, c); st != c.ok {
			t.Fatalf("%s: %d %s", c.name, st, b)
		}
	}

	calls := []call{
		{"readyz", "GET", "/readyz", "", http.StatusOK},
		{"create org", "POST", "/api/v1/orgs", `{"name":"other"}`, http.StatusCreated},
		{"create environment", "POST", "/api/v1/orgs/demo/environments", `{"name":"Staging"}`, http.StatusCreated},
		{"create user", "POST", "/api/v1/orgs/demo/users", `{"username":"ada","password":"ada-password-123"}`, http.StatusCreated},
		{"promote", "POST", "/api/v1/orgs/demo/promotions", `{"apiId":"api-1","sourceEnv":"Dev","targetEnv":"Prod"}`, http.StatusCreated},
		{"list promotions", "GET", "/api/v1/orgs/demo/promotions", "", http.StatusOK},
		{"list environments", "GET", "/api/v1/orgs/demo/environments", "", http.StatusOK},
	}
	st.Fail(nil)
	for _, c := range calls {
		status, h, b := do(t, srv, c)
		if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
			t.Errorf("%s during the outage: %d, Retry-After %q, body %s; want 503 with Retry-After", c.name, status, h.Get("Retry-After"), b)
		}
	}
	if total, faulted := st.Calls(); faulted == 0 {
		t.Fatalf("no store call was faulted (of %d)", total)
	}

	st.Recover()
	for _, c := range calls {
		if status, _, b := do(t, srv, c); status != c.ok {
			t.Errorf("%s after recovery: %d %s, want %d", c.name, status, b, c.ok)
		}
	}
	// Nothing from the outage was applied: one promotion (made after
	// recovery), and the audit chain verifies.
	var list struct{ Items []struct{ ID string } }
	_, _, b := do(t, srv, call{name: "list", method: "GET", path: "/api/v1/orgs/demo/promotions"})
	if err := json.Unmarshal([]byte(b), &list); err != nil || len(list.Items) != 1 {
		t.Errorf("promotions after recovery: %s, want exactly 1", b)
	}
	if status, _, b := do(t, srv, call{name: "verify", method: "GET", path: "/api/v1/orgs/demo/audit/_verify"}); status != http.StatusOK || !strings.Contains(b, `"ok":true`) {
		t.Errorf("audit verify after recovery: %d %s", status, b)
	}
}

// createDemo creates organization demo and its environments envs through
// the REST API.
func createDemo(t *testing.T, srv *httptest.Server, envs ...string) {
	t.Helper()
	cs := []call{{"create org", "POST", "/api/v1/orgs", `{"name":"demo"}`, http.StatusCreated}}
	for _, e := range envs {
		cs = append(cs, call{"create " + e, "POST", "/api/v1/orgs/demo/environments", `{"name":"` + e + `"}`, http.StatusCreated})
	}
	for _, c := range cs {
		if status, _, b := do(t, srv, c); status != c.ok {
			t.Fatalf("%s: %d %s", c.name, status, b)
		}
	}
}
