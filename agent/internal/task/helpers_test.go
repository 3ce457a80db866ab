package task

import (
	"bytes"
	"context"
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

	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/agent/apimsim"
	"ferry.dev/agent/internal/apim"
	"ferry.dev/agent/internal/authn"
	"ferry.dev/agent/internal/definition"
	"ferry.dev/agent/internal/taskstore"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

const (
	envDev  = "env_dev"
	envProd = "env_prod"
	apimEnv = "PROD" // the target APIM environment in the stand-in
)

var hello = &protocol.HelloReply{
	InstallationID: "inst_1", OrgID: "org_1", OrgName: "Acme",
	Environments: []protocol.Environment{{ID: envProd, Name: "Prod"}},
	Status:       protocol.InstallationAccepted,
}

// fakeHub is a small stand-in for the link client. Its zero value answers
// every call with unsupported; handlers script the answers.
type fakeHub struct {
	mu       sync.Mutex
	hello    *protocol.HelloReply
	handlers map[protocol.Op]func(body json.RawMessage) (any, error)
	calls    []hubCall
}

type hubCall struct {
	Op   protocol.Op
	Body json.RawMessage
}

func (h *fakeHub) Hello() *protocol.HelloReply {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hello
}

func (h *fakeHub) handle(op protocol.Op, f func(json.RawMessage) (any, error)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.handlers == nil {
		h.handlers = map[protocol.Op]func(json.RawMessage) (any, error){}
	}
	h.handlers[op] = f
}

func (h *fakeHub) Call(ctx context.Context, op protocol.Op, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.calls = append(h.calls, hubCall{op, b})
	f := h.handlers[op]
	h.mu.Unlock()
	if f == nil {
		return protocol.Errorf(protocol.CodeUnsupported, "fake hub: no handler for "+string(op))
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

func (h *fakeHub) callsOf(op protocol.Op) []json.RawMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []json.RawMessage
	for _, c := range h.calls {
		if c.Op == op {
			out = append(out, c.Body)
		}
	}
	return out
}

// ackDecisions makes the hub accept every decision report.
func (h *fakeHub) ackDecisions() {
	h.handle(protocol.OpReportDecision, func(b json.RawMessage) (any, error) {
		var d protocol.Decision
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, err
		}
		if err := d.Validate(); err != nil {
			return nil, protocol.Errorf(protocol.CodeInvalid, err.Error())
		}
		return protocol.Promotion{ID: d.PromotionID, TargetEnvID: envProd, Status: protocol.PromotionStatus(d.Outcome),
			TargetAPIID: d.TargetAPIID, CreatedAt: t0, UpdatedAt: t0.Add(time.Hour)}, nil
	})
}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// user is an authenticated user with env permissions; the rig's runner
// trusts whatever authn verified, so no signature is needed here.
func user(id, name string, env map[string][]session.Permission, api map[string][]session.Permission) authn.User {
	u := authn.User{Claims: session.Claims{Org: "org_1", Name: name, Env: env, API: api}, Token: authn.Token("tok-" + id)}
	u.Claims.Subject = id
	return u
}

// admin holds every permission a promotion needs in Prod, the rig's
// environment; actor is how it is recorded.
var admin = user("usr_ada", "Ada", map[string][]session.Permission{
	envProd: {session.EnvAPIRead, session.EnvAPICreate, session.EnvAPIUpdate, session.APIDefUpdate}}, nil)

const actor = "Ada (usr_ada)"

// rig is one test's agent: a stand-in APIM over HTTP, the real client, the
// real store on a temp dir, a fake hub and a Runner.
type rig struct {
	t       *testing.T
	sim     *apimsim.Server
	ts      *httptest.Server
	client  *apim.Client
	dbPath  string
	store   *taskstore.Store
	hub     *fakeHub
	runner  *Runner
	reg     *prometheus.Registry
	logs    *syncBuffer
	imports *imported
}

// imported records the bodies of the import requests APIM received.
type imported struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (i *imported) all() [][]byte {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([][]byte(nil), i.bodies...)
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, sim: apimsim.New(apimsim.Options{}), hub: &fakeHub{hello: hello}, imports: &imported{}}
	r.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasSuffix(req.URL.Path, "/_import/definition") {
			b, _ := io.ReadAll(req.Body)
			r.imports.mu.Lock()
			r.imports.bodies = append(r.imports.bodies, b)
			r.imports.mu.Unlock()
			req.Body = io.NopCloser(bytes.NewReader(b))
		}
		r.sim.ServeHTTP(w, req)
	}))
	t.Cleanup(r.ts.Close)
	c, err := apim.New(apim.Config{BaseURL: r.ts.URL + "/management/v2", EnvID: apimEnv,
		RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond, MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	r.client = c
	r.dbPath = filepath.Join(t.TempDir(), taskstore.FileName)
	r.open(nil)
	t.Cleanup(func() { r.store.Close() })
	return r
}

// open (re)opens the store and builds a new Runner on it, as after an agent
// restart. wrap may put a fault-injecting Store in front of the real one.
func (r *rig) open(wrap func(Store) Store) {
	r.t.Helper()
	if r.store != nil {
		r.store.Close()
	}
	s, err := taskstore.Open(context.Background(), r.dbPath)
	if err != nil {
		r.t.Fatal(err)
	}
	r.store = s
	var st Store = s
	if wrap != nil {
		st = wrap(s)
	}
	r.reg = prometheus.NewRegistry()
	r.logs = &syncBuffer{}
	r.runner, err = New(Config{Store: st, APIM: r.client, Hub: r.hub, Registerer: r.reg,
		Logger:         slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ReportInterval: 10 * time.Millisecond, MaxReportBackoff: 40 * time.Millisecond, HubTimeout: time.Second})
	if err != nil {
		r.t.Fatal(err)
	}
}

// run runs the Runner until the test ends.
func (r *rig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.runner.Run(ctx); err != nil {
			r.t.Errorf("Run: %v", err)
		}
	}()
	r.t.Cleanup(func() {
		cancel()
		<-done
	})
}

// sample returns a sample export sanitized as the source agent does.
func sample(t *testing.T, name string) definition.Sanitized {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "shared", "reference", "gravitee", "samples", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	san, err := definition.Sanitize(raw, definition.StableCrossID(envDev, "api-id"))
	if err != nil {
		t.Fatal(err)
	}
	return san
}

const membersSample = "v4-http-proxy-with-members-groups-plans-pages-media"

// deliver delivers a promotion of def to the rig's Runner.
func (r *rig) deliver(id string, san definition.Sanitized) {
	r.t.Helper()
	p := protocol.Promotion{ID: id, OrgID: "org_1", SourceEnvID: envDev, SourceEnv: "Dev", TargetEnvID: envProd, TargetEnv: "Prod",
		APIID: "api-id", CrossID: san.CrossID, APIName: san.Name, APIVersion: san.Version, Requester: "alice",
		Status: protocol.PromotionToBeValidated, CreatedAt: t0, UpdatedAt: t0, Definition: san.JSON}
	b, _ := json.Marshal(p)
	if _, err := r.runner.HandleDeliver(context.Background(), b); err != nil {
		r.t.Fatalf("deliver %s: %v", id, err)
	}
}

// eventually polls cond until it holds or 5s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
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
