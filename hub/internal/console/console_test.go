package console

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestHandler(t *testing.T, api http.Handler) *Handler {
	t.Helper()
	h, err := New(Config{API: api, Logger: slog.New(slog.DiscardHandler), PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func TestPages(t *testing.T) {
	srv := httptest.NewServer(newTestHandler(t, http.NotFoundHandler()))
	defer srv.Close()
	for _, tc := range []struct {
		path     string
		status   int
		contains []string
	}{
		{"/console/", 200, []string{`data-page="map"`, "Organization map", `aria-current="page">Map`}},
		{"/console/signin", 200, []string{`id="password-form"`, `id="token-form"`, `autocomplete="current-password"`}},
		{"/console/environments", 200, []string{"link token", "agent-command"}},
		{"/console/installations", 200, []string{`id="inst-history"`, "link openings and closings"}},
		{"/console/promotions", 200, []string{`id="f-status"`}},
		{"/console/promotions/prm_1", 200, []string{`data-id="prm_1"`, "Timeline across both environments"}},
		{"/console/audit", 200, []string{"Export CSV", "Verify the chain", "<option>PROMOTION_CREATED</option>", "<option>ACTION_NOT_DONE</option>",
			"<option>LINK_CLIENT_CERTIFICATE_MISMATCH</option>", "<option>TOKEN_REVOKED</option>"}},
		{"/console/static/console.css", 200, []string{"--primary"}},
		{"/console/static/hub.js", 200, []string{"mapPage"}},
		{"/console/static/common.js", 200, []string{"const Ferry"}},
		{"/console/nope", 404, nil},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
		for _, s := range tc.contains {
			if !strings.Contains(string(b), s) {
				t.Errorf("GET %s: body lacks %q", tc.path, s)
			}
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("GET %s: security headers missing", tc.path)
		}
	}
}

// TestEvents: the stream reads the REST API as the caller (the bearer token
// is forwarded) and sends a path's answer again only when it changes.
func TestEvents(t *testing.T) {
	var mu sync.Mutex
	n := 0
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"status":401,"detail":"send a token"}`)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n < 3 {
			n++
			_, _ = io.WriteString(w, `{"items":[{"status":"offline"}]}`)
			return
		}
		_, _ = io.WriteString(w, `{"items":[{"status":"online"}]}`)
	})
	srv := httptest.NewServer(newTestHandler(t, api))
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL + "/console/events?watch=/api/v1/orgs/demo/installations")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/console/events?watch=/api/v1/orgs/demo/installations", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var data []string
	for len(data) < 2 && sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = append(data, d)
		}
	}
	want := []string{
		`{"path":"/api/v1/orgs/demo/installations","status":200,"body":{"items":[{"status":"offline"}]}}`,
		`{"path":"/api/v1/orgs/demo/installations","status":200,"body":{"items":[{"status":"online"}]}}`,
	}
	if strings.Join(data, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(data, "\n"), strings.Join(want, "\n"))
	}
}
