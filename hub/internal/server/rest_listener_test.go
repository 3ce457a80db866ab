package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"ferry.dev/hub/internal/api"
	"ferry.dev/hub/internal/config"
)

const restAdminToken = "rest-test-admin-token-0123456789"

// startRESTHub runs the real hub (SQLite store, no limits on request rates)
// on a free loopback port; adjust changes the configuration first, and
// each of before the server, before it starts.
func startRESTHub(t *testing.T, adjust func(*config.Config), before ...func(*Server)) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.Listen, cfg.DataDir, cfg.AdminToken = "127.0.0.1:0", t.TempDir(), restAdminToken
	cfg.RateLimitToken, cfg.RateLimitSignIn, cfg.RateLimitLink = config.RateLimit{}, config.RateLimit{}, config.RateLimit{}
	if adjust != nil {
		adjust(&cfg)
	}
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range before {
		f(s)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

// send makes a request to the hub at addr and returns the status, the
// content type and the body.
func send(t *testing.T, method, url, token, body string, headers ...string) (int, string, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// TestRESTAuditReadOnly walks every registered route and checks that none
// writes to the audit trail (E4), and that writing methods on the audit
// routes answer 405 with a problem document (R28).
func TestRESTAuditReadOnly(t *testing.T) {
	t.Parallel()
	s := startRESTHub(t, nil)
	base := "http://" + s.Addr()
	routes := s.api.Routes()
	if len(routes) < 20 {
		t.Fatalf("only %d routes registered; the walk sees too little", len(routes))
	}
	auditRoutes := 0
	for _, r := range routes {
		if !strings.Contains(r.Path, "/audit") {
			continue
		}
		auditRoutes++
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			t.Errorf("%s %s mutates the audit trail; audit routes must be read-only", r.Method, r.Path)
		}
	}
	if auditRoutes < 2 {
		t.Errorf("%d audit routes found, want at least GET /audit and GET /audit/_verify", auditRoutes)
	}
	send(t, "POST", base+"/api/v1/orgs", restAdminToken, `{"name":"acme"}`, "Idempotency-Key", "org-acme")
	for _, path := range []string{"/api/v1/orgs/acme/audit", "/api/v1/orgs/acme/audit/_verify"} {
		for _, method := range []string{"DELETE", "PATCH", "PUT", "POST"} {
			for _, token := range []string{restAdminToken, ""} {
				st, ct, b := send(t, method, base+path, token, `{"seq":1}`)
				if st != http.StatusMethodNotAllowed || ct != "application/problem+json" || !strings.Contains(b, `"code":"method_not_allowed"`) {
					t.Errorf("%s %s (token %v): %d %s %s; want 405 method_not_allowed as problem+json", method, path, token != "", st, ct, b)
				}
			}
		}
		if st, _, b := send(t, "GET", base+path, restAdminToken, ""); st != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, st, b)
		}
	}
	if st, _, b := send(t, "GET", base+"/api/v1/orgs/acme/audit/_verify", restAdminToken, ""); st != http.StatusOK || !strings.Contains(b, `"ok":true`) {
		t.Errorf("the chain does not verify after the refused writes: %d %s", st, b)
	}
}

// TestRESTHeaderLimit checks that a header block over 8 KiB answers 431
// (R29) on the real listener, while one just under passes.
func TestRESTHeaderLimit(t *testing.T) {
	t.Parallel()
	s := startRESTHub(t, nil)
	url := "http://" + s.Addr() + "/healthz"
	if st, _, b := send(t, "GET", url, "", "", "X-Pad", strings.Repeat("a", 7<<10)); st != http.StatusOK {
		t.Errorf("7 KiB of headers: %d %s, want 200", st, b)
	}
	for _, n := range []int{8<<10 + 1, 10 << 10, 64 << 10} {
		st, _, b := send(t, "GET", url, "", "", "X-Pad", strings.Repeat("a", n))
		if st != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%d bytes of headers: %d %.200s, want 431", n, st, b)
		}
	}
	// Many small headers count as much as one big one.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+s.Addr()+"/api/v1/orgs", nil)
	for i := range 300 {
		req.Header.Set(fmt.Sprintf("X-H%d", i), "0123456789012345678901234")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("300 headers (~10 KiB): %d %s, want 431 problem+json", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestRESTSlowloris checks that a client trickling its headers at 1 byte/s
// is cut off at ReadHeaderTimeout (D4, R30), and that hundreds of idle
// connections do not keep a real request from being answered.
func TestRESTSlowloris(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	s := startRESTHub(t, func(c *config.Config) { c.ReadHeaderTimeout = timeout })
	addr := s.Addr()

	// Hundreds of connections that never send a byte.
	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	for range 300 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", len(idle), err)
		}
		idle = append(idle, c)
	}

	// One that sends a byte of its headers every second.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan time.Duration, 1)
	go func() {
		buf := make([]byte, 512)
		_ = c.SetReadDeadline(time.Now().Add(4 * timeout))
		for {
			if _, err := c.Read(buf); err != nil {
				closed <- time.Since(start)
				return
			}
		}
	}()
	go func() {
		for _, b := range []byte("X-Slow: abcdefghijklmnopqrstuvwxyz") {
			time.Sleep(time.Second)
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
		}
	}()

	// Meanwhile a real request is answered promptly.
	t0 := time.Now()
	if st, _, b := send(t, "GET", "http://"+addr+"/api/v1/orgs", restAdminToken, ""); st != http.StatusOK {
		t.Errorf("a real request beside 300 idle connections: %d %s", st, b)
	}
	if d := time.Since(t0); d > timeout {
		// Not a speed target: a server whose accept loop or handlers were
		// tied up by the idle connections would answer only once they are
		// cut off, at the ReadHeaderTimeout.
		t.Errorf("a real request beside 300 idle connections took %v, as long as the idle connections lasted", d)
	}

	d := <-closed
	if d < timeout-200*time.Millisecond || d > timeout+1500*time.Millisecond {
		t.Errorf("the slow client was cut off after %v, want about the %v ReadHeaderTimeout", d.Round(time.Millisecond), timeout)
	}
	// The idle connections are closed at the same deadline.
	_ = idle[0].SetReadDeadline(time.Now().Add(2 * timeout))
	if _, err := bufio.NewReader(idle[0]).ReadByte(); err != io.EOF {
		t.Errorf("an idle connection: read %v, want EOF (closed by the hub)", err)
	}
}

// TestRESTBodyLimits checks the two body tiers (D1, R13): 4 MiB on the
// promotion route, 64 KiB elsewhere, refused with 413 from the declared
// length without waiting for the body.
func TestRESTBodyLimits(t *testing.T) {
	t.Parallel()
	s := startRESTHub(t, nil)
	addr := s.Addr()
	base := "http://" + addr
	send(t, "POST", base+"/api/v1/orgs", restAdminToken, `{"name":"acme"}`)

	// Within a tier: the body is read (and refused for what it says).
	pad := func(n int) string { return `{"apiId":"` + strings.Repeat("x", n) + `"}` }
	if st, _, b := send(t, "POST", base+"/api/v1/orgs/acme/promotions", restAdminToken, pad(api.MaxPromotionBodyBytes-100), "Idempotency-Key", "k1"); st == http.StatusRequestEntityTooLarge {
		t.Errorf("a body under 4 MiB on the promotion route: 413 %.200s", b)
	}
	if st, _, b := send(t, "POST", base+"/api/v1/orgs/acme/environments", restAdminToken, `{"name":"`+strings.Repeat("x", 60<<10)+`"}`); st == http.StatusRequestEntityTooLarge {
		t.Errorf("a body under 64 KiB: 413 %.200s", b)
	}
	// Over a tier: 413, even chunked (no declared length).
	for _, tc := range []struct {
		path string
		size int
	}{
		{"/api/v1/orgs/acme/promotions", 5 << 20},
		{"/api/v1/orgs/acme/environments", 100 << 10},
		{"/api/v1/orgs/acme/users", 100 << 10},
		{"/api/v1/auth/session", 100 << 10},
		{"/api/v1/orgs/acme/promotions", api.MaxPromotionBodyBytes + 1},
		{"/api/v1/orgs/acme/environments", api.MaxBodyBytes + 1},
	} {
		for _, chunked := range []bool{false, true} {
			body := pad(tc.size)
			req, _ := http.NewRequestWithContext(t.Context(), "POST", base+tc.path, strings.NewReader(body))
			if chunked {
				req, _ = http.NewRequestWithContext(t.Context(), "POST", base+tc.path, io.MultiReader(strings.NewReader(body)))
				req.ContentLength = -1
			}
			if tc.path != "/api/v1/auth/session" { // a bearer there signs in with it, no body read
				req.Header.Set("Authorization", "Bearer "+restAdminToken)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("big-%d-%v", tc.size, chunked))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("POST %s %d bytes (chunked %v): %v", tc.path, tc.size, chunked, err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"code":"too_large"`) {
				t.Errorf("POST %s %d bytes (chunked %v): %d %.200s, want 413 too_large", tc.path, tc.size, chunked, resp.StatusCode, b)
			}
		}
	}

	// A declared 5 MiB body that never comes is refused at once.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST /api/v1/orgs/acme/promotions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nIdempotency-Key: never\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"apiId\":\"", restAdminToken, 5<<20)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a declared 5 MiB body: %v", err)
	}
	resp.Body.Close()
	// Waiting for the body would last until the read deadline (5 s).
	if d := time.Since(start); resp.StatusCode != http.StatusRequestEntityTooLarge || d > 4*time.Second {
		t.Errorf("declared 5 MiB body: %d after %v, want 413 before the body comes", resp.StatusCode, d)
	}
}

// TestRESTJSONDepth checks that deeply nested JSON is refused (D8, R15) by
// the depth scan, and that a huge flat array inside the 4 MiB budget is an
// ordinary error. How fast is measured by api.BenchmarkCheckDepth.
func TestRESTJSONDepth(t *testing.T) {
	t.Parallel()
	s := startRESTHub(t, nil)
	base := "http://" + s.Addr()
	send(t, "POST", base+"/api/v1/orgs", restAdminToken, `{"name":"acme"}`)
	cases := []struct {
		name, path, body, code string
	}{
		{"10,000 levels of arrays", "/api/v1/orgs/acme/promotions", `{"apiId":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, "too_deep"},
		{"10,000 levels of objects", "/api/v1/orgs/acme/environments", strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000), "too_deep"},
		{"129 levels", "/api/v1/orgs/acme/users", `{"x":` + strings.Repeat("[", 128) + strings.Repeat("]", 128) + `}`, "too_deep"},
		{"128 levels are not too deep", "/api/v1/orgs/acme/users", `{"x":` + strings.Repeat("[", 127) + strings.Repeat("]", 127) + `}`, "unknown_field"},
		{"brackets inside strings do not count", "/api/v1/orgs/acme/users", `{"username":"` + strings.Repeat("[", 1000) + `\"` + strings.Repeat("{", 1000) + `"}`, "invalid"},
		{"1e6 array items", "/api/v1/orgs/acme/promotions", `{"apiId":[` + strings.Repeat("0,", 1_000_000) + `0]}`, "malformed_json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, _, b := send(t, "POST", base+tc.path, restAdminToken, tc.body, "Idempotency-Key", tc.name)
			if st != http.StatusBadRequest || !strings.Contains(b, `"code":"`+tc.code+`"`) {
				t.Errorf("%d %.200s, want 400 %s", st, b, tc.code)
			}
		})
	}
}
