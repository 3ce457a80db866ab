package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/hub/internal/api"
	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/authz"
	"ferry.dev/hub/internal/fleet"
	"ferry.dev/hub/internal/link"
	"ferry.dev/hub/internal/promotion"
	"ferry.dev/hub/internal/state"
	"ferry.dev/hub/internal/store"
	"ferry.dev/shared/protocol"
)

// testAdminToken is the platform admin's token in these tests.
const testAdminToken = "test-platform-admin-token"

// cheapArgon2 keeps password hashing fast in tests.
var cheapArgon2 = auth.Argon2Params{Memory: 64, Time: 1, Threads: 1}

// clock is a settable clock; zero offset is the real time.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time           { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration)  { c.offset.Add(int64(d)) }
func (c *clock) set(offset time.Duration) { c.offset.Store(int64(offset)) }

// exporter is the fake dispatcher: every agent is online, an export of API
// "api-<x>" answers crossId <x>, and every other command succeeds.
type exporter struct {
	mu    sync.Mutex
	calls []protocol.Op
}

var _ promotion.Dispatcher = (*exporter)(nil)

func (e *exporter) CallEnv(_ context.Context, envID string, op protocol.Op, body, out any) error {
	e.mu.Lock()
	e.calls = append(e.calls, op)
	e.mu.Unlock()
	if op != protocol.OpExportAPI {
		return nil
	}
	req := body.(protocol.ExportRequest)
	cross, ok := strings.CutPrefix(req.APIID, "api-")
	if !ok {
		return protocol.Errorf(protocol.CodeNotFound, "no such API")
	}
	api := out.(*protocol.ExportedAPI)
	*api = protocol.ExportedAPI{APIID: req.APIID, CrossID: cross, Name: "API " + cross, Version: "1", Definition: json.RawMessage(`{"api":{}}`)}
	return nil
}

func (e *exporter) Online(string) bool { return true }

func (e *exporter) exports() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, op := range e.calls {
		if op == protocol.OpExportAPI {
			n++
		}
	}
	return n
}

// noPresence says no installation is connected.
type noPresence struct{}

func (noPresence) LastSeen(string) (time.Time, bool) { return time.Time{}, false }

func (noPresence) Disconnect(string, int, string) {}

func (noPresence) Call(_ context.Context, id string, _ protocol.Op, _, _ any) error {
	return protocol.Errorf(protocol.CodeUnavailable, "installation "+id+" is not connected")
}

// testHub is the hub's REST API, link operations, promotion workflow, audit
// trail and authority on a real SQLite store, in process.
type testHub struct {
	t     *testing.T
	url   string
	store state.Store
	auth  *authz.Authority
	svc   *promotion.Service
	trail *audit.Trail
	ops   *linkOps
	fleet *fleet.Fleet
	disp  *exporter
	clock *clock
	api   *api.API
}

// newTestHub starts the hub; opts adjust the API's dependencies (limits).
func newTestHub(t *testing.T, opts ...func(*api.Deps)) *testHub {
	t.Helper()
	ctx := t.Context()
	// The options may set the logger every component gets.
	pre := api.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range opts {
		o(&pre)
	}
	log := pre.Logger
	reg := prometheus.NewRegistry()
	st, err := store.OpenSQLite(ctx, t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &testHub{t: t, store: st, disp: &exporter{}, clock: &clock{}}
	if h.auth, err = authz.Open(ctx, st, log, authz.Options{Now: h.clock.now}); err != nil {
		t.Fatal(err)
	}
	if h.trail, err = audit.New(st, log, reg, h.clock.now); err != nil {
		t.Fatal(err)
	}
	if h.svc, err = promotion.New(st, h.disp, h.trail, log, reg, promotion.Options{Now: h.clock.now}); err != nil {
		t.Fatal(err)
	}
	if h.fleet, err = fleet.New(st, noPresence{}, log, reg, fleet.Options{HubVersion: "test", SessionKeys: h.auth.PublicKeys(), Now: h.clock.now}); err != nil {
		t.Fatal(err)
	}
	h.ops = &linkOps{svc: h.svc, auth: h.auth, users: st, audit: h.trail, log: log}
	deps := api.Deps{
		Store: st, Fleet: h.fleet, Promotions: h.svc, Audit: h.trail, Authority: h.auth,
		Link: http.NotFoundHandler(), Metrics: http.NotFoundHandler(), Logger: log, Argon2: cheapArgon2,
	}
	for _, o := range opts {
		o(&deps)
	}
	a, err := api.New(deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAPIToken(ctx, state.APIToken{ID: "tok_admin", Hash: auth.Hash(testAdminToken), Name: "platform admin"}); err != nil {
		t.Fatal(err)
	}
	h.api = a
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// do makes a REST call and decodes a 2xx answer into out (when not nil);
// it returns the status and the raw body.
func (h *testHub) do(token, method, path string, body, out any) (int, string) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method == "POST" {
		// Creating a promotion requires a key; each call is a new request.
		req.Header.Set("Idempotency-Key", newIdempotencyKey())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, string(b)
}

// newIdempotencyKey is a fresh Idempotency-Key.
func newIdempotencyKey() string { return rand.Text() }

// must makes a REST call that must answer want.
func (h *testHub) must(want int, token, method, path string, body, out any) {
	h.t.Helper()
	if st, b := h.do(token, method, path, body, out); st != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, want, b)
	}
}

// org is an organization with three environments.
type org struct {
	ID, Name string
	Env      map[string]state.Environment // by name: Dev, QA, Prod
}

func (h *testHub) newOrg(name string) org {
	h.t.Helper()
	var o struct{ ID string }
	h.must(http.StatusCreated, testAdminToken, "POST", "/api/v1/orgs", map[string]string{"name": name}, &o)
	out := org{ID: o.ID, Name: name, Env: map[string]state.Environment{}}
	for _, e := range []string{"Dev", "QA", "Prod"} {
		var env struct{ ID string }
		h.must(http.StatusCreated, testAdminToken, "POST", "/api/v1/orgs/"+name+"/environments", map[string]string{"name": e}, &env)
		out.Env[e] = state.Environment{ID: env.ID, OrgID: o.ID, Name: e}
	}
	return out
}

// peer is the installation serving env.
func (o org) peer(env string) link.Peer {
	return link.Peer{InstallationID: "ins_" + o.Name + "_" + env, OrgID: o.ID, EnvIDs: []string{o.Env[env].ID}}
}

// binding is a role binding request.
type binding struct {
	Scope, Env, CrossID, Role string
}

// user is a user with a password, a personal access token and a session.
type user struct {
	ID, Username, Password string
	PAT, Session           string
}

// newUser creates a user with bindings, a token and a session, as the
// platform admin.
func (h *testHub) newUser(o org, username string, bindings ...binding) user {
	h.t.Helper()
	u := user{Username: username, Password: "pw-" + username + "-0123456789"}
	var dto struct{ ID string }
	h.must(http.StatusCreated, testAdminToken, "POST", "/api/v1/orgs/"+o.Name+"/users",
		map[string]string{"username": username, "password": u.Password, "displayName": "The " + username}, &dto)
	u.ID = dto.ID
	for _, b := range bindings {
		h.must(http.StatusCreated, testAdminToken, "POST", "/api/v1/orgs/"+o.Name+"/role-bindings",
			map[string]string{"userId": u.ID, "scope": b.Scope, "env": b.Env, "crossId": b.CrossID, "role": b.Role}, nil)
	}
	var tok struct{ Token string }
	h.must(http.StatusCreated, testAdminToken, "POST", "/api/v1/orgs/"+o.Name+"/tokens", map[string]string{"userId": u.ID, "name": "pat"}, &tok)
	u.PAT = tok.Token
	u.Session = h.signIn(o, u)
	return u
}

// signIn gets a session with the user's password.
func (h *testHub) signIn(o org, u user) string {
	h.t.Helper()
	var s struct {
		Token     string
		ExpiresAt time.Time
	}
	h.must(http.StatusOK, "", "POST", "/api/v1/auth/session", map[string]string{"org": o.Name, "username": u.Username, "password": u.Password}, &s)
	return s.Token
}

// fixture creates an undecided promotion Dev → target of API crossID,
// requested by requester (a user id, may be empty), straight through the
// workflow.
func (h *testHub) fixture(o org, target, crossID, requesterID, requesterName string) state.Promotion {
	h.t.Helper()
	p, err := h.svc.Create(h.t.Context(), promotion.Request{
		OrgID: o.ID, SourceEnvID: o.Env["Dev"].ID, TargetEnvID: o.Env[target].ID,
		By:  promotion.Caller{Name: requesterName, UserID: requesterID, Trusted: true},
		API: protocol.ExportedAPI{APIID: "api-" + crossID, CrossID: crossID, Name: "API " + crossID, Definition: json.RawMessage(`{}`)},
	})
	if err != nil {
		h.t.Fatalf("fixture promotion: %v", err)
	}
	return p
}

// cancelActive cancels every undecided promotion (of o, in practice), so that the next
// request for the same API is not a conflict.
func (h *testHub) cancelActive(o org) {
	h.t.Helper()
	ps, err := h.store.ListPromotions(h.t.Context(), state.PromotionFilter{Status: undecided, Limit: 1000})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, p := range ps {
		h.end(p.ID)
	}
}

// end cancels promotion id unless it is decided.
func (h *testHub) end(id string) {
	h.t.Helper()
	_, err := h.store.UpdatePromotion(h.t.Context(), id, state.PromotionUpdate{From: undecided, To: protocol.PromotionCancelled})
	if err != nil && !errors.Is(err, state.ErrConflict) {
		h.t.Fatal(err)
	}
}

// snapshot is what a refused action must not change. Every promotion a
// request creates is undecided, and every decision or cancel ends one, so
// the undecided promotions (with their statuses) stand for all of them.
type snapshot struct {
	Undecided                        string // ids and statuses
	Users, Tokens, Revoked, Bindings int
	Audit                            int
	LastAudit                        state.AuditEntry
}

func (h *testHub) snapshot(o org) snapshot {
	h.t.Helper()
	ctx := h.t.Context()
	s := h.auditMark(o)
	// By status alone, which the status index serves (both organizations'
	// undecided promotions: a change in either shows).
	ps, err1 := h.store.ListPromotions(ctx, state.PromotionFilter{Status: undecided, Limit: 1000})
	us, err2 := h.store.ListUsers(ctx, o.ID)
	ts, err3 := h.store.ListAPITokens(ctx, o.ID, "")
	bs, err4 := h.store.ListRoleBindings(ctx, state.RoleBindingFilter{OrgID: o.ID})
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			h.t.Fatal(err)
		}
	}
	s.Users, s.Tokens, s.Bindings = len(us), len(ts), len(bs)
	for _, p := range ps {
		s.Undecided += p.ID + "=" + string(p.Status) + " "
	}
	for _, t := range ts {
		if !t.RevokedAt.IsZero() {
			s.Revoked++
		}
	}
	return s
}

// auditMark is a snapshot of the audit trail only: every change the hub
// makes is audited, so a refusal that added nothing but its ACCESS_DENIED
// entry changed nothing. It is the cheap check of the matrix's repeated
// cells.
func (h *testHub) auditMark(o org) snapshot {
	h.t.Helper()
	var s snapshot
	last, err := h.store.LastAudit(h.t.Context(), o.ID)
	if err == nil {
		s.Audit, s.LastAudit = int(last.Seq), last
	}
	return s
}

var undecided = []protocol.PromotionStatus{protocol.PromotionCreated, protocol.PromotionToBeValidated}

// audits returns o's audit entries after seq.
func (h *testHub) audits(o org, after int) []state.AuditEntry {
	h.t.Helper()
	es, err := h.store.ListAudit(h.t.Context(), state.AuditFilter{OrgID: o.ID, AfterSeq: int64(after), Limit: 1000})
	if err != nil {
		h.t.Fatal(err)
	}
	return es
}

// checkRefused checks that nothing but one ACCESS_DENIED entry by actor
// changed between before and now (none when actor is empty: a 404 for
// another organization leaves o's trail alone).
func (h *testHub) checkRefused(t *testing.T, o org, before snapshot, actor string, full bool) {
	t.Helper()
	after := h.auditMark(o)
	if full {
		after = h.snapshot(o)
	}
	wantAudit := before.Audit
	if actor != "" {
		wantAudit++
	}
	got, want := after, before
	got.Audit, got.LastAudit, want.LastAudit = 0, state.AuditEntry{}, state.AuditEntry{}
	want.Audit = 0
	if got != want {
		t.Errorf("refused, yet the organization changed: before %+v, after %+v", want, got)
	}
	if after.Audit != wantAudit {
		t.Errorf("audit entries went from %d to %d, want %d", before.Audit, after.Audit, wantAudit)
		for _, e := range h.audits(o, before.Audit) {
			t.Logf("  %d %s %s %s", e.Seq, e.Event, e.Actor, e.Detail)
		}
		return
	}
	if actor != "" {
		e := after.LastAudit
		if e.Event != audit.AccessDenied || e.Actor != actor || e.Detail == "" {
			t.Errorf("audit entry = %s by %s (%q), want %s by %s", e.Event, e.Actor, e.Detail, audit.AccessDenied, actor)
		}
	}
}

// linkCall runs a link operation as the installation p and maps the result
// to an HTTP-like status (200, or the error code's status) for tables.
func linkStatus(err error) int {
	if err == nil {
		return http.StatusOK
	}
	switch protocol.CodeOf(err) {
	case protocol.CodeForbidden:
		return http.StatusForbidden
	case protocol.CodeNotFound:
		return http.StatusNotFound
	case protocol.CodeConflict:
		return http.StatusConflict
	case protocol.CodeInvalid:
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// request asks for a promotion of API crossID over the link, from o's Dev
// installation to target, with a session.
func (h *testHub) linkRequest(o org, target, crossID, session string) error {
	body, _ := json.Marshal(protocol.PromotionRequest{
		API:         protocol.ExportedAPI{APIID: "api-" + crossID, CrossID: crossID, Name: "API " + crossID, Definition: json.RawMessage(`{}`)},
		SourceEnvID: o.Env["Dev"].ID, TargetEnvID: o.Env[target].ID, Requester: "someone", Session: session,
	})
	_, err := h.ops.request(h.t.Context(), o.peer("Dev"), body)
	return err
}

// linkDecide reports a decision over the link from the target's
// installation.
func (h *testHub) linkDecide(o org, p state.Promotion, target string, outcome protocol.DecisionOutcome, session string, decidedAt time.Time) error {
	d := protocol.Decision{PromotionID: p.ID, Outcome: outcome, Actor: "agent-said", DecidedAt: decidedAt, Session: session}
	if outcome == protocol.OutcomeAccepted {
		d.TargetAPIID, d.Created = "target-api", true
	}
	body, _ := json.Marshal(d)
	_, err := h.ops.decide(h.t.Context(), o.peer(target), body)
	return err
}

// promotionStatus reads a promotion's status from the store.
func (h *testHub) promotionStatus(id string) protocol.PromotionStatus {
	h.t.Helper()
	p, err := h.store.Promotion(h.t.Context(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return p.Status
}

// seq makes unique names within a test.
type seq struct{ n atomic.Int64 }

func (s *seq) next(prefix string) string { return fmt.Sprintf("%s%d", prefix, s.n.Add(1)) }
