package link_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ferry.dev/hub/internal/agenttest"
	"ferry.dev/hub/internal/link"
	"ferry.dev/shared/protocol"
)

func TestCallRoundTrip(t *testing.T) {
	h := newTestHub(t, link.Config{}, nil)
	want := protocol.ExportedAPI{APIID: "api-1", CrossID: "x-1", Name: "Petstore", Definition: json.RawMessage(`{"api":{}}`)}
	var gotReq protocol.ExportRequest
	h.connect(t, &agenttest.Agent{Credential: cred1, OnCommand: func(_ *agenttest.Conn, cmd *protocol.Command) *protocol.Reply {
		if cmd.Op != protocol.OpExportAPI {
			return protocol.ErrorReply(protocol.CodeUnsupported, string(cmd.Op))
		}
		if err := json.Unmarshal(cmd.Body, &gotReq); err != nil {
			return protocol.ErrorReply(protocol.CodeInvalid, err.Error())
		}
		r, _ := protocol.OKReply(want)
		return r
	}})

	var got protocol.ExportedAPI
	if err := h.ep.Registry().Call(ctxTimeout(t, 5*time.Second), ins1, protocol.OpExportAPI, protocol.ExportRequest{APIID: "api-1"}, &got); err != nil {
		t.Fatalf("Call: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reply body (-want +got):\n%s", diff)
	}
	if gotReq.APIID != "api-1" {
		t.Errorf("agent got request %+v, want api_id api-1", gotReq)
	}
	if n := metric(t, h.reg, "ferry_hub_link_call_duration_seconds", "op", string(protocol.OpExportAPI)); n != 1 {
		t.Errorf("call duration samples = %v, want 1", n)
	}
	if n := metric(t, h.reg, "ferry_hub_link_messages_total", "type", "command", "direction", "out"); n != 1 {
		t.Errorf("messages{command,out} = %v, want 1", n)
	}
	if n := metric(t, h.reg, "ferry_hub_link_messages_total", "type", "reply", "direction", "in"); n != 1 {
		t.Errorf("messages{reply,in} = %v, want 1", n)
	}

	err := h.ep.Registry().Call(ctxTimeout(t, 5*time.Second), ins2, protocol.OpExportAPI, protocol.ExportRequest{APIID: "api-1"}, nil)
	if codeOf(err) != protocol.CodeUnavailable {
		t.Errorf("Call to an installation that is not connected: %v, want %s", err, protocol.CodeUnavailable)
	}
}

func TestCallErrorReply(t *testing.T) {
	h := newTestHub(t, link.Config{}, nil)
	h.connect(t, &agenttest.Agent{Credential: cred1, OnCommand: func(*agenttest.Conn, *protocol.Command) *protocol.Reply {
		return protocol.ErrorReply(protocol.CodeNotFound, "API api-1 does not exist")
	}})
	err := h.ep.Registry().Call(ctxTimeout(t, 5*time.Second), ins1, protocol.OpExportAPI, protocol.ExportRequest{APIID: "api-1"}, nil)
	if !errors.Is(err, &protocol.Error{Code: protocol.CodeNotFound, Message: "API api-1 does not exist"}) {
		t.Errorf("Call = %v, want not_found with the agent's message", err)
	}
}

// TestCallDeadlineGrowsWithSize is the A6 finding: a call without a
// deadline is allowed the endpoint's call timeout plus its command's size
// at the slow-link rate, so a large delivery that a slow link carries for
// longer than the call timeout is not timed out (and sent again behind
// itself). The agent here answers every command after 600 ms; the call
// timeout is 200 ms and the slow-link rate 10 KiB/s, so a 20 KiB command
// has about 2.2 s and a small one 200 ms.
func TestCallDeadlineGrowsWithSize(t *testing.T) {
	h := newTestHub(t, link.Config{CallTimeout: 200 * time.Millisecond, SlowLinkRate: 10 << 10}, nil)
	h.connect(t, &agenttest.Agent{Credential: cred1, OnCommand: func(*agenttest.Conn, *protocol.Command) *protocol.Reply {
		time.Sleep(600 * time.Millisecond)
		r, _ := protocol.OKReply(map[string]bool{"stored": true})
		return r
	}})
	large := protocol.ExportRequest{APIID: strings.Repeat("a", 20<<10)}
	if err := h.ep.Registry().Call(context.Background(), ins1, protocol.OpExportAPI, large, nil); err != nil {
		t.Errorf("a 20 KiB call answered after 600 ms: %v, want it answered (allowed ~2.2 s)", err)
	}
	err := h.ep.Registry().Call(context.Background(), ins1, protocol.OpExportAPI, protocol.ExportRequest{APIID: "a"}, nil)
	if codeOf(err) != protocol.CodeTimeout {
		t.Errorf("a small call answered after 600 ms: %v, want %s (allowed ~200 ms)", err, protocol.CodeTimeout)
	}
}

func TestCallTimeout(t *testing.T) {
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"caller's deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}},
		{"endpoint's call timeout", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHub(t, link.Config{CallTimeout: 150 * time.Millisecond}, nil)
			release := make(chan struct{})
			var late sync.WaitGroup
			late.Add(1)
			var calls sync.Mutex
			n := 0
			h.connect(t, &agenttest.Agent{Credential: cred1, OnCommand: func(*agenttest.Conn, *protocol.Command) *protocol.Reply {
				calls.Lock()
				n++
				first := n == 1
				calls.Unlock()
				if first {
					// Answer the first call only after the hub gave up.
					defer late.Done()
					<-release
				}
				r, _ := protocol.OKReply(map[string]int{"call": n})
				return r
			}})
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			err := h.ep.Registry().Call(ctx, ins1, protocol.OpExportAPI, protocol.ExportRequest{APIID: "a"}, nil)
			if codeOf(err) != protocol.CodeTimeout || !protocol.CodeOf(err).Temporary() {
				t.Fatalf("Call = %v, want a temporary %s error", err, protocol.CodeTimeout)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Call took %v to time out", d)
			}
			// The late reply is dropped and the link stays up.
			close(release)
			late.Wait()
			var out map[string]int
			if err := h.ep.Registry().Call(ctxTimeout(t, 5*time.Second), ins1, protocol.OpExportAPI, protocol.ExportRequest{APIID: "a"}, &out); err != nil {
				t.Fatalf("Call after a late reply: %v", err)
			}
			if out["call"] != 2 {
				t.Errorf("second call got %v: the late reply of the first was delivered to it", out)
			}
		})
	}
}

func TestCallFailsWhenAgentDrops(t *testing.T) {
	h := newTestHub(t, link.Config{CallTimeout: 10 * time.Second}, nil)
	h.connect(t, &agenttest.Agent{Credential: cred1, OnCommand: func(c *agenttest.Conn, _ *protocol.Command) *protocol.Reply {
		c.Drop()
		return nil
	}})
	start := time.Now()
	err := h.ep.Registry().Call(context.Background(), ins1, protocol.OpExportAPI, protocol.ExportRequest{APIID: "a"}, nil)
	if codeOf(err) != protocol.CodeDisconnected {
		t.Errorf("Call = %v, want %s", err, protocol.CodeDisconnected)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Call took %v to fail after the agent dropped", d)
	}
	h.waitDisconnected(t, 5*time.Second)
}

// A link that ends fails the hub's pending calls at once and cancels the
// handlers of the agent's commands, even while one of those is still running.
func TestLinkEndCancelsHandlersAndCalls(t *testing.T) {
	const opBlock = protocol.Op("test.block")
	started, cancelled := make(chan struct{}), make(chan struct{})
	h := newTestHub(t, link.Config{CallTimeout: 10 * time.Second}, map[protocol.Op]link.HandlerFunc{
		opBlock: func(ctx context.Context, _ link.Peer, _ json.RawMessage) (any, error) {
			close(started)
			select {
			case <-ctx.Done():
				close(cancelled)
			case <-time.After(10 * time.Second):
			}
			return nil, ctx.Err()
		},
	})
	c, _ := h.connect(t, &agenttest.Agent{Credential: cred1, OnCommand: func(c *agenttest.Conn, _ *protocol.Command) *protocol.Reply {
		c.Drop()
		return nil
	}})
	agentCall := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), opBlock, nil)
		agentCall <- err
	}()
	<-started

	start := time.Now()
	err := h.ep.Registry().Call(context.Background(), ins1, protocol.OpExportAPI, protocol.ExportRequest{APIID: "a"}, nil)
	if codeOf(err) != protocol.CodeDisconnected {
		t.Errorf("Call = %v, want %s", err, protocol.CodeDisconnected)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Call took %v to fail while an agent command was in flight", d)
	}
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Error("the handler's context was not cancelled when the link ended")
	}
	h.waitDisconnected(t, 5*time.Second)
	<-agentCall
}

func TestAgentCommands(t *testing.T) {
	const (
		opEcho     = protocol.Op("test.echo")
		opNotFound = protocol.Op("test.not_found")
		opBug      = protocol.Op("test.bug")
	)
	h := newTestHub(t, link.Config{}, map[protocol.Op]link.HandlerFunc{
		opEcho: func(_ context.Context, p link.Peer, body json.RawMessage) (any, error) {
			return map[string]any{"peer": p.InstallationID, "body": body}, nil
		},
		opNotFound: func(context.Context, link.Peer, json.RawMessage) (any, error) {
			return nil, protocol.Errorf(protocol.CodeNotFound, "no promotion prm_9")
		},
		opBug: func(context.Context, link.Peer, json.RawMessage) (any, error) {
			return nil, errors.New("nil map in store")
		},
	})
	c, lc := h.connect(t, &agenttest.Agent{Credential: cred1})
	tests := []struct {
		op   protocol.Op
		want protocol.Reply
	}{
		{opEcho, protocol.Reply{Status: protocol.StatusOK, Body: json.RawMessage(`{"body":{"x":1},"peer":"ins_1"}`)}},
		{"test.unknown", *protocol.ErrorReply(protocol.CodeUnsupported, "operation test.unknown is not supported by this hub")},
		{opNotFound, *protocol.ErrorReply(protocol.CodeNotFound, "no promotion prm_9")},
		{opBug, *protocol.ErrorReply(protocol.CodeInternal, "internal error; the hub logged the details")},
	}
	for _, tt := range tests {
		t.Run(string(tt.op), func(t *testing.T) {
			got, err := c.Call(ctxTimeout(t, 5*time.Second), tt.op, map[string]int{"x": 1})
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			if diff := cmp.Diff(tt.want, *got); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
		})
	}
	select {
	case <-lc.Done():
		t.Error("the link ended after an unsupported operation")
	default:
	}
}

func TestUnknownMessageType(t *testing.T) {
	h := newTestHub(t, link.Config{}, nil)
	c, lc := h.connect(t, &agenttest.Agent{Credential: cred1})
	if err := c.SendRaw(1, []byte(`{"v":1,"type":"teleport","id":"t1","payload":{"to":"mars"}}`)); err != nil {
		t.Fatal(err)
	}
	rep, err := c.WaitFrame(ctxTimeout(t, 5*time.Second), func(e *protocol.Envelope) bool { return e.ReplyTo == "t1" })
	if err != nil {
		t.Fatal(err)
	}
	var r protocol.Reply
	if err := rep.DecodePayload(&r); err != nil || r.Error == nil || r.Error.Code != protocol.CodeUnsupported {
		t.Errorf("reply to an unknown type = %s, want unsupported", rep.Payload)
	}
	// The link is still up: a health check is answered.
	hc, _ := protocol.New(protocol.TypeHealthCheck, "hc1", "", &protocol.HealthCheck{})
	if err := c.Send(hc); err != nil {
		t.Fatal(err)
	}
	rep, err = c.WaitFrame(ctxTimeout(t, 5*time.Second), func(e *protocol.Envelope) bool { return e.ReplyTo == "hc1" })
	if err != nil {
		t.Fatalf("health check after an unknown type: %v", err)
	}
	var health protocol.Health
	if err := rep.DecodePayload(&r); err != nil || json.Unmarshal(r.Body, &health) != nil || !health.Healthy {
		t.Errorf("health reply = %s, want healthy", rep.Payload)
	}
	if n := metric(t, h.reg, "ferry_hub_link_messages_total", "type", "unknown", "direction", "in"); n != 1 {
		t.Errorf("messages{unknown,in} = %v, want 1", n)
	}
	select {
	case <-lc.Done():
		t.Error("the link ended after an unknown message type")
	default:
	}
}

func TestAgentGoodbye(t *testing.T) {
	h := newTestHub(t, link.Config{}, nil)
	c, lc := h.connect(t, &agenttest.Agent{Credential: cred1})
	if err := c.Goodbye("agent shutting down"); err != nil {
		t.Fatal(err)
	}
	if d := h.waitDisconnected(t, 5*time.Second); d.conn != lc || !d.primary {
		t.Errorf("Disconnected(%v, %v), want the agent's primary link", d.conn.ID(), d.primary)
	}
	if code, _ := c.Wait(ctxTimeout(t, 5*time.Second)); code != 1000 {
		t.Errorf("close code = %d, want 1000", code)
	}
	if n := metric(t, h.reg, "ferry_hub_link_disconnects_total", "reason", "goodbye"); n != 1 {
		t.Errorf("disconnects{goodbye} = %v, want 1", n)
	}
}

func TestSilentAgentIsClosedAfterPongWait(t *testing.T) {
	const ping, pongWait = 50 * time.Millisecond, 200 * time.Millisecond
	h := newTestHub(t, link.Config{PingInterval: ping, PongWait: pongWait}, nil)
	silent, silentConn := h.connect(t, &agenttest.Agent{Credential: cred1, IgnorePings: true})
	start := time.Now()
	alive, aliveConn := h.connect(t, &agenttest.Agent{Credential: cred2})

	d := h.waitDisconnected(t, 5*time.Second)
	took := time.Since(start)
	if d.conn != silentConn || !d.primary {
		t.Fatalf("Disconnected(%s), want the silent agent's link %s", d.conn.ID(), silentConn.ID())
	}
	if took < pongWait/2 {
		t.Errorf("silent agent closed after %v, before the pong wait of %v", took, pongWait)
	}
	if n := metric(t, h.reg, "ferry_hub_link_disconnects_total", "reason", "silent"); n != 1 {
		t.Errorf("disconnects{silent} = %v, want 1", n)
	}
	if silent.Pings() == 0 {
		t.Error("the hub never pinged the silent agent")
	}

	// The agent that answers pings outlives several pong waits.
	time.Sleep(3 * pongWait)
	select {
	case <-aliveConn.Done():
		t.Fatalf("an agent answering pings was closed: %v", alive.Err())
	default:
	}
	if alive.Pings() < 3 {
		t.Errorf("agent got %d pings in %v at a %v interval", alive.Pings(), 3*pongWait, ping)
	}
	if age := time.Since(aliveConn.LastSeen()); age > pongWait {
		t.Errorf("LastSeen is %v old, want pongs to refresh it", age)
	}
}

func TestSlowAgentIsDisconnected(t *testing.T) {
	const writeWait = 3 * time.Second
	h := newTestHub(t, link.Config{SendQueue: 1, WriteWait: writeWait, CallTimeout: 20 * time.Second}, nil)
	// An agent that reads nothing, with a small receive buffer: once the
	// hub's socket buffer (a few MiB at most) is full, its writer blocks.
	_, lc := h.connect(t, &agenttest.Agent{Credential: cred1, NoRead: true, RecvBuffer: 4096})

	pending := make(chan error, 1)
	go func() {
		_, err := lc.Call(context.Background(), protocol.OpExportAPI, protocol.ExportRequest{APIID: "a"})
		pending <- err
	}()

	// One 256 KiB command at a time, each given up on after 50ms, until the
	// writer is stuck, the queue of one is full, and an enqueue refuses.
	body := json.RawMessage(`"` + strings.Repeat("x", 256<<10) + `"`)
	var refusedAt time.Time
	for i := 0; i < 100 && refusedAt.IsZero(); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		start := time.Now()
		_, err := lc.Call(ctx, protocol.OpDeliverPromotion, body)
		cancel()
		switch codeOf(err) {
		case protocol.CodeTimeout:
		case protocol.CodeUnavailable:
			refusedAt = time.Now()
			if d := refusedAt.Sub(start); d > time.Second {
				t.Errorf("the refused call took %v: enqueue blocked", d)
			}
		default:
			t.Fatalf("call %d to a slow agent = %v, want timeout until the queue is full", i, err)
		}
	}
	if refusedAt.IsZero() {
		t.Fatal("100 calls of 256 KiB to an agent that reads nothing, and no enqueue found the queue full")
	}
	// The pending call fails when the link is closed, not when the blocked
	// writer reaches its deadline.
	select {
	case err := <-pending:
		if codeOf(err) != protocol.CodeDisconnected {
			t.Errorf("pending call = %v, want %s", err, protocol.CodeDisconnected)
		}
		if d := time.Since(refusedAt); d > writeWait/3 {
			t.Errorf("pending call failed %v after the agent was found slow", d)
		}
	case <-time.After(2 * writeWait):
		t.Fatal("pending call did not fail after the slow agent was disconnected")
	}
	if d := h.waitDisconnected(t, 2*writeWait); d.conn != lc {
		t.Errorf("Disconnected(%s), want the slow agent %s", d.conn.ID(), lc.ID())
	}
	if n := metric(t, h.reg, "ferry_hub_link_disconnects_total", "reason", "slow consumer"); n != 1 {
		t.Errorf("disconnects{slow consumer} = %v, want 1", n)
	}
}
