package link_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/agent/internal/hubtest"
	"ferry.dev/agent/internal/link"
	"ferry.dev/shared/protocol"
)

// TestDialOffersSubprotocol covers the agent's side of catalogue row W5: the
// upgrade offers protocol.Subprotocol, which the hub requires.
func TestDialOffersSubprotocol(t *testing.T) {
	hub := startHub(t, &hubtest.Hub{})
	var mu sync.Mutex
	var offered []string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		offered = append(offered, r.Header.Get("Sec-WebSocket-Protocol"))
		mu.Unlock()
		hub.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	c := newClient(t, hub, func(cfg *link.Config) { cfg.HubURL = front.URL })
	c.run(t)
	waitConn(t, hub, 1)
	mu.Lock()
	defer mu.Unlock()
	if len(offered) != 1 || offered[0] != protocol.Subprotocol {
		t.Errorf("Sec-WebSocket-Protocol offered = %q, want [%q]", offered, protocol.Subprotocol)
	}
}

// TestSupersededBacksOff covers the agent's side of W8: a link the hub
// closes with 4000 superseded does not reset the backoff, however healthy
// the session was, so two agents sharing a credential do not take the link
// from each other at the minimum backoff.
func TestSupersededBacksOff(t *testing.T) {
	const minBackoff = 40 * time.Millisecond
	hub := startHub(t, &hubtest.Hub{})
	// HealthyIn of 1ms: any other close would reset the backoff to
	// minBackoff every time.
	c := newClient(t, hub, func(cfg *link.Config) {
		cfg.MinBackoff, cfg.MaxBackoff, cfg.HealthyIn = minBackoff, 2*time.Second, time.Millisecond
	})
	c.run(t)
	conn := waitConn(t, hub, 1)
	for i := range 3 {
		time.Sleep(5 * time.Millisecond) // a session longer than HealthyIn
		closedAt := time.Now()
		conn.Close(protocol.CloseSuperseded, "superseded")
		conn = waitConn(t, hub, i+2)
		gap := time.Since(closedAt)
		floor := (minBackoff << i) / 2 // full jitter over [d/2, d)
		if gap < floor {
			t.Errorf("reconnect %d came %v after being superseded, want at least %v", i+1, gap, floor)
		}
	}
	if c.State() != link.StateConnected {
		// WaitConn saw the hello; the hello reply may still be in flight.
		if err := c.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
			t.Errorf("not connected after the last supersede: %v", err)
		}
	}
}

// TestOtherCloseResetsBackoff is the control for TestSupersededBacksOff: a
// healthy session that ends with any other close code resets the backoff.
func TestOtherCloseResetsBackoff(t *testing.T) {
	const minBackoff = 40 * time.Millisecond
	hub := startHub(t, &hubtest.Hub{})
	c := newClient(t, hub, func(cfg *link.Config) {
		cfg.MinBackoff, cfg.MaxBackoff, cfg.HealthyIn = minBackoff, 2*time.Second, time.Millisecond
	})
	c.run(t)
	conn := waitConn(t, hub, 1)
	for i := range 3 {
		time.Sleep(5 * time.Millisecond)
		closedAt := time.Now()
		conn.Close(websocket.CloseTryAgainLater, "slow consumer")
		conn = waitConn(t, hub, i+2)
		// Reset every time: the wait is in [min/2, min); allow scheduling
		// slack but stay below the second step's floor of min.
		if gap := time.Since(closedAt); gap >= 2*minBackoff {
			t.Errorf("reconnect %d came %v after a normal close, want under %v (backoff reset)", i+1, gap, 2*minBackoff)
		}
	}
}

// TestHelloRefusedWithError checks that an error frame answering the hello
// (W16's unsupported_version) ends the attempt with the hub's code, and the
// agent retries with backoff rather than giving up.
func TestHelloRefusedWithError(t *testing.T) {
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{Subprotocols: []string{protocol.Subprotocol}}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_, _, _ = ws.ReadMessage()
		env, _ := protocol.New(protocol.TypeError, "", "", &protocol.Error{Code: protocol.CodeUnsupportedVersion, Message: "protocol version 1 is not supported", Ref: "a1"})
		_ = ws.WriteJSON(env)
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "unsupported version"), time.Now().Add(time.Second))
	}))
	t.Cleanup(front.Close)
	var logs syncBuffer
	// No spread: the first wait would otherwise be up to ReconnectSpread.
	cfg := link.Config{HubURL: front.URL, Credential: "cred-test", AgentVersion: "1.2.3", MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, ReconnectSpread: -1}
	reg := prometheus.NewRegistry()
	lc, err := link.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	c := &testClient{Client: lc, reg: reg, done: make(chan error, 1)}
	c.run(t)
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(t, c.reg, "ferry_agent_link_dial_failures_total", "reason", "hello") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the agent did not retry after the hello was refused")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c.State() == link.StateConnected {
		t.Errorf("state = %s, want connecting", c.State())
	}
	if got := logs.String(); !strings.Contains(got, "hub refused the hello: unsupported_version") {
		t.Errorf("logs do not name the hub's refusal:\n%s", got)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRevokedStopsTheLink: a link the hub closes with protocol.CloseRevoked
// ends Run with ErrUnauthorized at once, without dialling again with a
// credential the hub no longer knows (rows C7, W26).
func TestRevokedStopsTheLink(t *testing.T) {
	hub := startHub(t, &hubtest.Hub{})
	c := newClient(t, hub, nil)
	c.run(t)
	conn := waitConn(t, hub, 1)
	conn.Close(protocol.CloseRevoked, "installation revoked")
	select {
	case err := <-c.done:
		if !errors.Is(err, link.ErrUnauthorized) {
			t.Errorf("Run after a revocation = %v, want ErrUnauthorized", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run kept going after the hub revoked the installation")
	}
	c.done <- nil // for the cleanup, which waits on done
	if n := len(hub.Conns()); n != 1 {
		t.Errorf("%d connections, want 1: the agent dialled again after the revocation", n)
	}
}

// TestDuplicateHubCommandRunsOnce is catalogue row A8 at the agent: a copy
// of a hub command (a frame the network duplicated) does not run again and
// is answered with the first reply, marked duplicate.
func TestDuplicateHubCommandRunsOnce(t *testing.T) {
	hub := startHub(t, &hubtest.Hub{})
	c := newClient(t, hub, nil)
	runs := 0
	var mu sync.Mutex
	c.Handle(protocol.OpCancelPromotion, func(context.Context, json.RawMessage) (any, error) {
		mu.Lock()
		runs++
		mu.Unlock()
		return map[string]string{"cancelled": "prm_1"}, nil
	})
	c.run(t)
	conn := waitConn(t, hub, 1)
	env, err := protocol.New(protocol.TypeCommand, "h-dup", "", &protocol.Command{Op: protocol.OpCancelPromotion, Body: json.RawMessage(`{"promotion_id":"prm_1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := conn.Send(env); err != nil {
			t.Fatal(err)
		}
	}
	var replies []protocol.Reply
	deadline := time.Now().Add(5 * time.Second)
	for len(replies) < 2 && time.Now().Before(deadline) {
		replies = replies[:0]
		for _, f := range hub.Frames() {
			if f.FromAgent && f.Env != nil && f.Env.Type == protocol.TypeReply && f.Env.ReplyTo == "h-dup" {
				var r protocol.Reply
				if err := f.Env.DecodePayload(&r); err == nil {
					replies = append(replies, r)
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(replies) != 2 {
		t.Fatalf("%d replies to the two copies, want 2", len(replies))
	}
	if replies[0].Duplicate || !replies[1].Duplicate || string(replies[0].Body) != string(replies[1].Body) || replies[1].Status != protocol.StatusOK {
		t.Errorf("replies = %+v; want the first reply, then the same marked duplicate", replies)
	}
	mu.Lock()
	defer mu.Unlock()
	if runs != 1 {
		t.Errorf("the handler ran %d times, want once", runs)
	}
}
