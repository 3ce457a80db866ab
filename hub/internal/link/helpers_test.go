package link_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"ferry.dev/hub/internal/agenttest"
	"ferry.dev/hub/internal/link"
	"ferry.dev/shared/protocol"
)

// Credentials the fake sessions know.
const (
	cred1 = "cred-one"
	cred2 = "cred-two"
	ins1  = "ins_1"
	ins2  = "ins_2"
)

type disconnect struct {
	conn    *link.Conn
	primary bool
}

// fakeSessions is the installation inventory of the tests.
type fakeSessions struct {
	connected    chan *link.Conn // every Connected call
	disconnected chan disconnect // every Disconnected call

	mu        sync.Mutex // guards the fields below
	peers     map[string]link.Peer
	authErr   error // returned by AuthenticateAgent when set
	authCalls int
	hellos    []protocol.Hello
	onHello   func(link.Peer) // called by Hello without the lock, when set
}

var _ link.Sessions = (*fakeSessions)(nil)

func newFakeSessions() *fakeSessions {
	return &fakeSessions{
		connected:    make(chan *link.Conn, 64),
		disconnected: make(chan disconnect, 64),
		peers: map[string]link.Peer{
			cred1: {InstallationID: ins1, OrgID: "org_1", EnvIDs: []string{"env_dev"}},
			cred2: {InstallationID: ins2, OrgID: "org_1", EnvIDs: []string{"env_prod"}},
		},
	}
}

func (s *fakeSessions) AuthenticateAgent(_ context.Context, cred string) (link.Peer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authCalls++
	if s.authErr != nil {
		return link.Peer{}, s.authErr
	}
	p, ok := s.peers[cred]
	if !ok {
		return link.Peer{}, protocol.Errorf(protocol.CodeUnauthorized, "unknown installation credential")
	}
	return p, nil
}

func (s *fakeSessions) Hello(_ context.Context, p link.Peer, h *protocol.Hello) (*protocol.HelloReply, error) {
	s.mu.Lock()
	s.hellos = append(s.hellos, *h)
	hook := s.onHello
	s.mu.Unlock()
	if hook != nil {
		hook(p)
	}
	return &protocol.HelloReply{
		InstallationID: p.InstallationID, OrgID: p.OrgID, OrgName: "Acme",
		Environments: []protocol.Environment{{ID: p.EnvIDs[0], Name: p.EnvIDs[0]}},
		Status:       protocol.InstallationAccepted,
	}, nil
}

func (s *fakeSessions) Connected(_ context.Context, c *link.Conn) { s.connected <- c }

func (s *fakeSessions) Disconnected(c *link.Conn, primary bool) {
	s.disconnected <- disconnect{conn: c, primary: primary}
}

func (s *fakeSessions) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authCalls
}

// testHub is an Endpoint served by an in-process HTTP server.
type testHub struct {
	ep   *link.Endpoint
	srv  *httptest.Server
	sess *fakeSessions
	reg  *prometheus.Registry
}

// newTestHub starts an endpoint with cfg and handlers; the test's cleanup
// shuts it down.
func newTestHub(t testing.TB, cfg link.Config, handlers map[protocol.Op]link.HandlerFunc) *testHub {
	t.Helper()
	return newTestHubWith(t, cfg, handlers, nil)
}

// newTestHubWith is newTestHub with setup run on the endpoint before it
// serves (to register hooks).
func newTestHubWith(t testing.TB, cfg link.Config, handlers map[protocol.Op]link.HandlerFunc, setup func(*link.Endpoint)) *testHub {
	t.Helper()
	sess := newFakeSessions()
	reg := prometheus.NewRegistry()
	ep, err := link.New(cfg, sess, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	for op, h := range handlers {
		ep.Handle(op, h)
	}
	if setup != nil {
		setup(ep)
	}
	mux := http.NewServeMux()
	mux.Handle(agenttest.LinkPath, ep)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ep.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		srv.Close()
	})
	return &testHub{ep: ep, srv: srv, sess: sess, reg: reg}
}

// dial connects a fake agent and closes it when the test ends.
func (h *testHub) dial(t *testing.T, a *agenttest.Agent) *agenttest.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, h.srv.URL)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// connect dials an agent that says hello and waits until the hub has made
// it the installation's primary connection.
func (h *testHub) connect(t *testing.T, a *agenttest.Agent) (*agenttest.Conn, *link.Conn) {
	t.Helper()
	c := h.dial(t, a)
	return c, h.waitConnected(t)
}

func (h *testHub) waitConnected(t *testing.T) *link.Conn {
	t.Helper()
	select {
	case lc := <-h.sess.connected:
		return lc
	case <-time.After(5 * time.Second):
		t.Fatal("Sessions.Connected was not called")
		return nil
	}
}

func (h *testHub) waitDisconnected(t *testing.T, within time.Duration) disconnect {
	t.Helper()
	select {
	case d := <-h.sess.disconnected:
		return d
	case <-time.After(within):
		t.Fatalf("Sessions.Disconnected was not called within %v", within)
		return disconnect{}
	}
}

// metric returns the value of the counter, gauge or histogram (its sample
// count) name with exactly the given label pairs, or 0 when absent.
func metric(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !labelsMatch(m, want) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	if len(m.GetLabel()) != len(want) {
		return false
	}
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
			return false
		}
	}
	return true
}

// ctxTimeout is a context for one step of a test.
func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// codeOf returns the protocol code of err, or "" for nil.
func codeOf(err error) protocol.Code {
	if err == nil {
		return ""
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		return protocol.CodeInternal
	}
	return pe.Code
}
