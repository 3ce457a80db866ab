package link_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/agent/internal/hubtest"
	"ferry.dev/agent/internal/link"
	"ferry.dev/shared/protocol"
)

// testClient is a link client of a fake hub.
type testClient struct {
	*link.Client
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error // Run's result
}

// newClient builds a client of hub with short timings; mod adjusts the
// config. Register handlers, then call run.
func newClient(t *testing.T, hub *hubtest.Hub, mod func(*link.Config)) *testClient {
	t.Helper()
	cfg := link.Config{
		HubURL: hub.URL(), Credential: "cred-test", AgentVersion: "1.2.3", Hostname: "apim-dev",
		APIMURL:    "http://127.0.0.1:8083/management/v2",
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, ReconnectSpread: -1,
		PongWait: 5 * time.Second, WriteWait: 2 * time.Second, CallTimeout: 5 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	c, err := link.New(cfg, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	return &testClient{Client: c, reg: reg, done: make(chan error, 1)}
}

// run starts Run; the test's cleanup stops it and waits.
func (c *testClient) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() { c.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

func startHub(t *testing.T, h *hubtest.Hub) *hubtest.Hub {
	t.Helper()
	h.Start(t)
	return h
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func waitConn(t *testing.T, h *hubtest.Hub, n int) *hubtest.Conn {
	t.Helper()
	c, err := h.WaitConn(ctxTimeout(t, 5*time.Second), n)
	if err != nil {
		t.Fatalf("connection %d: %v", n, err)
	}
	return c
}

func codeOf(err error) protocol.Code {
	if err == nil {
		return ""
	}
	return protocol.CodeOf(err)
}

func TestConnectSaysHelloFirst(t *testing.T) {
	hub := startHub(t, &hubtest.Hub{})
	c := newClient(t, hub, nil)
	c.run(t)
	if err := c.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitConn(t, hub, 1)
	frames := hub.Frames()
	if len(frames) < 2 || !frames[0].FromAgent || frames[0].Env == nil || frames[0].Env.Type != protocol.TypeHello {
		t.Fatalf("first frame = %+v, want the agent's hello", frames[0])
	}
	var hello protocol.Hello
	if err := frames[0].Env.DecodePayload(&hello); err != nil {
		t.Fatal(err)
	}
	want := protocol.Hello{AgentVersion: "1.2.3", Hostname: "apim-dev", APIMURL: "http://127.0.0.1:8083/management/v2"}
	if diff := cmp.Diff(want, hello); diff != "" {
		t.Errorf("hello (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(hubtest.DefaultHelloReply(), c.Hello()); diff != "" {
		t.Errorf("Hello() (-want +got):\n%s", diff)
	}
	if got := metricValue(t, c.reg, "ferry_agent_link_state"); got != float64(link.StateConnected) {
		t.Errorf("state gauge = %v, want %d", got, link.StateConnected)
	}
}

// metricValue returns the value of the counter or gauge name with exactly
// the given label pairs, or 0 when absent.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
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
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(want) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if want[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return 0
}

func TestStates(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	hub := startHub(t, &hubtest.Hub{OnHello: func(*hubtest.Conn, *protocol.Hello) (*protocol.HelloReply, error) {
		close(entered)
		<-release
		return hubtest.DefaultHelloReply(), nil
	}})
	c := newClient(t, hub, nil)
	if s := c.State(); s != link.StateClosed {
		t.Errorf("state before Run = %v, want closed", s)
	}
	c.run(t)
	<-entered
	if s := c.State(); s != link.StateConnecting {
		t.Errorf("state while the hub holds the hello = %v, want connecting", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.WaitConnected(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitConnected before the hello reply = %v, want the context's deadline", err)
	}
	close(release)
	if err := c.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if s := c.State(); s != link.StateConnected {
		t.Errorf("state after the hello reply = %v, want connected", s)
	}
	c.cancel()
	select {
	case err := <-c.done:
		if err != nil {
			t.Errorf("Run = %v after its context ended, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	c.done <- nil // for the cleanup
	if s := c.State(); s != link.StateClosed {
		t.Errorf("state after Run = %v, want closed", s)
	}
	if got := metricValue(t, c.reg, "ferry_agent_link_state"); got != 0 {
		t.Errorf("state gauge after Run = %v, want 0", got)
	}
}

func TestReconnectsAndRunsOnConnect(t *testing.T) {
	var mu sync.Mutex
	n := 0
	hub := startHub(t, &hubtest.Hub{OnHello: func(*hubtest.Conn, *protocol.Hello) (*protocol.HelloReply, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		r := hubtest.DefaultHelloReply()
		r.HubVersion = map[int]string{1: "first", 2: "second"}[n]
		return r, nil
	}})
	c := newClient(t, hub, func(cfg *link.Config) {
		cfg.MinBackoff, cfg.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
		cfg.HealthyIn = time.Hour // never reset: the first wait is MinBackoff
	})
	hooks := make(chan string, 4)
	c.OnConnect(func(r *protocol.HelloReply) { hooks <- r.HubVersion })
	c.run(t)

	first := waitConn(t, hub, 1)
	if v := <-hooks; v != "first" {
		t.Errorf("OnConnect got hub version %q, want first", v)
	}
	dropped := time.Now()
	first.Drop()
	waitConn(t, hub, 2)
	gap := time.Since(dropped)
	select {
	case v := <-hooks:
		if v != "second" {
			t.Errorf("OnConnect after the reconnect got %q, want second", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnConnect did not run after the reconnect")
	}
	if gap < 25*time.Millisecond {
		t.Errorf("reconnected %v after the drop, before the backoff's floor of 25ms", gap)
	}
	if got := metricValue(t, c.reg, "ferry_agent_link_reconnects_total"); got != 1 {
		t.Errorf("reconnects = %v, want 1", got)
	}
}

func TestBackoffWhileHubRefuses(t *testing.T) {
	const minBackoff = 40 * time.Millisecond
	var mu sync.Mutex
	var attempts []time.Time
	hub := startHub(t, &hubtest.Hub{Authorize: func(string) int {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, time.Now())
		if len(attempts) <= 3 {
			return http.StatusServiceUnavailable
		}
		return 0
	}})
	c := newClient(t, hub, func(cfg *link.Config) { cfg.MinBackoff, cfg.MaxBackoff = minBackoff, time.Second })
	c.run(t)
	waitConn(t, hub, 1)
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(attempts); i++ {
		gap := attempts[i].Sub(attempts[i-1])
		floor := (minBackoff << (i - 1)) / 2 // full jitter over [d/2, d)
		if gap < floor {
			t.Errorf("attempt %d came %v after the previous one, want at least %v", i+1, gap, floor)
		}
	}
	if got := metricValue(t, c.reg, "ferry_agent_link_dial_failures_total", "reason", "refused"); got != 3 {
		t.Errorf("dial failures{refused} = %v, want 3", got)
	}
}

func TestUnauthorizedStopsRun(t *testing.T) {
	hub := startHub(t, &hubtest.Hub{Authorize: func(string) int { return http.StatusUnauthorized }})
	c := newClient(t, hub, nil)
	c.run(t)
	select {
	case err := <-c.done:
		if !errors.Is(err, link.ErrUnauthorized) {
			t.Errorf("Run = %v, want ErrUnauthorized", err)
		}
		c.done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run kept going after a 401")
	}
	if n := hub.Attempts(); n != 1 {
		t.Errorf("hub saw %d attempts, want 1", n)
	}
	if s := c.State(); s != link.StateClosed {
		t.Errorf("state = %v, want closed", s)
	}
	if got := metricValue(t, c.reg, "ferry_agent_link_dial_failures_total", "reason", "unauthorized"); got != 1 {
		t.Errorf("dial failures{unauthorized} = %v, want 1", got)
	}
}

func TestHandlersAnswerHubCommands(t *testing.T) {
	hub := startHub(t, &hubtest.Hub{})
	c := newClient(t, hub, nil)
	c.Handle(protocol.OpExportAPI, func(_ context.Context, body json.RawMessage) (any, error) {
		var req protocol.ExportRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, protocol.Errorf(protocol.CodeInvalid, err.Error())
		}
		return protocol.ExportedAPI{APIID: req.APIID, CrossID: "x-1", Name: "Petstore", Definition: json.RawMessage(`{}`)}, nil
	})
	c.Handle(protocol.OpCancelPromotion, func(context.Context, json.RawMessage) (any, error) {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no task for prm_1")
	})
	c.Handle(protocol.OpDeliverPromotion, func(context.Context, json.RawMessage) (any, error) {
		return nil, errors.New("disk full")
	})
	c.run(t)
	conn := waitConn(t, hub, 1)
	tests := []struct {
		op   protocol.Op
		body any
		want *protocol.Reply
	}{
		{protocol.OpExportAPI, protocol.ExportRequest{APIID: "api-1"}, &protocol.Reply{Status: protocol.StatusOK, Body: json.RawMessage(`{"api_id":"api-1","cross_id":"x-1","name":"Petstore","definition":{}}`)}},
		{protocol.OpCancelPromotion, protocol.CancelRequest{PromotionID: "prm_1"}, protocol.ErrorReply(protocol.CodeNotFound, "no task for prm_1")},
		{protocol.OpDeliverPromotion, nil, protocol.ErrorReply(protocol.CodeInternal, "disk full")},
		{"teleport", nil, protocol.ErrorReply(protocol.CodeUnsupported, "operation teleport is not supported by this agent")},
	}
	for _, tt := range tests {
		t.Run(string(tt.op), func(t *testing.T) {
			got, err := conn.Call(ctxTimeout(t, 5*time.Second), tt.op, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
		})
	}
	// An unknown message type is answered, and the link stays up.
	if err := conn.SendRaw(websocket.TextMessage, []byte(`{"v":1,"type":"teleport","id":"t1"}`)); err != nil {
		t.Fatal(err)
	}
	f, err := hub.WaitFrame(ctxTimeout(t, 5*time.Second), func(f hubtest.Frame) bool { return f.FromAgent && f.Env != nil && f.Env.ReplyTo == "t1" })
	if err != nil {
		t.Fatal(err)
	}
	var r protocol.Reply
	if err := f.Env.DecodePayload(&r); err != nil || r.Error == nil || r.Error.Code != protocol.CodeUnsupported {
		t.Errorf("reply to an unknown type = %s, want unsupported", f.Env.Payload)
	}
	if _, err := conn.Call(ctxTimeout(t, 5*time.Second), protocol.OpExportAPI, protocol.ExportRequest{APIID: "api-2"}); err != nil {
		t.Errorf("call after an unknown type: %v", err)
	}
	if len(hub.Conns()) != 1 {
		t.Errorf("agent reconnected %d times", len(hub.Conns())-1)
	}
}

func TestCallHub(t *testing.T) {
	targets := protocol.TargetList{SourceEnvID: "env_dev", Targets: []protocol.Target{{Environment: protocol.Environment{ID: "env_prod", Name: "Prod"}, Online: true}}}
	hub := startHub(t, &hubtest.Hub{OnCommand: func(c *hubtest.Conn, cmd *protocol.Command) *protocol.Reply {
		switch cmd.Op {
		case protocol.OpListTargets:
			r, _ := protocol.OKReply(targets)
			return r
		case protocol.OpReportDecision:
			return protocol.ErrorReply(protocol.CodeConflict, "already decided")
		case protocol.OpRequestPromotion:
			c.Drop()
		}
		return nil // promotions.list: never answered
	}})
	c := newClient(t, hub, func(cfg *link.Config) { cfg.CallTimeout = 150 * time.Millisecond; cfg.MinBackoff = time.Second })

	if err := c.Call(ctxTimeout(t, time.Second), protocol.OpListTargets, nil, nil); !errors.Is(err, link.ErrNotConnected) {
		t.Errorf("Call before Run = %v, want ErrNotConnected", err)
	}
	c.run(t)
	if err := c.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}

	var got protocol.TargetList
	if err := c.Call(ctxTimeout(t, 5*time.Second), protocol.OpListTargets, nil, &got); err != nil {
		t.Fatalf("Call: %v", err)
	}
	if diff := cmp.Diff(targets, got); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	err := c.Call(ctxTimeout(t, 5*time.Second), protocol.OpReportDecision, protocol.Decision{}, nil)
	if !errors.Is(err, &protocol.Error{Code: protocol.CodeConflict}) {
		t.Errorf("Call answered with an error = %v, want conflict", err)
	}
	start := time.Now()
	if err := c.Call(context.Background(), protocol.OpListPromotions, nil, nil); codeOf(err) != protocol.CodeTimeout {
		t.Errorf("Call never answered = %v, want timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Call timed out after %v, want the 150ms call timeout", d)
	}
	start = time.Now()
	if err := c.Call(ctxTimeout(t, 5*time.Second), protocol.OpRequestPromotion, nil, nil); codeOf(err) != protocol.CodeDisconnected && !errors.Is(err, link.ErrNotConnected) {
		t.Errorf("Call when the hub drops the link = %v, want disconnected", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Call failed %v after the hub dropped the link", d)
	}
	// The link is down until the backoff (≥ 500ms) has passed.
	deadline := time.Now().Add(2 * time.Second)
	for c.State() == link.StateConnected && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := c.Call(ctxTimeout(t, time.Second), protocol.OpListTargets, nil, nil); !errors.Is(err, link.ErrNotConnected) {
		t.Errorf("Call while reconnecting = %v, want ErrNotConnected", err)
	}
}

func TestDeadHubIsDetected(t *testing.T) {
	const pongWait = 200 * time.Millisecond
	hub := startHub(t, &hubtest.Hub{PingInterval: 40 * time.Millisecond})
	c := newClient(t, hub, func(cfg *link.Config) { cfg.PongWait = pongWait })
	c.run(t)
	first := waitConn(t, hub, 1)

	// Pings keep a quiet link up past several pong waits.
	time.Sleep(3 * pongWait)
	select {
	case <-first.Done():
		t.Fatalf("agent left a hub that was pinging: %v", first.Err())
	default:
	}
	silenced := time.Now()
	first.Silence()
	waitConn(t, hub, 2)
	took := time.Since(silenced)
	if took < pongWait/2 {
		t.Errorf("agent reconnected %v after the hub fell silent, before its pong wait of %v", took, pongWait)
	}
	select {
	case <-first.Done():
	case <-time.After(5 * time.Second):
		t.Error("agent did not close the dead link")
	}
}

func TestHubGoodbye(t *testing.T) {
	hub := startHub(t, &hubtest.Hub{})
	c := newClient(t, hub, nil)
	c.run(t)
	first := waitConn(t, hub, 1)
	if err := first.Goodbye("hub shutting down", true); err != nil {
		t.Fatal(err)
	}
	first.Close(websocket.CloseServiceRestart, "hub shutting down")
	waitConn(t, hub, 2)
}

func TestDrain(t *testing.T) {
	hub := startHub(t, &hubtest.Hub{})
	c := newClient(t, hub, nil)
	started, release := make(chan struct{}), make(chan struct{})
	c.Handle(protocol.OpDeliverPromotion, func(context.Context, json.RawMessage) (any, error) {
		close(started)
		<-release
		return nil, nil
	})
	c.run(t)
	conn := waitConn(t, hub, 1)

	inflight := make(chan *protocol.Reply, 1)
	go func() {
		r, err := conn.Call(context.Background(), protocol.OpDeliverPromotion, protocol.Promotion{ID: "prm_1"})
		if err != nil {
			t.Errorf("in-flight call: %v", err)
		}
		inflight <- r
	}()
	<-started

	drained := make(chan struct{})
	go func() {
		defer close(drained)
		c.Drain(ctxTimeout(t, 5*time.Second))
	}()
	for c.State() != link.StateDraining {
		time.Sleep(time.Millisecond)
	}
	refused, err := conn.Call(ctxTimeout(t, 5*time.Second), protocol.OpCancelPromotion, protocol.CancelRequest{PromotionID: "prm_1"})
	if err != nil {
		t.Fatal(err)
	}
	if refused.Error == nil || refused.Error.Code != protocol.CodeUnavailable {
		t.Errorf("command while draining = %+v, want unavailable", refused)
	}
	select {
	case <-drained:
		t.Fatal("Drain returned while a command was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if r := <-inflight; r == nil || r.Status != protocol.StatusOK {
		t.Errorf("in-flight command = %+v, want ok", r)
	}
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("Drain did not return")
	}
	// The goodbye follows the in-flight reply.
	if _, err := hub.WaitFrame(ctxTimeout(t, 5*time.Second), func(f hubtest.Frame) bool {
		return f.FromAgent && f.Env != nil && f.Env.Type == protocol.TypeGoodbye
	}); err != nil {
		t.Fatalf("no goodbye after Drain: %v", err)
	}
	frames := hub.Frames()
	var order []protocol.Type
	for _, f := range frames {
		if f.FromAgent && f.Env != nil && f.Env.Type != protocol.TypeHello {
			order = append(order, f.Env.Type)
		}
	}
	if diff := cmp.Diff([]protocol.Type{protocol.TypeReply, protocol.TypeReply, protocol.TypeGoodbye}, order); diff != "" {
		t.Errorf("agent's frames after hello (-want +got):\n%s", diff)
	}
	// A drained link stays down.
	time.Sleep(200 * time.Millisecond)
	if n := hub.Attempts(); n != 1 {
		t.Errorf("agent connected %d times after draining, want no reconnect", n-1)
	}
	if s := c.State(); s != link.StateDraining && s != link.StateClosed {
		t.Errorf("state after Drain = %v, want draining or closed", s)
	}
}
