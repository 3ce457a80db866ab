package web

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ferry.dev/agent/apimsim"
	"ferry.dev/agent/internal/apim"
	"ferry.dev/agent/internal/authn"
	"ferry.dev/agent/internal/definition"
	"ferry.dev/agent/internal/task"
	"ferry.dev/agent/internal/taskstore"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

const (
	envDev  = "env_dev"
	envProd = "env_prod"
	apimEnv = "PROD"
	actor   = "Ada Lovelace (usr_ada)"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// hub is a small scripted hub for the task runner behind the API.
type hub struct {
	mu       sync.Mutex
	handlers map[protocol.Op]func(json.RawMessage) (any, error)
}

func (h *hub) Hello() *protocol.HelloReply {
	return &protocol.HelloReply{InstallationID: "inst_1", OrgID: "org_1", Environments: []protocol.Environment{{ID: envProd, Name: "Prod"}}}
}

func (h *hub) handle(op protocol.Op, f func(json.RawMessage) (any, error)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.handlers == nil {
		h.handlers = map[protocol.Op]func(json.RawMessage) (any, error){}
	}
	h.handlers[op] = f
}

func (h *hub) Call(ctx context.Context, op protocol.Op, body, out any) error {
	b, _ := json.Marshal(body)
	h.mu.Lock()
	f := h.handlers[op]
	h.mu.Unlock()
	if f == nil {
		return protocol.Errorf(protocol.CodeUnavailable, "not connected to the hub")
	}
	res, err := f(b)
	if err != nil {
		return err
	}
	if out != nil && res != nil {
		rb, _ := json.Marshal(res)
		return json.Unmarshal(rb, out)
	}
	return nil
}

type server struct {
	t      *testing.T
	url    string
	sim    *apimsim.Server
	hub    *hub
	runner *task.Runner
	store  *taskstore.Store
	auth   *authn.Verifier
	key    ed25519.PrivateKey
	logs   *syncBuffer
	// apimURL is the stand-in's management API base URL.
	apimURL string
	// tok is the session of the default user, an admin of Prod, sent with
	// every request that brings no credentials of its own.
	tok string
}

// serverOpts vary newServerWith.
type serverOpts struct {
	allowed []string // Config.AllowedHosts
	offline bool     // the agent never reached the hub: no session keys
}

func newServer(t *testing.T, allowed ...string) *server {
	t.Helper()
	return newServerWith(t, serverOpts{allowed: allowed})
}

func newServerWith(t *testing.T, o serverOpts) *server {
	t.Helper()
	sim := apimsim.New(apimsim.Options{})
	apimTS := httptest.NewServer(sim)
	t.Cleanup(apimTS.Close)
	client, err := apim.New(apim.Config{BaseURL: apimTS.URL + "/management/v2", EnvID: apimEnv, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	store, err := taskstore.Open(context.Background(), filepath.Join(t.TempDir(), taskstore.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h := &hub{}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	runner, err := task.New(task.Config{Store: store, APIM: client, Hub: h, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := authn.New(authn.Config{Store: store, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if !o.offline {
		hello := h.Hello()
		hello.SessionKeys = []string{session.EncodeKey(pub)}
		if err := auth.Learn(context.Background(), hello); err != nil {
			t.Fatal(err)
		}
	}
	status := func() Status {
		return Status{Link: "connected", HubReachable: true, InstallationID: "inst_1", OrgID: "org_1",
			Environments: []EnvironmentRef{{ID: envProd, Name: "Prod"}}, AgentVersion: "test"}
	}
	handler, err := New(Config{Service: runner, Status: status, Auth: auth, Logger: log, AllowedHosts: o.allowed})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(handler)
	t.Cleanup(ts.Close)
	s := &server{t: t, url: ts.URL, sim: sim, hub: h, runner: runner, store: store, auth: auth, key: key, logs: logs,
		apimURL: apimTS.URL + "/management/v2"}
	s.tok = s.sign(claims("usr_ada", "Ada Lovelace", time.Hour, perms{envProd: {session.EnvAPIRead, session.EnvAPICreate, session.EnvAPIUpdate, session.APIDefUpdate}}))
	t.Cleanup(func() {
		if strings.Contains(logs.String(), s.tok) {
			t.Error("a session token reached the log")
		}
	})
	return s
}

func sampleDef(t *testing.T) definition.Sanitized {
	t.Helper()
	raw, err := os.ReadFile("../../../../shared/reference/gravitee/samples/v4-http-proxy-with-members-groups-plans-pages-media.json")
	if err != nil {
		t.Fatal(err)
	}
	san, err := definition.Sanitize(raw, definition.StableCrossID(envDev, "api-id"))
	if err != nil {
		t.Fatal(err)
	}
	return san
}

func (s *server) deliver(id string) definition.Sanitized {
	s.t.Helper()
	san := sampleDef(s.t)
	b, _ := json.Marshal(protocol.Promotion{ID: id, SourceEnvID: envDev, SourceEnv: "Dev", TargetEnvID: envProd, TargetEnv: "Prod",
		APIID: "api-id", CrossID: san.CrossID, APIName: san.Name, Requester: "alice", Status: protocol.PromotionToBeValidated,
		CreatedAt: t0, UpdatedAt: t0, Definition: san.JSON})
	if _, err := s.runner.HandleDeliver(context.Background(), b); err != nil {
		s.t.Fatal(err)
	}
	return san
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; body is sent as JSON unless contentType says
// otherwise ("-" sends no Content-Type). hdr are header name/value pairs
// ("Host" sets the request's host); without an Authorization or Cookie
// among them the default user's session is sent as a bearer token, and an
// empty value sends that header not at all.
func (s *server) do(method, path, contentType string, body io.Reader, hdr ...string) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if contentType != "-" {
		req.Header.Set("Content-Type", contentType)
	}
	credentials := false
	for i := 0; i+1 < len(hdr); i += 2 {
		switch hdr[i] {
		case "Host":
			req.Host = hdr[i+1]
			continue
		case "Authorization", "Cookie":
			credentials = true
		}
		if hdr[i+1] != "" {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	if !credentials {
		req.Header.Set("Authorization", "Bearer "+s.tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(b), s.tok) {
		s.t.Errorf("%s %s answered with the session token", method, path)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (s *server) get(path string) response { return s.do(http.MethodGet, path, "-", nil) }

func (s *server) post(path, body string) response {
	return s.do(http.MethodPost, path, "application/json", strings.NewReader(body))
}

// wantProblem checks a problem+json answer's status and code.
func wantProblem(t *testing.T, r response, status int, code string) Problem {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	if p.Code != code || p.Status != status || p.Type == "" || p.Title == "" {
		t.Errorf("problem = %+v, want code %s status %d", p, code, status)
	}
	return p
}

func decodeBody[T any](t *testing.T, r response, status int) T {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var v T
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

func TestTaskAcceptFlow(t *testing.T) {
	s := newServer(t)
	san := s.deliver("prm_1")

	list := decodeBody[List[Task]](t, s.get("/api/v1/tasks"), http.StatusOK)
	if len(list.Items) != 1 || list.Items[0].ID != "prm_1" || list.Items[0].State != "PENDING" || list.Items[0].CrossID != san.CrossID {
		t.Fatalf("tasks = %+v", list)
	}
	detail := decodeBody[TaskDetail](t, s.get("/api/v1/tasks/prm_1"), http.StatusOK)
	if detail.Plan == nil || detail.Plan.Action != "create" || len(detail.Definition) == 0 || detail.SourceEnvName != "Dev" {
		t.Errorf("detail = %+v", detail)
	}
	var def map[string]any
	if err := json.Unmarshal(detail.Definition, &def); err != nil || def["api"] == nil {
		t.Errorf("definition is not the export: %v", err)
	}

	wantProblem(t, s.do(http.MethodPost, "/api/v1/tasks/prm_1/_accept", "-", nil), http.StatusUnsupportedMediaType, "unsupported_media_type")
	wantProblem(t, s.do(http.MethodPost, "/api/v1/tasks/prm_1/_accept", "text/plain", strings.NewReader("{}")), http.StatusUnsupportedMediaType, "unsupported_media_type")
	wantProblem(t, s.post("/api/v1/tasks/prm_1/_accept", `{"force":true}`), http.StatusBadRequest, "invalid")

	d := decodeBody[Decision](t, s.post("/api/v1/tasks/prm_1/_accept", ""), http.StatusOK)
	apis := s.sim.APIs(apimEnv)
	if len(apis) != 1 {
		t.Fatalf("APIM holds %d APIs", len(apis))
	}
	want := Decision{PromotionID: "prm_1", Outcome: "ACCEPTED", Actor: actor, TargetAPIID: apis[0].ID, Created: true, DecidedAt: d.DecidedAt, Report: "PENDING"}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("decision (-want +got):\n%s", diff)
	}
	if list := decodeBody[List[Task]](t, s.get("/api/v1/tasks"), http.StatusOK); len(list.Items) != 0 {
		t.Errorf("pending tasks after accept: %+v", list.Items)
	}
	detail = decodeBody[TaskDetail](t, s.get("/api/v1/tasks/prm_1"), http.StatusOK)
	if detail.State != "DECIDED" || detail.Decision == nil || detail.Decision.TargetAPIID != apis[0].ID || detail.Plan != nil {
		t.Errorf("decided task = %+v", detail)
	}

	wantProblem(t, s.post("/api/v1/tasks/prm_1/_accept", "{}"), http.StatusConflict, "invalid_state")
	wantProblem(t, s.post("/api/v1/tasks/prm_1/_reject", "{}"), http.StatusConflict, "invalid_state")
	wantProblem(t, s.get("/api/v1/tasks/prm_404"), http.StatusNotFound, "not_found")
	wantProblem(t, s.post("/api/v1/tasks/prm_404/_accept", ""), http.StatusNotFound, "not_found")
	wantProblem(t, s.post("/api/v1/tasks/prm_404/_reject", ""), http.StatusNotFound, "not_found")
	wantProblem(t, s.get("/api/v1/tasks/bad%20id"), http.StatusBadRequest, "invalid")

	// A second promotion of the same API announces an update.
	s.deliver("prm_2")
	detail = decodeBody[TaskDetail](t, s.get("/api/v1/tasks/prm_2"), http.StatusOK)
	if detail.Plan == nil || detail.Plan.Action != "update" || detail.Plan.ExistingAPIID != apis[0].ID || detail.Plan.MatchedBy != "crossId" {
		t.Errorf("plan = %+v", detail.Plan)
	}
}

func TestReject(t *testing.T) {
	s := newServer(t)
	s.deliver("prm_1")
	big := `{"reason":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	tests := []struct {
		name, body string
		status     int
		code       string
	}{
		{"unknown field", `{"reason":"no","status":"ACCEPTED"}`, http.StatusBadRequest, "invalid"},
		{"malformed", `{"reason":`, http.StatusBadRequest, "invalid"},
		{"two objects", `{} {}`, http.StatusBadRequest, "invalid"},
		{"not an object", `["no"]`, http.StatusBadRequest, "invalid"},
		{"too large", big, http.StatusRequestEntityTooLarge, "too_large"},
		{"reason too long", `{"reason":"` + strings.Repeat("x", 1025) + `"}`, http.StatusBadRequest, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, s.post("/api/v1/tasks/prm_1/_reject", tt.body), tt.status, tt.code)
		})
	}
	d := decodeBody[Decision](t, s.post("/api/v1/tasks/prm_1/_reject", `{"reason":"not this week"}`), http.StatusOK)
	if d.Outcome != "REJECTED" || d.Reason != "not this week" || d.Actor != actor || d.Created || d.TargetAPIID != "" {
		t.Errorf("decision = %+v", d)
	}
	if n := len(s.sim.APIs(apimEnv)); n != 0 {
		t.Errorf("reject created %d APIs", n)
	}
	if list := decodeBody[List[Task]](t, s.get("/api/v1/tasks"), http.StatusOK); len(list.Items) != 0 {
		t.Errorf("pending tasks after reject: %+v", list.Items)
	}
}

func TestPromote(t *testing.T) {
	s := newServer(t)
	src, err := s.sim.Import(apimEnv, sampleDef(t).JSON)
	if err != nil {
		t.Fatal(err)
	}
	s.hub.handle(protocol.OpListTargets, func(json.RawMessage) (any, error) {
		return protocol.TargetList{SourceEnvID: envProd, Targets: []protocol.Target{{Environment: protocol.Environment{ID: envDev, Name: "Dev"}, Online: true}}}, nil
	})
	var req protocol.PromotionRequest
	s.hub.handle(protocol.OpRequestPromotion, func(b json.RawMessage) (any, error) {
		_ = json.Unmarshal(b, &req)
		return protocol.Promotion{ID: "prm_7", OrgID: "org_1", SourceEnvID: req.SourceEnvID, TargetEnvID: req.TargetEnvID, TargetEnv: "Dev",
			APIID: req.API.APIID, CrossID: req.API.CrossID, APIName: req.API.Name, Requester: req.Requester,
			Status: protocol.PromotionCreated, CreatedAt: t0, UpdatedAt: t0}, nil
	})

	targets := decodeBody[Targets](t, s.get("/api/v1/promotion-targets"), http.StatusOK)
	if diff := cmp.Diff(Targets{SourceEnvID: envProd, Items: []Target{{ID: envDev, Name: "Dev", Online: true}}}, targets); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	p := decodeBody[Promotion](t, s.post("/api/v1/apis/"+src.ID+"/_promote", `{"targetEnv":"dev"}`), http.StatusCreated)
	if p.ID != "prm_7" || p.Status != "CREATED" || p.Direction != "outgoing" || p.CrossID != src.CrossID || p.Requester != actor {
		t.Errorf("promotion = %+v", p)
	}
	if req.TargetEnvID != envDev || req.SourceEnvID != envProd || req.API.APIID != src.ID || req.Requester != actor || req.Session != s.tok {
		t.Errorf("request sent to the hub = %+v", req)
	}
	list := decodeBody[List[Promotion]](t, s.get("/api/v1/promotions"), http.StatusOK)
	if len(list.Items) != 1 || list.Items[0].ID != "prm_7" {
		t.Errorf("promotions = %+v", list)
	}
	if list := decodeBody[List[Promotion]](t, s.get("/api/v1/promotions?status=ACCEPTED"), http.StatusOK); len(list.Items) != 0 {
		t.Errorf("promotions?status=ACCEPTED = %+v", list)
	}
	wantProblem(t, s.get("/api/v1/promotions?status=DONE"), http.StatusBadRequest, "invalid")

	wantProblem(t, s.post("/api/v1/apis/"+src.ID+"/_promote", `{}`), http.StatusBadRequest, "invalid")
	wantProblem(t, s.post("/api/v1/apis/"+src.ID+"/_promote", `{"targetEnv":"Dev","apiId":"x"}`), http.StatusBadRequest, "invalid")
	wantProblem(t, s.post("/api/v1/apis/"+src.ID+"/_promote", `{"targetEnv":"Mars"}`), http.StatusNotFound, "not_found")
	wantProblem(t, s.post("/api/v1/apis/missing/_promote", `{"targetEnv":"Dev"}`), http.StatusNotFound, "not_found")

	s.hub.handle(protocol.OpRequestPromotion, func(json.RawMessage) (any, error) {
		return nil, &protocol.Error{Code: protocol.CodeConflict, Message: "this API already has an active promotion to that environment (prm_7); accept, reject or cancel it first", Ref: "prm_7"}
	})
	pr := wantProblem(t, s.post("/api/v1/apis/"+src.ID+"/_promote", `{"targetEnv":"Dev"}`), http.StatusConflict, "conflict")
	if pr.ActiveID != "prm_7" {
		t.Errorf("activeId = %q, want prm_7", pr.ActiveID)
	}
	s.hub.handle(protocol.OpRequestPromotion, func(json.RawMessage) (any, error) {
		return nil, protocol.Errorf(protocol.CodeDisconnected, "link closed before the hub answered")
	})
	r := s.post("/api/v1/apis/"+src.ID+"/_promote", `{"targetEnv":"Dev"}`)
	wantProblem(t, r, http.StatusServiceUnavailable, "disconnected")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	s.hub.handle(protocol.OpListTargets, nil)
	wantProblem(t, s.get("/api/v1/promotion-targets"), http.StatusServiceUnavailable, "unavailable")
}

func TestAPIs(t *testing.T) {
	s := newServer(t)
	src, err := s.sim.Import(apimEnv, sampleDef(t).JSON)
	if err != nil {
		t.Fatal(err)
	}
	list := decodeBody[List[API]](t, s.get("/api/v1/apis"), http.StatusOK)
	if len(list.Items) != 1 {
		t.Fatalf("apis = %+v", list)
	}
	got := list.Items[0]
	if got.ID != src.ID || got.Name != "My Api" || got.Version != "1.0.0" || got.CrossID != src.CrossID || got.DefinitionVersion != "V4" {
		t.Errorf("api = %+v", got)
	}
	one := decodeBody[API](t, s.get("/api/v1/apis/"+src.ID), http.StatusOK)
	if one.ID != src.ID {
		t.Errorf("api = %+v", one)
	}
	wantProblem(t, s.get("/api/v1/apis/missing"), http.StatusNotFound, "not_found")
	s.sim.FailNext(1, http.StatusInternalServerError)
	wantProblem(t, s.get("/api/v1/apis"), http.StatusBadGateway, "upstream")
}

func TestStatus(t *testing.T) {
	s := newServer(t)
	st := decodeBody[Status](t, s.get("/api/v1/status"), http.StatusOK)
	if st.Link != "connected" || !st.HubReachable || st.InstallationID != "inst_1" || len(st.Environments) != 1 {
		t.Errorf("status = %+v", st)
	}
}

func TestRoutingAndGuards(t *testing.T) {
	s := newServer(t, "127.0.0.1", "localhost")
	wantProblem(t, s.get("/api/v1/nope"), http.StatusNotFound, "not_found")
	r := s.do(http.MethodDelete, "/api/v1/tasks/prm_1", "-", nil)
	wantProblem(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
	if r.header.Get("Allow") != "GET" {
		t.Errorf("Allow = %q, want GET", r.header.Get("Allow"))
	}
	wantProblem(t, s.do(http.MethodGet, "/api/v1/tasks/prm_1/_accept", "-", nil), http.StatusMethodNotAllowed, "method_not_allowed")
	wantProblem(t, s.do(http.MethodGet, "/api/v1/tasks", "-", nil, "Host", "evil.example:8090"), http.StatusForbidden, "forbidden")
	wantProblem(t, s.do(http.MethodPost, "/api/v1/tasks/prm_1/_accept", "application/json", nil, "Origin", "https://evil.example"), http.StatusForbidden, "forbidden")
	if r := s.do(http.MethodGet, "/api/v1/tasks", "-", nil, "Origin", s.url); r.status != http.StatusOK {
		t.Errorf("same-origin request = %d %s", r.status, r.body)
	}
	if r := s.do(http.MethodGet, "/api/v1/tasks", "-", nil, "Host", "localhost:1"); r.status != http.StatusOK {
		t.Errorf("localhost request = %d %s", r.status, r.body)
	}
}
