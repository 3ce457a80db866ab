package web

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"ferry.dev/agent/internal/taskstore"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

type perms = map[string][]session.Permission

// claims are a session of user id in the tests' organization, valid for
// ttl from now (negative: expired that long ago).
func claims(id, name string, ttl time.Duration, env perms) session.Claims {
	now := time.Now()
	return session.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: id, IssuedAt: jwt.NewNumericDate(now.Add(-time.Hour)), ExpiresAt: jwt.NewNumericDate(now.Add(ttl))},
		Org:              "org_1", Name: name, Env: env,
	}
}

// sign signs c with the hub's key.
func (s *server) sign(c session.Claims) string { return signWith(s.t, c, s.key) }

func signWith(t *testing.T, c session.Claims, key ed25519.PrivateKey) string {
	t.Helper()
	tok, err := session.Sign(c, key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// protected are the routes that need a session.
var protected = []struct{ method, path, body string }{
	{http.MethodGet, "/api/v1/session", ""},
	{http.MethodGet, "/api/v1/apis", ""},
	{http.MethodGet, "/api/v1/apis/api-1", ""},
	{http.MethodPost, "/api/v1/apis/api-1/_promote", `{"targetEnv":"Dev"}`},
	{http.MethodGet, "/api/v1/promotion-targets", ""},
	{http.MethodGet, "/api/v1/promotions", ""},
	{http.MethodGet, "/api/v1/tasks", ""},
	{http.MethodGet, "/api/v1/tasks/prm_1", ""},
	{http.MethodPost, "/api/v1/tasks/prm_1/_accept", "{}"},
	{http.MethodPost, "/api/v1/tasks/prm_1/_reject", "{}"},
}

// TestAuthentication: every route but status needs a valid session of the
// agent's organization, signed by the hub's key and not expired.
func TestAuthentication(t *testing.T) {
	s := newServer(t)
	s.deliver("prm_1")
	_, otherKey, _ := ed25519.GenerateKey(nil)
	admin := perms{envProd: {session.EnvAPIRead, session.EnvAPICreate, session.EnvAPIUpdate}}
	otherOrg := claims("usr_ada", "Ada", time.Hour, admin)
	otherOrg.Org = "org_2"
	bad := map[string][]string{
		"no credentials":   {"Authorization", ""},
		"garbage":          bearer("garbage"),
		"not bearer":       {"Authorization", "Basic dXNlcjpwYXNz"},
		"empty bearer":     {"Authorization", "Bearer "},
		"expired":          bearer(s.sign(claims("usr_ada", "Ada", -2*session.Leeway, admin))),
		"forged":           bearer(signWith(t, claims("usr_ada", "Ada", time.Hour, admin), otherKey)),
		"other org":        bearer(s.sign(otherOrg)),
		"tampered":         bearer(s.tok[:len(s.tok)-3] + "AAA"),
		"garbage cookie":   {"Cookie", CookieName + "=garbage"},
		"expired cookie":   {"Cookie", CookieName + "=" + s.sign(claims("usr_ada", "Ada", -2*session.Leeway, admin))},
		"header over good": {"Authorization", "Bearer garbage", "Cookie", CookieName + "=" + s.tok},
	}
	for name, hdr := range bad {
		t.Run(name, func(t *testing.T) {
			for _, rt := range protected {
				r := s.do(rt.method, rt.path, "application/json", strings.NewReader(rt.body), hdr...)
				p := wantProblem(t, r, http.StatusUnauthorized, "unauthorized")
				if !strings.Contains(p.Detail, "POST /api/v1/auth/session") {
					t.Errorf("%s %s: detail %q does not say how to sign in", rt.method, rt.path, p.Detail)
				}
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s %s: WWW-Authenticate = %q", rt.method, rt.path, r.header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	if r := s.do(http.MethodGet, "/api/v1/status", "-", nil, "Authorization", ""); r.status != http.StatusOK {
		t.Errorf("status without a session = %d", r.status)
	}
	// Nothing was decided by all of that.
	if task, err := s.store.Task(context.Background(), "prm_1"); err != nil || task.State != taskstore.StatePending {
		t.Errorf("task = %+v, %v", task, err)
	}
	// A valid session is taken from the header or the cookie.
	for _, hdr := range [][]string{bearer(s.tok), {"Authorization", "bearer " + s.tok}, {"Cookie", CookieName + "=" + s.tok}} {
		if r := s.do(http.MethodGet, "/api/v1/tasks", "-", nil, hdr...); r.status != http.StatusOK {
			t.Errorf("%s: %d %s", hdr[0], r.status, r.body)
		}
	}
}

// TestNotConnectedYet: an agent that never reached the hub has no keys and
// says so with 503, not 401.
func TestNotConnectedYet(t *testing.T) {
	s := newServerWith(t, serverOpts{offline: true})
	r := s.get("/api/v1/tasks")
	p := wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
	if !strings.Contains(p.Detail, "not reached the hub") || r.header.Get("Retry-After") == "" {
		t.Errorf("problem = %+v, Retry-After %q", p, r.header.Get("Retry-After"))
	}
	if r := s.get("/api/v1/status"); r.status != http.StatusOK {
		t.Errorf("status = %d", r.status)
	}
}

// TestPermissions: each route's permission is checked before anything
// changes; refusals are 403 naming what is missing, and logged.
func TestPermissions(t *testing.T) {
	s := newServer(t)
	san := s.deliver("prm_1")
	src, err := s.sim.Import(apimEnv, san.JSON)
	if err != nil {
		t.Fatal(err)
	}
	reader := bearer(s.sign(claims("usr_rita", "Rita", time.Hour, perms{envProd: {session.EnvAPIRead}})))
	devAdmin := bearer(s.sign(claims("usr_dora", "Dora", time.Hour, perms{envDev: {session.EnvAPIRead, session.EnvAPICreate, session.EnvAPIUpdate, session.APIDefUpdate}})))
	before := s.sim.Hits("createApiWithImportDefinition") + s.sim.Hits("updateApiWithDefinition")

	tests := []struct {
		name, method, path, body string
		hdr                      []string
		detail                   string
	}{
		{"reader accepts", http.MethodPost, "/api/v1/tasks/prm_1/_accept", "", reader, "needs ENVIRONMENT_API[CREATE,UPDATE] on Prod"},
		{"reader rejects", http.MethodPost, "/api/v1/tasks/prm_1/_reject", `{"reason":"no"}`, reader, "needs ENVIRONMENT_API[CREATE,UPDATE] on Prod"},
		{"reader promotes", http.MethodPost, "/api/v1/apis/" + src.ID + "/_promote", `{"targetEnv":"Dev"}`, reader,
			"needs API_DEFINITION[UPDATE] on API " + san.Name + " (crossId " + san.CrossID + ") in Prod"},
		{"dev admin lists tasks", http.MethodGet, "/api/v1/tasks", "", devAdmin, "needs ENVIRONMENT_API[READ] on Prod"},
		{"dev admin reads a task", http.MethodGet, "/api/v1/tasks/prm_1", "", devAdmin, "needs ENVIRONMENT_API[READ] on Prod"},
		{"dev admin lists APIs", http.MethodGet, "/api/v1/apis", "", devAdmin, "needs ENVIRONMENT_API[READ] on Prod"},
		{"dev admin reads an API", http.MethodGet, "/api/v1/apis/" + src.ID, "", devAdmin, "needs ENVIRONMENT_API[READ] on Prod"},
		{"dev admin lists promotions", http.MethodGet, "/api/v1/promotions", "", devAdmin, "needs ENVIRONMENT_API[READ] on Prod"},
		{"dev admin accepts", http.MethodPost, "/api/v1/tasks/prm_1/_accept", "", devAdmin, "needs ENVIRONMENT_API[CREATE,UPDATE] on Prod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := wantProblem(t, s.do(tt.method, tt.path, "application/json", strings.NewReader(tt.body), tt.hdr...), http.StatusForbidden, "forbidden")
			if p.Detail != tt.detail {
				t.Errorf("detail = %q, want %q", p.Detail, tt.detail)
			}
		})
	}
	// Nothing changed: no import, no hub call, the task is still pending.
	if n := s.sim.Hits("createApiWithImportDefinition") + s.sim.Hits("updateApiWithDefinition"); n != before {
		t.Errorf("APIM received %d imports after refusals", n-before)
	}
	if task, err := s.store.Task(context.Background(), "prm_1"); err != nil || task.State != taskstore.StatePending || task.Actor != "" {
		t.Errorf("task after refusals = %+v, %v", task, err)
	}
	if ds, _ := s.store.Unreported(context.Background()); len(ds) != 0 {
		t.Errorf("decisions after refusals: %+v", ds)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, `level=WARN msg="permission refused" component=web user=usr_rita method=POST route="POST /api/v1/tasks/{id}/_accept"`) {
		t.Errorf("the refusal was not logged with user and route:\n%s", logs)
	}
	// A reader may read; anybody signed in may list the targets.
	if r := s.do(http.MethodGet, "/api/v1/tasks/prm_1", "-", nil, reader...); r.status != http.StatusOK {
		t.Errorf("reader reads a task: %d %s", r.status, r.body)
	}
	s.hub.handle(protocol.OpListTargets, nil)
	if r := s.do(http.MethodGet, "/api/v1/promotion-targets", "-", nil, devAdmin...); r.status == http.StatusForbidden || r.status == http.StatusUnauthorized {
		t.Errorf("targets for a signed-in user: %d %s", r.status, r.body)
	}
	// The right permission decides; the decision names the user.
	d := decodeBody[Decision](t, s.post("/api/v1/tasks/prm_1/_reject", `{"reason":"not now"}`), http.StatusOK)
	if d.Actor != actor || d.Outcome != "REJECTED" {
		t.Errorf("decision = %+v", d)
	}
	ds, _ := s.store.Unreported(context.Background())
	if len(ds) != 1 || ds[0].Session.Reveal() != s.tok {
		t.Errorf("the outbox does not carry the deciding user's session: %+v", ds)
	}
}

// TestCookieFlow: POST /api/v1/session turns a token into an HttpOnly,
// SameSite=Strict cookie that authenticates same-origin requests only;
// DELETE clears it.
func TestCookieFlow(t *testing.T) {
	s := newServer(t)
	s.deliver("prm_1")

	wantProblem(t, s.do(http.MethodPost, "/api/v1/session", "text/plain", strings.NewReader(`{"token":"x"}`), "Authorization", ""), http.StatusUnsupportedMediaType, "unsupported_media_type")
	wantProblem(t, s.do(http.MethodPost, "/api/v1/session", "application/json", strings.NewReader(`{}`), "Authorization", ""), http.StatusBadRequest, "invalid")
	r := s.do(http.MethodPost, "/api/v1/session", "application/json", strings.NewReader(`{"token":"garbage"}`), "Authorization", "")
	wantProblem(t, r, http.StatusUnauthorized, "unauthorized")
	if len(r.header.Values("Set-Cookie")) != 0 {
		t.Errorf("a refused sign-in set %q", r.header.Values("Set-Cookie"))
	}
	wantProblem(t, s.do(http.MethodPost, "/api/v1/session", "application/json", strings.NewReader(`{"token":"`+s.tok+`"}`), "Authorization", "", "Origin", "https://evil.example"),
		http.StatusForbidden, "forbidden")

	r = s.do(http.MethodPost, "/api/v1/session", "application/json", strings.NewReader(`{"token":"`+s.tok+`"}`), "Authorization", "")
	me := decodeBody[Session](t, r, http.StatusOK)
	if me.UserID != "usr_ada" || me.Name != "Ada Lovelace" || me.OrgID != "org_1" || me.ExpiresAt == nil ||
		len(me.Environments) != 1 || me.Environments[0].ID != envProd || len(me.Environments[0].Permissions) != 4 {
		t.Errorf("session = %+v", me)
	}
	cookies := (&http.Response{Header: r.header}).Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies = %v", r.header.Values("Set-Cookie"))
	}
	c := cookies[0]
	if c.Name != CookieName || c.Value != s.tok || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Expires.IsZero() {
		t.Errorf("cookie = %+v", c)
	}
	cookie := CookieName + "=" + c.Value

	if r := s.do(http.MethodGet, "/api/v1/tasks", "-", nil, "Cookie", cookie, "Sec-Fetch-Site", "same-origin"); r.status != http.StatusOK {
		t.Errorf("GET with the cookie = %d %s", r.status, r.body)
	}
	d := decodeBody[Decision](t, s.do(http.MethodPost, "/api/v1/tasks/prm_1/_reject", "application/json", nil, "Cookie", cookie, "Origin", s.url), http.StatusOK)
	if d.Actor != actor {
		t.Errorf("decision by cookie = %+v", d)
	}
	wantProblem(t, s.do(http.MethodGet, "/api/v1/tasks", "-", nil, "Cookie", cookie, "Origin", "https://evil.example"), http.StatusForbidden, "forbidden")
	for _, site := range []string{"cross-site", "same-site"} {
		wantProblem(t, s.do(http.MethodGet, "/api/v1/tasks", "-", nil, "Cookie", cookie, "Sec-Fetch-Site", site), http.StatusForbidden, "forbidden")
	}

	r = s.do(http.MethodDelete, "/api/v1/session", "-", nil, "Cookie", cookie)
	if r.status != http.StatusNoContent {
		t.Errorf("DELETE /api/v1/session = %d %s", r.status, r.body)
	}
	if cs := (&http.Response{Header: r.header}).Cookies(); len(cs) != 1 || cs[0].Name != CookieName || cs[0].Value != "" || cs[0].MaxAge >= 0 {
		t.Errorf("sign-out cookies = %v", r.header.Values("Set-Cookie"))
	}
	// An expired cookie is refused and cleared.
	old := CookieName + "=" + s.sign(claims("usr_ada", "Ada", -2*session.Leeway, nil))
	r = s.do(http.MethodGet, "/api/v1/tasks", "-", nil, "Cookie", old)
	wantProblem(t, r, http.StatusUnauthorized, "unauthorized")
	if cs := (&http.Response{Header: r.header}).Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Errorf("a refused cookie was not cleared: %v", r.header.Values("Set-Cookie"))
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestNoCORSForForeignOrigins is the second half of R31: a CORS preflight
// from an origin that is not the console's own gets no
// Access-Control-Allow-* header on any route, so a browser on another site
// may not send the request it asks about (the console is same-origin and
// needs no CORS at all).
func TestNoCORSForForeignOrigins(t *testing.T) {
	s := newServer(t)
	for _, path := range []string{"/api/v1/session", "/api/v1/tasks", "/api/v1/tasks/prm_1/_accept", "/api/v1/apis/api-1/_promote"} {
		r := s.do(http.MethodOptions, path, "-", nil, "Origin", "https://evil.example",
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
		for name := range r.header {
			if strings.HasPrefix(strings.ToLower(name), "access-control-") {
				t.Errorf("preflight of %s from a foreign origin answered %d with %s: %q", path, r.status, name, r.header.Get(name))
			}
		}
		if r.status >= 200 && r.status < 300 {
			t.Errorf("preflight of %s from a foreign origin answered %d, want a refusal", path, r.status)
		}
	}
}
