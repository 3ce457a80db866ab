package apim_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ferry.dev/agent/apimsim"
	"ferry.dev/agent/internal/apim"
	"ferry.dev/agent/internal/definition"
)

const (
	user     = "admin"
	password = "s3cret-Pa55"
)

// env is one test's stand-in APIM and a client for it.
type env struct {
	sim    *apimsim.Server
	ts     *httptest.Server
	client *apim.Client
	reg    *prometheus.Registry
	logs   *syncBuffer
}

// newEnv starts a stand-in APIM requiring Basic auth, and a client with
// fast retries. edit may change the client's config; wrap may put a handler
// in front of the stand-in.
func newEnv(t *testing.T, edit func(*apim.Config), wrap func(http.Handler) http.Handler) *env {
	t.Helper()
	sim := apimsim.New(apimsim.Options{User: user, Password: password})
	var h http.Handler = sim
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	e := &env{sim: sim, ts: ts, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	cfg := apim.Config{
		BaseURL:      ts.URL + "/management/v2",
		User:         user,
		Password:     password,
		RetryWaitMin: time.Millisecond,
		RetryWaitMax: 5 * time.Millisecond,
		Logger:       slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer:   e.reg,
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := apim.New(cfg)
	if err != nil {
		t.Fatalf("apim.New: %v", err)
	}
	e.client = c
	t.Cleanup(func() {
		for _, secret := range []string{password, base64.StdEncoding.EncodeToString([]byte(user + ":" + password))} {
			if strings.Contains(e.logs.String(), secret) {
				t.Errorf("the logs contain a credential:\n%s", e.logs.String())
			}
		}
	})
	return e
}

// seedAPI stores a minimal API in the stand-in's DEFAULT environment.
func (e *env) seedAPI(t *testing.T, name, crossID, path string) apimsim.API {
	t.Helper()
	a, err := e.sim.Import("DEFAULT", []byte(minimalDef(name, crossID, path)))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func minimalDef(name, crossID, path string) string {
	return fmt.Sprintf(`{"api":{"definitionVersion":"V4","crossId":%q,"type":"PROXY","name":%q,"apiVersion":"1.0",
		"listeners":[{"type":"HTTP","paths":[{"path":%q}],"entrypoints":[{"type":"http-proxy"}]}]},
		"members":[{"id":"u1","displayName":"Alice","roles":[{"name":"PRIMARY_OWNER","scope":"API"}]}]}`, crossID, name, path)
}

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  apim.Config
	}{
		{name: "no base URL", cfg: apim.Config{}},
		{name: "bad scheme", cfg: apim.Config{BaseURL: "ftp://apim/management/v2"}},
		{name: "no host", cfg: apim.Config{BaseURL: "http:///management/v2"}},
		{name: "credentials in URL", cfg: apim.Config{BaseURL: "http://admin:admin@apim/management/v2"}},
		{name: "query in URL", cfg: apim.Config{BaseURL: "http://apim/management/v2?x=1"}},
		{name: "user without password", cfg: apim.Config{BaseURL: "http://apim/management/v2", User: "admin"}},
		{name: "basic and token", cfg: apim.Config{BaseURL: "http://apim/management/v2", User: "a", Password: "b", Token: "t"}},
		{name: "negative timeout", cfg: apim.Config{BaseURL: "http://apim/management/v2", Timeout: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := apim.New(tt.cfg); err == nil {
				t.Errorf("New(%+v) succeeded", tt.cfg)
			}
		})
	}
	c, err := apim.New(apim.Config{BaseURL: "http://apim:8083/management/v2/"})
	if err != nil {
		t.Fatalf("New with defaults: %v", err)
	}
	if c.EnvID() != apim.DefaultEnvID {
		t.Errorf("EnvID = %q, want %q", c.EnvID(), apim.DefaultEnvID)
	}
}

func TestListAPIsFollowsPagination(t *testing.T) {
	e := newEnv(t, func(c *apim.Config) { c.PageSize = 10 }, nil)
	var want []string
	for i := range 25 {
		name := fmt.Sprintf("API %02d", i)
		e.seedAPI(t, name, fmt.Sprintf("cross-%02d", i), fmt.Sprintf("/api-%02d", i))
		want = append(want, name)
	}
	apis, err := e.client.ListAPIs(t.Context())
	if err != nil {
		t.Fatalf("ListAPIs: %v", err)
	}
	var got []string
	for _, a := range apis {
		got = append(got, a.Name)
		if a.ID == "" || a.CrossID == "" || a.DefinitionVersion != "V4" || a.UpdatedAt.IsZero() || len(a.Raw) == 0 {
			t.Errorf("incomplete API: %+v", a)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	// A new client measures its APIs on a one-API page first; the next
	// listing knows their size.
	if hits := e.sim.Hits(apimsim.OpListAPIs); hits != 4 {
		t.Errorf("list requests = %d, want 4: a one-API page, then 3 pages of 10", hits)
	}
	if apis, err := e.client.ListAPIs(t.Context()); err != nil || len(apis) != 25 {
		t.Fatalf("second ListAPIs = %d APIs, %v", len(apis), err)
	}
	if hits := e.sim.Hits(apimsim.OpListAPIs) - 4; hits != 3 {
		t.Errorf("second listing: %d requests, want 3 pages of 10", hits)
	}

	empty := newEnv(t, func(c *apim.Config) { c.EnvID = "empty" }, nil)
	if apis, err := empty.client.ListAPIs(t.Context()); err != nil || len(apis) != 0 {
		t.Errorf("ListAPIs on an empty environment = %v, %v", apis, err)
	}
}

func TestGetAndFind(t *testing.T) {
	e := newEnv(t, nil, nil)
	stored := e.seedAPI(t, "Orders", "cross-orders", "/orders")
	e.seedAPI(t, "Billing", "cross-billing", "/billing")

	got, err := e.client.GetAPI(t.Context(), stored.ID)
	if err != nil {
		t.Fatalf("GetAPI: %v", err)
	}
	want := apim.API{ID: stored.ID, CrossID: "cross-orders", Name: "Orders", APIVersion: "1.0", DefinitionVersion: "V4", UpdatedAt: stored.UpdatedAt.Truncate(time.Millisecond)}
	if diff := cmp.Diff(want, got, cmpIgnoreRaw); diff != "" {
		t.Errorf("GetAPI (-want +got):\n%s", diff)
	}

	_, err = e.client.GetAPI(t.Context(), "missing")
	var ae *apim.Error
	if !apim.IsNotFound(err) || apim.IsTemporary(err) || !errors.As(err, &ae) || ae.TechnicalCode != "api.notFound" || ae.Parameters["api"] != "missing" {
		t.Errorf("GetAPI(missing) error = %#v", err)
	}

	tests := []struct {
		crossID string
		found   bool
		wantID  string
	}{
		{crossID: "cross-orders", found: true, wantID: stored.ID},
		{crossID: "cross-nowhere", found: false},
	}
	for _, tt := range tests {
		t.Run(tt.crossID, func(t *testing.T) {
			a, ok, err := e.client.FindByCrossID(t.Context(), tt.crossID)
			if err != nil || ok != tt.found || a.ID != tt.wantID {
				t.Errorf("FindByCrossID = %v, %v, %v; want id %q, %v", a.ID, ok, err, tt.wantID, tt.found)
			}
		})
	}
}

func TestFindByCrossIDAmbiguous(t *testing.T) {
	// The stand-in refuses duplicate crossIds, so this APIM is a stub. It
	// pages as APIM does: ListAPIs asks for one API first.
	items := []string{`{"id":"a","crossId":"dup","definitionVersion":"V4","updatedAt":1581256457163}`, `{"id":"b","crossId":"dup","definitionVersion":"V2"}`}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		perPage, _ := strconv.Atoi(r.URL.Query().Get("perPage"))
		start := min((page-1)*perPage, len(items))
		end := min(start+perPage, len(items))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"data":[%s],"pagination":{"page":%d,"perPage":%d,"pageItemsCount":%d,"totalCount":%d}}`,
			strings.Join(items[start:end], ","), page, perPage, end-start, len(items))
	}))
	defer ts.Close()
	c, err := apim.New(apim.Config{BaseURL: ts.URL + "/management/v2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.FindByCrossID(t.Context(), "dup"); !errors.Is(err, apim.ErrAmbiguousCrossID) {
		t.Errorf("FindByCrossID error = %v, want ErrAmbiguousCrossID", err)
	}
	apis, err := c.ListAPIs(t.Context())
	if err != nil || apis[0].UpdatedAt != time.UnixMilli(1581256457163).UTC() {
		t.Errorf("millisecond updatedAt: %v, %v", apis, err)
	}
}

func TestExportAndImport(t *testing.T) {
	e := newEnv(t, nil, nil)
	src := e.seedAPI(t, "Orders", "cross-orders", "/orders")

	raw, err := e.client.Export(t.Context(), src.ID)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if bytes.Contains(raw, []byte(`"members"`)) {
		t.Errorf("export asked without members still has them: %s", raw)
	}
	clean, err := definition.Sanitize(raw, "unused")
	if err != nil {
		t.Fatalf("Sanitize: %v", err)
	}

	target := newEnv(t, func(c *apim.Config) { c.EnvID = "prod" }, nil)
	created, err := target.client.ImportCreate(t.Context(), clean.JSON)
	if err != nil {
		t.Fatalf("ImportCreate: %v", err)
	}
	if created.CrossID != "cross-orders" || created.ID == "" || created.ID == src.ID || created.Name != "Orders" {
		t.Errorf("created = %+v", created)
	}
	updated, err := target.client.ImportUpdate(t.Context(), created.ID, clean.JSON)
	if err != nil {
		t.Fatalf("ImportUpdate: %v", err)
	}
	if updated.ID != created.ID {
		t.Errorf("update changed the id: %s -> %s", created.ID, updated.ID)
	}
	if _, err := target.client.ImportUpdate(t.Context(), "missing", clean.JSON); !apim.IsNotFound(err) {
		t.Errorf("ImportUpdate(missing) error = %v, want not found", err)
	}
	if _, err := target.client.ImportCreate(t.Context(), []byte("{not json")); err == nil || target.sim.Hits(apimsim.OpImportCreate) != 1 {
		t.Errorf("ImportCreate of invalid JSON: %v (it must fail without a request)", err)
	}
	var ae *apim.Error
	_, err = target.client.ImportCreate(t.Context(), clean.JSON)
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || apim.IsTemporary(err) || errors.Is(err, apim.ErrOutcomeUnknown) {
		t.Errorf("second create of the same crossId: %v, want a permanent 409", err)
	}
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*apim.Config)
		status int
	}{
		{name: "wrong password", edit: func(c *apim.Config) { c.Password = "wrong" }, status: 401},
		{name: "no credentials", edit: func(c *apim.Config) { c.User, c.Password = "", "" }, status: 401},
		{name: "right password", status: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.edit, nil)
			_, err := e.client.ListAPIs(t.Context())
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("ListAPIs: %v", err)
				}
				return
			}
			var ae *apim.Error
			if !errors.As(err, &ae) || ae.Status != tt.status || apim.IsTemporary(err) {
				t.Fatalf("error = %v, want a permanent %d *apim.Error", err, tt.status)
			}
			if hits := e.sim.Hits(apimsim.OpListAPIs); hits != 1 {
				t.Errorf("%d requests, want 1: a 401 is not retried", hits)
			}
		})
	}
}

// TestRetries checks the retry policy against injected faults.
func TestRetries(t *testing.T) {
	const crossID = "cross-retry"
	tests := []struct {
		name string
		// fault prepares the stand-in (and may seed it).
		fault func(t *testing.T, e *env) (apiID string)
		// op calls the client.
		op          func(ctx context.Context, c *apim.Client, apiID string) error
		wantStatus  int // 0 means success
		wantUnknown bool
		hitsOp      string
		wantHits    int
		wantCreates int
		wantUpdates int
	}{
		{
			name:  "GET retried after 503",
			fault: func(t *testing.T, e *env) string { e.sim.FailNext(2, 503); return "" },
			op:    list, hitsOp: apimsim.OpListAPIs, wantHits: 3,
		},
		{
			name:  "GET retried after 429",
			fault: func(t *testing.T, e *env) string { e.sim.FailNext(1, 429); return "" },
			op:    list, hitsOp: apimsim.OpListAPIs, wantHits: 2,
		},
		{
			name:  "GET gives up after MaxRetries",
			fault: func(t *testing.T, e *env) string { e.sim.FailNext(10, 503); return "" },
			op:    list, wantStatus: 503, hitsOp: apimsim.OpListAPIs, wantHits: 4,
		},
		{
			name:  "GET not retried after 500",
			fault: func(t *testing.T, e *env) string { e.sim.FailNext(1, 500); return "" },
			op:    list, wantStatus: 500, hitsOp: apimsim.OpListAPIs, wantHits: 1,
		},
		{
			name:  "POST not retried after 503",
			fault: func(t *testing.T, e *env) string { e.sim.FailNext(1, 503); return "" },
			op:    create(crossID), wantStatus: 503, wantUnknown: true, hitsOp: apimsim.OpImportCreate, wantHits: 1, wantCreates: 0,
		},
		{
			name:  "POST not retried after the connection drops",
			fault: func(t *testing.T, e *env) string { e.sim.DropResponseAfterApply(1); return "" },
			op:    create(crossID), wantStatus: -1, wantUnknown: true, hitsOp: apimsim.OpImportCreate, wantHits: 1, wantCreates: 1,
		},
		{
			name: "PUT retried after 502",
			fault: func(t *testing.T, e *env) string {
				id := e.seedAPI(t, "Retry", crossID, "/retry").ID
				e.sim.FailNext(1, 502)
				return id
			},
			op: update(crossID), hitsOp: apimsim.OpImportUpdate, wantHits: 2, wantCreates: 1, wantUpdates: 1,
		},
		{
			name: "PUT retried after the connection drops",
			fault: func(t *testing.T, e *env) string {
				id := e.seedAPI(t, "Retry", crossID, "/retry").ID
				e.sim.DropResponseAfterApply(1)
				return id
			},
			op: update(crossID), hitsOp: apimsim.OpImportUpdate, wantHits: 2, wantCreates: 1, wantUpdates: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			apiID := tt.fault(t, e)
			err := tt.op(t.Context(), e.client, apiID)
			checkErr(t, err, tt.wantStatus, tt.wantUnknown)
			got := []int{e.sim.Hits(tt.hitsOp), e.sim.Creates(crossID), e.sim.Updates(crossID)}
			if diff := cmp.Diff([]int{tt.wantHits, tt.wantCreates, tt.wantUpdates}, got); diff != "" {
				t.Errorf("[hits creates updates] (-want +got):\n%s", diff)
			}
			if tt.wantUnknown {
				// What a caller does next: look before creating again.
				a, found, err := e.client.FindByCrossID(t.Context(), crossID)
				if err != nil || found != (tt.wantCreates == 1) {
					t.Errorf("FindByCrossID after an unknown outcome = %+v, %v, %v", a, found, err)
				}
			}
		})
	}
}

// TestTimeouts checks that a per-attempt timeout is retried for GET and
// never for POST, whose request may have been applied.
func TestTimeouts(t *testing.T) {
	var mu sync.Mutex
	slow := 1                           // requests still to delay
	slowDone := make(chan struct{}, 10) // one value per delayed request served
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			delay := slow > 0
			slow--
			mu.Unlock()
			if delay {
				defer func() { slowDone <- struct{}{} }()
				time.Sleep(300 * time.Millisecond) // past the client's timeout
			}
			next.ServeHTTP(w, r)
		})
	}
	e := newEnv(t, func(c *apim.Config) { c.Timeout = 100 * time.Millisecond }, wrap)

	if _, err := e.client.ListAPIs(t.Context()); err != nil {
		t.Errorf("ListAPIs after one slow answer: %v", err)
	}
	<-slowDone // the abandoned first attempt reaches the stand-in too
	if hits := e.sim.Hits(apimsim.OpListAPIs); hits != 2 {
		t.Errorf("list requests = %d, want 2", hits)
	}

	mu.Lock()
	slow = 1
	mu.Unlock()
	_, err := e.client.ImportCreate(t.Context(), []byte(minimalDef("Slow", "cross-slow", "/slow")))
	checkErr(t, err, -1, true)
	<-slowDone
	if hits, creates := e.sim.Hits(apimsim.OpImportCreate), e.sim.Creates("cross-slow"); hits != 1 || creates != 1 {
		t.Errorf("hits, creates = %d, %d; want 1, 1: the timed-out create was applied once and not retried", hits, creates)
	}
}

// TestConnectionRefused checks that a POST that never reached a server is
// retried, and is not reported as an unknown outcome.
func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	reg := prometheus.NewRegistry()
	c, err := apim.New(apim.Config{BaseURL: "http://" + addr + "/management/v2", MaxRetries: 2,
		RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ImportCreate(t.Context(), []byte(minimalDef("X", "x", "/x")))
	if !errors.Is(err, apim.ErrUnreachable) || errors.Is(err, apim.ErrOutcomeUnknown) || !apim.IsTemporary(err) {
		t.Errorf("error = %v, want ErrUnreachable, temporary, outcome known", err)
	}
	if got := testutil.ToFloat64(retriesMetric(t, reg, "import_create")); got != 2 {
		t.Errorf("retries = %v, want 2", got)
	}
}

func TestCancelledContext(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.sim.FailNext(100, 503)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	c, err := apim.New(apim.Config{BaseURL: e.ts.URL + "/management/v2", User: user, Password: password, RetryWaitMin: time.Second, RetryWaitMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListAPIs(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || apim.IsTemporary(err) || errors.Is(err, apim.ErrUnreachable) {
		t.Errorf("error = %v, want the context's error, not temporary", err)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.sim.FailNext(1, 503)
	if _, err := e.client.ListAPIs(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.GetAPI(t.Context(), "missing"); !apim.IsNotFound(err) {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(retriesMetric(t, e.reg, "list")); got != 1 {
		t.Errorf("retries{op=list} = %v, want 1", got)
	}
	want := `
		# HELP ferry_agent_apim_retries_total Retried attempts of calls to the APIM Management API, by operation.
		# TYPE ferry_agent_apim_retries_total counter
		ferry_agent_apim_retries_total{op="list"} 1
	`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want), "ferry_agent_apim_retries_total"); err != nil {
		t.Error(err)
	}
	n, err := testutil.GatherAndCount(e.reg, "ferry_agent_apim_request_duration_seconds")
	if err != nil || n != 2 {
		t.Errorf("duration series = %d, %v; want 2 (list/200 and get/404)", n, err)
	}
	// A second client on the same registry shares the collectors.
	if _, err := apim.New(apim.Config{BaseURL: e.ts.URL, Registerer: e.reg}); err != nil {
		t.Errorf("second client on one registry: %v", err)
	}
}

func TestSecretRedaction(t *testing.T) {
	cfg := apim.Config{BaseURL: "http://apim/management/v2", User: user, Password: password, Token: "tok-123456"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "cfg", cfg, "password", cfg.Password)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "cfg", cfg)
	fmt.Fprintf(&buf, "%v %+v %#v %s", cfg, cfg, cfg, cfg.Token)
	for _, secret := range []string{password, "tok-123456"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("a secret leaked:\n%s", buf.String())
		}
	}
}

// TestSamplesImport imports every real V4 sample, sanitized, through the
// client into the stand-in, and reads it back.
func TestSamplesImport(t *testing.T) {
	paths, err := filepath.Glob("../../../../shared/reference/gravitee/samples/v4-*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no V4 samples: %v", err)
	}
	e := newEnv(t, nil, nil)
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			clean, err := definition.Sanitize(raw, definition.StableCrossID("dev", filepath.Base(p)))
			if err != nil {
				t.Fatal(err)
			}
			created, err := e.client.ImportCreate(t.Context(), clean.JSON)
			if err != nil {
				t.Fatalf("ImportCreate: %v", err)
			}
			found, ok, err := e.client.FindByCrossID(t.Context(), clean.CrossID)
			if err != nil || !ok || found.ID != created.ID || found.Name != clean.Name {
				t.Errorf("FindByCrossID = %+v, %v, %v; want %s", found, ok, err, created.ID)
			}
		})
	}
}

func list(ctx context.Context, c *apim.Client, _ string) error {
	_, err := c.ListAPIs(ctx)
	return err
}

func create(crossID string) func(context.Context, *apim.Client, string) error {
	return func(ctx context.Context, c *apim.Client, _ string) error {
		_, err := c.ImportCreate(ctx, []byte(minimalDef("Retry", crossID, "/retry")))
		return err
	}
}

func update(crossID string) func(context.Context, *apim.Client, string) error {
	return func(ctx context.Context, c *apim.Client, apiID string) error {
		_, err := c.ImportUpdate(ctx, apiID, []byte(minimalDef("Retry v2", crossID, "/retry")))
		return err
	}
}

// checkErr checks err against a wanted status: 0 for success, -1 for a
// transport failure, else an *apim.Error with that status.
func checkErr(t *testing.T, err error, status int, unknown bool) {
	t.Helper()
	var ae *apim.Error
	switch {
	case status == 0:
		if err != nil {
			t.Fatalf("error = %v, want success", err)
		}
		return
	case status == -1:
		if !errors.Is(err, apim.ErrUnreachable) {
			t.Fatalf("error = %v, want ErrUnreachable", err)
		}
	case !errors.As(err, &ae) || ae.Status != status:
		t.Fatalf("error = %v, want an *apim.Error with status %d", err, status)
	}
	if errors.Is(err, apim.ErrOutcomeUnknown) != unknown {
		t.Errorf("errors.Is(%v, ErrOutcomeUnknown) = %v, want %v", err, !unknown, unknown)
	}
}

var cmpIgnoreRaw = cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Raw" }, cmp.Ignore())

func retriesMetric(t *testing.T, reg *prometheus.Registry, op string) prometheus.Collector {
	t.Helper()
	// Registering an identical collector returns the one in use.
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ferry_agent", Subsystem: "apim", Name: "retries_total",
		Help: "Retried attempts of calls to the APIM Management API, by operation.",
	}, []string{"op"})
	var are prometheus.AlreadyRegisteredError
	if err := reg.Register(c); !errors.As(err, &are) {
		t.Fatalf("retries metric not registered: %v", err)
	}
	return are.ExistingCollector.(*prometheus.CounterVec).WithLabelValues(op)
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
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
