package webconsole_test

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ferry.dev/shared/webconsole"
)

// TestEvents checks that a stream sends the watched path once, again when it
// changes, forwards only the configured headers, and ends at Done.
func TestEvents(t *testing.T) {
	var n atomic.Int32
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer ok" || r.Header.Get("Cookie") != "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if n.Add(1) < 3 {
			_, _ = w.Write([]byte(`{"v":1}`))
			return
		}
		_, _ = w.Write([]byte(`{"v":2}`))
	})
	done := make(chan struct{})
	e := &webconsole.Events{API: webconsole.API{Handler: api, Forward: []string{"Authorization"}}, PollInterval: 5 * time.Millisecond, Done: done}
	srv := httptest.NewServer(e)
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL+"/console/events?watch=/api/v1/x", nil)
	req.Header.Set("Authorization", "Bearer ok")
	req.Header.Set("Cookie", "s=1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var data []string
	for len(data) < 2 && sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = append(data, d)
		}
	}
	want := []string{`{"path":"/api/v1/x","status":200,"body":{"v":1}}`, `{"path":"/api/v1/x","status":200,"body":{"v":2}}`}
	if strings.Join(data, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(data, "\n"), strings.Join(want, "\n"))
	}
	close(done)
	for sc.Scan() {
	}
}

func TestEventsRejects(t *testing.T) {
	e := &webconsole.Events{API: webconsole.API{Handler: http.NotFoundHandler()}}
	for _, q := range []string{"", "?watch=/etc/passwd", "?watch=http://x/api/v1/a", "?watch=/api/v1/../admin"} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest("GET", "/console/events"+q, nil))
		if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%q: %d %s", q, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
	// Unauthorized on the first read is relayed as a plain 401.
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		w.WriteHeader(http.StatusUnauthorized)
	})
	e.API.Handler = api
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("GET", "/console/events?watch=/api/v1/a", nil))
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("401: got %d %v", rec.Code, rec.Header())
	}
}

func TestServeStatic(t *testing.T) {
	rec := httptest.NewRecorder()
	if !webconsole.ServeStatic(rec, "console.css", nil, "static/own.js") || rec.Header().Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("console.css: %d %v", rec.Code, rec.Header())
	}
	if webconsole.ServeStatic(httptest.NewRecorder(), "../go.mod", nil, "static/own.js") {
		t.Error("served a file outside the assets")
	}
}
