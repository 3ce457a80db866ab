package console

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeAPI stands in for the agent's REST API: it accepts the cookie
// "ferry_session=good" and answers from routes.
type fakeAPI struct {
	mu     sync.Mutex
	routes map[string]func(w http.ResponseWriter, r *http.Request)
	seen   []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen = append(f.seen, r.Method+" "+r.URL.RequestURI())
	h := f.routes[r.Method+" "+r.URL.Path]
	f.mu.Unlock()
	if h == nil {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"status":404,"code":"not_found","detail":"no such route"}`)
		return
	}
	if r.URL.Path != "/api/v1/status" && r.URL.Path != "/api/v1/session" {
		if c, err := r.Cookie(CookieName); err != nil || c.Value != "good" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"status":401,"code":"unauthorized","detail":"no session"}`)
			return
		}
	}
	h(w, r)
}

func (f *fakeAPI) set(route string, h func(w http.ResponseWriter, r *http.Request)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[route] = h
}

func jsonHandler(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

type fakeExporter struct {
	raw []byte
	err error
}

func (f fakeExporter) Export(ctx context.Context, id string) ([]byte, error) { return f.raw, f.err }

func newTestHandler(t *testing.T, api http.Handler, hubURL string, exp Exporter) *Handler {
	t.Helper()
	h, err := New(Config{API: api, HubURL: hubURL, Exporter: exp, Logger: slog.New(slog.DiscardHandler), PollInterval: 20 * time.Millisecond,
		AllowedHosts: []string{"127.0.0.1", "example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func newFakeAPI() *fakeAPI {
	f := &fakeAPI{routes: map[string]func(http.ResponseWriter, *http.Request){}}
	f.set("GET /api/v1/status", jsonHandler(200, `{"link":"connected","hubReachable":true,"orgName":"demo","environments":[{"id":"env_dev","name":"Dev"}]}`))
	return f
}

func TestNewRequires(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no API":    {HubURL: "http://hub", Logger: slog.New(slog.DiscardHandler)},
		"no hub":    {API: http.NotFoundHandler(), Logger: slog.New(slog.DiscardHandler)},
		"bad hub":   {API: http.NotFoundHandler(), HubURL: "ftp://x", Logger: slog.New(slog.DiscardHandler)},
		"no logger": {API: http.NotFoundHandler(), HubURL: "http://hub"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestPages(t *testing.T) {
	srv := httptest.NewServer(newTestHandler(t, newFakeAPI(), "http://127.0.0.1:1", nil))
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		path, cookie string
		status       int
		location     string
		contains     []string
	}{
		{path: "/", status: 302, location: "/console/"},
		{path: "/console/", status: 302, location: "/console/apis"},
		{path: "/console/apis", status: 302, location: "/console/signin?next=%2Fconsole%2Fapis"},
		{path: "/console/signin", status: 200, contains: []string{`id="signin-form"`, "Sign in to Dev", `value="demo"`, "The hub is reachable"}},
		{path: "/console/apis", cookie: "good", status: 200, contains: []string{`data-page="apis"`, `aria-current="page">APIs`, "Environment <strong id=\"env-name\">Dev</strong>"}},
		{path: "/console/apis/abc", cookie: "good", status: 200, contains: []string{`data-api-id="abc"`, "Promote the API", "Members and groups are not promoted"}},
		{path: "/console/tasks", cookie: "good", status: 200, contains: []string{`data-page="tasks"`}},
		{path: "/console/promotions", cookie: "good", status: 200, contains: []string{`data-page="promotions"`}},
		{path: "/console/static/console.css", status: 200, contains: []string{"--primary"}},
		{path: "/console/static/common.js", status: 200, contains: []string{"const Ferry"}},
		{path: "/console/static/app.js", status: 200, contains: []string{"tasksPage"}},
		{path: "/console/static/nope.js", status: 404},
		{path: "/console/nope", status: 404},
	} {
		req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
		if tc.cookie != "" {
			req.AddCookie(&http.Cookie{Name: CookieName, Value: tc.cookie})
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s: status %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
		if tc.location != "" && resp.Header.Get("Location") != tc.location {
			t.Errorf("GET %s: Location %q, want %q", tc.path, resp.Header.Get("Location"), tc.location)
		}
		for _, s := range tc.contains {
			if !strings.Contains(string(b), s) {
				t.Errorf("GET %s: body lacks %q", tc.path, s)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", tc.path, csp)
		}
	}
}

func TestHubUnreachableBanner(t *testing.T) {
	api := newFakeAPI()
	api.set("GET /api/v1/status", jsonHandler(200, `{"link":"connecting","hubReachable":false,"environments":[{"id":"e","name":"Prod"}]}`))
	srv := httptest.NewServer(newTestHandler(t, api, "http://127.0.0.1:1", nil))
	defer srv.Close()
	for path, want := range map[string]string{
		"/console/signin": "you cannot sign in right now. If you already signed in from this browser, your session keeps working for tasks",
		"/console/tasks":  "Tasks already delivered here can still be accepted or rejected",
	} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: CookieName, Value: "good"})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Errorf("GET %s: page does not say %q", path, want)
		}
	}
}

func TestGuards(t *testing.T) {
	h := newTestHandler(t, newFakeAPI(), "http://127.0.0.1:1", nil)
	for name, tc := range map[string]struct {
		host, origin string
		want         int
	}{
		"rebinding":    {host: "evil.test:80", want: http.StatusForbidden},
		"cross-origin": {host: "127.0.0.1:8090", origin: "http://evil.test", want: http.StatusForbidden},
		"same-origin":  {host: "127.0.0.1:8090", origin: "http://127.0.0.1:8090", want: http.StatusServiceUnavailable},
	} {
		req := httptest.NewRequest("POST", "/console/session", strings.NewReader(`{"username":"a","password":"b","organization":"c"}`))
		req.Host = tc.host
		req.Header.Set("Content-Type", "application/json")
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d: %s", name, rec.Code, tc.want, rec.Body)
		}
	}
}

// fakeHub answers POST /api/v1/auth/session for alice/secret in org demo.
func fakeHub(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/api/v1/auth/session" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"code":"not_found","detail":"no such endpoint"}`)
			return
		}
		var req map[string]string
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req["org"] != "demo" || req["username"] != "alice" || req["password"] != "secret" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"status":401,"code":"unauthorized","detail":"invalid credentials"}`)
			return
		}
		_, _ = io.WriteString(w, `{"token":"good","expiresAt":"2030-01-01T00:00:00Z"}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSignIn(t *testing.T) {
	hub := fakeHub(t)
	for _, tc := range []struct {
		name      string
		body      string
		webRoute  bool // the REST API sets the cookie itself
		hubURL    string
		status    int
		code      string
		setCookie string
	}{
		{name: "ok, REST API sets the cookie", body: `{"username":"alice","password":"secret","organization":"demo"}`, webRoute: true, status: 200,
			setCookie: "ferry_session=good; Path=/; HttpOnly; SameSite=Strict; from=web"},
		{name: "ok, console sets the cookie", body: `{"username":"alice","password":"secret","organization":"demo"}`, status: 200,
			setCookie: "ferry_session=good; Path=/; Expires=Tue, 01 Jan 2030 00:00:00 GMT; HttpOnly; SameSite=Strict"},
		{name: "wrong password", body: `{"username":"alice","password":"nope","organization":"demo"}`, status: 401, code: "unauthorized"},
		{name: "missing field", body: `{"username":"alice","password":"","organization":"demo"}`, status: 400, code: "invalid"},
		{name: "unknown field", body: `{"user":"alice"}`, status: 400, code: "invalid"},
		{name: "hub unreachable", body: `{"username":"alice","password":"secret","organization":"demo"}`, hubURL: "http://127.0.0.1:1", status: 503, code: codeHubUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI()
			if tc.webRoute {
				api.set("POST /api/v1/session", func(w http.ResponseWriter, r *http.Request) {
					var b map[string]string
					_ = json.NewDecoder(r.Body).Decode(&b)
					if b["token"] != "good" {
						t.Errorf("REST API got token %q", b["token"])
					}
					w.Header().Add("Set-Cookie", "ferry_session=good; Path=/; HttpOnly; SameSite=Strict; from=web")
					jsonHandler(200, `{"userId":"u1","name":"Alice"}`)(w, r)
				})
			}
			url := tc.hubURL
			if url == "" {
				url = hub.URL
			}
			h := newTestHandler(t, api, url, nil)
			req := httptest.NewRequest("POST", "/console/session", strings.NewReader(tc.body))
			req.Host = "127.0.0.1:8090"
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			var p struct{ Code, Detail string }
			_ = json.Unmarshal(rec.Body.Bytes(), &p)
			if p.Code != tc.code {
				t.Errorf("code %q, want %q (%s)", p.Code, tc.code, p.Detail)
			}
			if got := rec.Header().Get("Set-Cookie"); got != tc.setCookie {
				t.Errorf("Set-Cookie %q, want %q", got, tc.setCookie)
			}
			if tc.code == codeHubUnreachable && !strings.Contains(p.Detail, "keeps working for tasks") {
				t.Errorf("hub unreachable detail %q does not say what still works", p.Detail)
			}
		})
	}
}

func TestSignOut(t *testing.T) {
	h := newTestHandler(t, newFakeAPI(), "http://127.0.0.1:1", nil)
	req := httptest.NewRequest("DELETE", "/console/session", nil)
	req.Host = "127.0.0.1:8090"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent || !strings.Contains(rec.Header().Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("sign out: %d, Set-Cookie %q", rec.Code, rec.Header().Get("Set-Cookie"))
	}
}

type event struct{ name, data string }

// readEvents reads n events from an SSE stream.
func readEvents(t *testing.T, body io.Reader, n int) []event {
	t.Helper()
	sc := bufio.NewScanner(body)
	var out []event
	var cur event
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		case line == "" && cur.name != "":
			out = append(out, cur)
			cur = event{}
		}
	}
	return out
}

func TestEvents(t *testing.T) {
	api := newFakeAPI()
	var mu sync.Mutex
	tasks := `{"items":[]}`
	api.set("GET /api/v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		jsonHandler(200, tasks)(w, r)
	})
	srv := httptest.NewServer(newTestHandler(t, api, "http://127.0.0.1:1", nil))
	t.Cleanup(srv.Close) // after the bodies are closed

	get := func(cookie, query string) *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+"/console/events"+query, nil)
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: CookieName, Value: cookie})
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := get("", "?watch=/api/v1/tasks"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a session: status %d, want 401", resp.StatusCode)
	}
	for _, q := range []string{"", "?watch=/healthz", "?watch=http://evil/api/v1/x", "?watch=/api/v1/../metrics"} {
		if resp := get("good", q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("events%s: status %d, want 400", q, resp.StatusCode)
		}
	}

	resp := get("good", "?watch=/api/v1/status&watch=/api/v1/tasks")
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	first := readEvents(t, resp.Body, 2)
	mu.Lock()
	tasks = `{"items":[{"id":"prm_1"}]}`
	mu.Unlock()
	next := readEvents(t, resp.Body, 1)
	got := append(first, next...)
	want := []event{
		{"update", `{"path":"/api/v1/status","status":200,"body":{"link":"connected","hubReachable":true,"orgName":"demo","environments":[{"id":"env_dev","name":"Dev"}]}}`},
		{"update", `{"path":"/api/v1/tasks","status":200,"body":{"items":[]}}`},
		{"update", `{"path":"/api/v1/tasks","status":200,"body":{"items":[{"id":"prm_1"}]}}`},
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(event{})); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

func TestEventsEndOnAuthAndClose(t *testing.T) {
	api := newFakeAPI()
	var mu sync.Mutex
	valid := true
	api.set("GET /api/v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := valid
		mu.Unlock()
		if !ok {
			jsonHandler(401, `{"status":401,"code":"unauthorized","detail":"expired"}`)(w, r)
			return
		}
		jsonHandler(200, `{"items":[]}`)(w, r)
	})
	h := newTestHandler(t, api, "http://127.0.0.1:1", nil)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("GET", srv.URL+"/console/events?watch=/api/v1/tasks", nil)
	req.AddCookie(&http.Cookie{Name: CookieName, Value: "good"})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	readEvents(t, resp.Body, 1)
	mu.Lock()
	valid = false
	mu.Unlock()
	ev := readEvents(t, resp.Body, 1)
	if len(ev) != 1 || ev[0].name != "auth" || !strings.Contains(ev[0].data, "expired") {
		t.Fatalf("after the session expired: %+v, want an auth event", ev)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Errorf("stream did not end cleanly: %v", err)
	}

	// Close ends open streams.
	mu.Lock()
	valid = true
	mu.Unlock()
	resp2, err := http.DefaultClient.Do(req.Clone(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	readEvents(t, resp2.Body, 1)
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(resp2.Body); done <- err }()
	h.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the stream")
	}
}

const incoming = `{"api":{"definitionVersion":"V4","crossId":"x1","name":"Echo","apiVersion":"2.0","description":"new",
 "listeners":[{"type":"HTTP","paths":[{"path":"/echo"}]}],
 "endpointGroups":[{"name":"g","endpoints":[{"name":"e","configuration":{"target":"https://b.example"}}]}],
 "updatedAt":"2026-01-02T00:00:00Z"},
 "plans":[{"name":"Gold","status":"PUBLISHED","security":{"type":"API_KEY"}},{"name":"Free","status":"PUBLISHED","security":{"type":"KEY_LESS"}}],
 "pages":[]}`

const existing = `{"api":{"definitionVersion":"V4","crossId":"x1","id":"prod-id","name":"Echo","apiVersion":"1.0",
 "listeners":[{"type":"HTTP","paths":[{"path":"/echo"}]}],
 "endpointGroups":[{"name":"g","endpoints":[{"name":"e","configuration":{"target":"https://a.example"}}]}],
 "updatedAt":"2025-01-01T00:00:00Z"},
 "members":[{"id":"m","displayName":"Prod Person"}],
 "plans":[{"name":"Gold","status":"PUBLISHED","security":{"type":"KEY_LESS"}},{"name":"Old","status":"CLOSED","security":{"type":"KEY_LESS"}}],
 "pages":[]}`

func TestChanges(t *testing.T) {
	api := newFakeAPI()
	api.set("GET /api/v1/tasks/prm_up", jsonHandler(200, `{"id":"prm_up","crossId":"x1","definition":`+incoming+`,
		"plan":{"action":"update","existingApiId":"prod-id","existingApiName":"Echo","matchedBy":"crossId","etag":"e7a1"}}`))
	api.set("GET /api/v1/tasks/prm_new", jsonHandler(200, `{"id":"prm_new","crossId":"x1","definition":`+incoming+`,"plan":{"action":"create"}}`))
	srv := httptest.NewServer(newTestHandler(t, api, "http://127.0.0.1:1", fakeExporter{raw: []byte(existing)}))
	defer srv.Close()
	get := func(id string) (int, Changes) {
		req, _ := http.NewRequest("GET", srv.URL+"/console/changes/"+id, nil)
		req.AddCookie(&http.Cookie{Name: CookieName, Value: "good"})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var c Changes
		_ = json.NewDecoder(resp.Body).Decode(&c)
		return resp.StatusCode, c
	}

	st, c := get("prm_up")
	if st != 200 || c.Action != "update" || c.ExistingAPIID != "prod-id" || c.Detail != "" || c.ETag != "e7a1" {
		t.Fatalf("update: %d %+v (the ETag is the plan's, which the page sends as If-Match)", st, c)
	}
	want := []Change{
		{Path: "api.apiVersion", Kind: "changed", Before: `"1.0"`, After: `"2.0"`},
		{Path: "api.description", Kind: "added", After: `"new"`},
		{Path: "api.endpointGroups[name=g].endpoints[name=e].configuration.target", Kind: "changed", Before: `"https://a.example"`, After: `"https://b.example"`},
		{Path: "plans[name=Gold].security.type", Kind: "changed", Before: `"KEY_LESS"`, After: `"API_KEY"`},
		{Path: "plans[name=Old]", Kind: "removed", Before: "{…}"},
		{Path: "plans[name=Free]", Kind: "added", After: "{…}"},
	}
	// Whole objects carry the crossIds the sanitizer derived; compare their shape.
	objects := cmp.Transformer("objects", func(s string) string {
		if strings.HasPrefix(s, "{") {
			return "{…}"
		}
		return s
	})
	if d := cmp.Diff(want, c.Changes, objects); d != "" {
		t.Errorf("changes (-want +got):\n%s", d)
	}
	summary := map[string]string{}
	for _, f := range c.Summary {
		summary[f.Label] = f.Value
	}
	if summary["Name"] != "Echo" || summary["Plans"] != "Gold (API_KEY, PUBLISHED), Free (KEY_LESS, PUBLISHED)" || summary["Context paths"] != "/echo" {
		t.Errorf("summary = %v", summary)
	}

	st, c = get("prm_new")
	if st != 200 || c.Action != "create" || len(c.Changes) != 0 || len(c.Summary) == 0 {
		t.Errorf("create: %d %+v", st, c)
	}
	if st, _ := get("prm_missing"); st != http.StatusNotFound {
		t.Errorf("missing task: %d, want 404 from the REST API", st)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/console/changes/prm_up", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a session: %d, want 401", resp.StatusCode)
	}
}

func TestChangesExportFails(t *testing.T) {
	api := newFakeAPI()
	api.set("GET /api/v1/tasks/prm_up", jsonHandler(200, `{"id":"prm_up","crossId":"x1","definition":`+incoming+`,
		"plan":{"action":"update","existingApiId":"prod-id","existingApiName":"Echo","matchedBy":"crossId"}}`))
	h := newTestHandler(t, api, "http://127.0.0.1:1", fakeExporter{err: errors.New("apim down")})
	req := httptest.NewRequest("GET", "/console/changes/prm_up", nil)
	req.Host = "127.0.0.1:8090"
	req.AddCookie(&http.Cookie{Name: CookieName, Value: "good"})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var c Changes
	_ = json.Unmarshal(rec.Body.Bytes(), &c)
	if rec.Code != 200 || c.Action != "update" || !strings.Contains(c.Detail, "apim down") {
		t.Errorf("export failure: %d %+v", rec.Code, c)
	}
}

func TestDiffArrays(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b string
		want []Change
	}{
		{"equal", `{"x":[1,2]}`, `{"x":[1,2]}`, nil},
		{"by index", `{"x":[1,2]}`, `{"x":[1,3,4]}`, []Change{{Path: "x[1]", Kind: "changed", Before: "2", After: "3"}, {Path: "x[2]", Kind: "added", After: "4"}}},
		{"type change", `{"x":{"a":1}}`, `{"x":[1]}`, []Change{{Path: "x", Kind: "changed", Before: `{"a":1}`, After: "[1]"}}},
		{"timestamps ignored", `{"updatedAt":"a","n":1}`, `{"updatedAt":"b","n":1}`, nil},
		{"export metadata ignored", `{"export":{"date":"a"},"api":{"export":1}}`, `{"export":{"date":"b"},"api":{"export":2}}`,
			[]Change{{Path: "api.export", Kind: "changed", Before: "1", After: "2"}}},
		{"duplicate names by index", `{"x":[{"name":"a","v":1},{"name":"a","v":2}]}`, `{"x":[{"name":"a","v":1},{"name":"a","v":3}]}`,
			[]Change{{Path: "x[1].v", Kind: "changed", Before: "2", After: "3"}}},
	} {
		a, _ := decodeJSON([]byte(tc.a))
		b, _ := decodeJSON([]byte(tc.b))
		var got []Change
		diff("", a, b, &got)
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, d)
		}
	}
}
