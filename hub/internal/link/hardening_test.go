package link_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"ferry.dev/hub/internal/agenttest"
	"ferry.dev/hub/internal/link"
	"ferry.dev/shared/protocol"
)

// Tests of the catalogue's WebSocket bad-input rows (W2-W16, W25, D2, D3,
// D6). Malformed frames go over raw TCP (rawframe_test.go); the rest use
// real gorilla clients.

// TestInvalidUTF8ClosesWith1007 covers W14: gorilla does not check that
// text frames are UTF-8, the link does, before and after the hello.
func TestInvalidUTF8ClosesWith1007(t *testing.T) {
	bad := []byte("{\"v\":1,\"type\":\"health_check\",\"id\":\"u1\",\"payload\":{\"x\":\"\xff\xfe\"}}")
	t.Run("after hello", func(t *testing.T) {
		h := newTestHub(t, link.Config{}, nil)
		c, lc := h.connect(t, &agenttest.Agent{Credential: cred1})
		if err := c.SendRaw(websocket.TextMessage, bad); err != nil {
			t.Fatal(err)
		}
		if code, err := c.Wait(ctxTimeout(t, 5*time.Second)); code != websocket.CloseInvalidFramePayloadData {
			t.Errorf("close code = %d (%v), want 1007", code, err)
		}
		if d := h.waitDisconnected(t, 5*time.Second); d.conn != lc {
			t.Errorf("Disconnected(%s), want %s", d.conn.ID(), lc.ID())
		}
		if got := metric(t, h.reg, "ferry_hub_link_disconnects_total", "reason", "invalid UTF-8"); got != 1 {
			t.Errorf("disconnects{invalid UTF-8} = %v, want 1", got)
		}
	})
	t.Run("as the hello", func(t *testing.T) {
		h := newTestHub(t, link.Config{}, nil)
		c := h.dial(t, &agenttest.Agent{Credential: cred1, SkipHello: true})
		hello := []byte("{\"v\":1,\"type\":\"hello\",\"id\":\"a1\",\"payload\":{\"agent_version\":\"\xc3\x28\"}}")
		if err := c.SendRaw(websocket.TextMessage, hello); err != nil {
			t.Fatal(err)
		}
		if code, err := c.Wait(ctxTimeout(t, 5*time.Second)); code != websocket.CloseInvalidFramePayloadData {
			t.Errorf("close code = %d (%v), want 1007", code, err)
		}
	})
	t.Run("valid rune split across fragments", func(t *testing.T) {
		// UTF-8 is checked on the whole message, not per frame: "é" split
		// between two frames is valid.
		h := newTestHub(t, link.Config{}, nil)
		rc := h.rawConnect(t)
		msg := []byte(`{"v":1,"type":"health_check","id":"é1"}`)
		i := bytes.IndexByte(msg, 0xc3) + 1
		_ = rc.write(false, 0, opText, true, msg[:i])
		_ = rc.write(true, 0, opContinuation, true, msg[i:])
		_, op, payload, err := rc.read()
		if err != nil || op != opText || !strings.Contains(string(payload), `"reply_to":"é1"`) {
			t.Errorf("reply to a fragmented health check: op %d %s (%v)", op, payload, err)
		}
	})
}

// TestMalformedFramesCloseWith1002 covers W10/D3 (RSV bits without a
// negotiated extension), W11 (unmasked client frame) and W12 (control frame
// over 125 bytes, fragmented control frame), sent as raw frames after the
// hello.
func TestMalformedFramesCloseWith1002(t *testing.T) {
	health := []byte(`{"v":1,"type":"health_check","id":"m1"}`)
	tests := []struct {
		name  string
		frame func(rc *rawConn) error
	}{
		{"RSV1 without compression", func(rc *rawConn) error { return rc.write(true, 0x40, opText, true, health) }},
		{"RSV2", func(rc *rawConn) error { return rc.write(true, 0x20, opText, true, health) }},
		{"RSV3", func(rc *rawConn) error { return rc.write(true, 0x10, opText, true, health) }},
		{"unmasked text frame", func(rc *rawConn) error { return rc.write(true, 0, opText, false, health) }},
		{"ping of 126 bytes", func(rc *rawConn) error { return rc.write(true, 0, opPing, true, bytes.Repeat([]byte("p"), 126)) }},
		{"fragmented ping", func(rc *rawConn) error { return rc.write(false, 0, opPing, true, []byte("p")) }},
		{"continuation without a start", func(rc *rawConn) error { return rc.write(true, 0, opContinuation, true, health) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHub(t, link.Config{}, nil)
			rc := h.rawConnect(t)
			lc := h.waitConnected(t)
			if err := tt.frame(rc); err != nil {
				t.Fatal(err)
			}
			if code, reason := rc.closeCode(); code != websocket.CloseProtocolError {
				t.Errorf("close code = %d %q, want 1002", code, reason)
			}
			if d := h.waitDisconnected(t, 5*time.Second); d.conn != lc {
				t.Errorf("Disconnected(%s), want %s", d.conn.ID(), lc.ID())
			}
			if got := metric(t, h.reg, "ferry_hub_link_disconnects_total", "reason", "protocol error"); got != 1 {
				t.Errorf("disconnects{protocol error} = %v, want 1", got)
			}
		})
	}
}

// TestCompressionNotNegotiated covers D3: an offer of permessage-deflate is
// not accepted, so RSV1 stays a protocol error (TestMalformedFramesCloseWith1002).
func TestCompressionNotNegotiated(t *testing.T) {
	h := newTestHub(t, link.Config{}, nil)
	rc := h.rawUpgrade(t, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
	if rc.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", rc.resp.Status)
	}
	if ext := rc.resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Errorf("hub accepted extensions %q, want none", ext)
	}
}

// TestOversizedMessageInFragments covers W9/D2: the read limit counts the
// whole message, so a message over it sent as many continuation frames is
// closed with 1009 like a single oversized frame (TestReadLimit).
func TestOversizedMessageInFragments(t *testing.T) {
	tests := []struct {
		name  string
		limit int64 // Config.MaxFrameBytes; 0 is protocol.MaxFrameBytes (4 MiB)
		chunk int
	}{
		{"4 MiB limit, 4 KiB frames", 0, 4 << 10},
		// 1-byte frames: a smaller limit keeps the frame count (64 Ki) quick.
		{"64 KiB limit, 1-byte frames", 64 << 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHub(t, link.Config{MaxFrameBytes: tt.limit}, nil)
			limit := tt.limit
			if limit == 0 {
				limit = protocol.MaxFrameBytes
			}
			rc := h.rawConnect(t)
			lc := h.waitConnected(t)
			closed := rc.closeCodeAsync()
			// The frames go in batches, as one write each, so that 64 Ki
			// one-byte frames do not take 64 Ki syscalls.
			var batch bytes.Buffer
			chunk := bytes.Repeat([]byte("x"), tt.chunk)
			sent := int64(0)
			first := true
			for sent <= limit+int64(tt.chunk) {
				op := byte(opContinuation)
				if first {
					op, first = opText, false
				}
				batch.Write(frame(false, 0, op, true, chunk))
				sent += int64(tt.chunk)
				if batch.Len() >= 64<<10 {
					if _, err := rc.conn.Write(batch.Bytes()); err != nil {
						break // the hub has closed the link
					}
					batch.Reset()
				}
			}
			if batch.Len() > 0 {
				_, _ = rc.conn.Write(batch.Bytes())
			}
			select {
			case code := <-closed:
				if code != websocket.CloseMessageTooBig {
					t.Errorf("close code = %d, want 1009", code)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("no close frame")
			}
			if d := h.waitDisconnected(t, 5*time.Second); d.conn != lc {
				t.Errorf("Disconnected(%s), want %s", d.conn.ID(), lc.ID())
			}
			if got := metric(t, h.reg, "ferry_hub_link_disconnects_total", "reason", "frame exceeds 4 MiB"); got != 1 {
				t.Errorf("disconnects{frame exceeds 4 MiB} = %v, want 1", got)
			}
		})
	}
}

// securityEvents records the endpoint's security events.
type securityEvents struct {
	mu  sync.Mutex
	evs []link.SecurityEvent
	ch  chan struct{} // one token per event
}

func newSecurityEvents() *securityEvents { return &securityEvents{ch: make(chan struct{}, 64)} }

func (s *securityEvents) record(_ context.Context, ev link.SecurityEvent) {
	s.mu.Lock()
	s.evs = append(s.evs, ev)
	s.mu.Unlock()
	s.ch <- struct{}{}
}

func (s *securityEvents) all() []link.SecurityEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]link.SecurityEvent(nil), s.evs...)
}

// TestMessageFloodClosesWith1008 covers D6/W25: an agent sending far above
// 100 messages/s is closed with 1008, counted and reported as a security
// event, while another agent's link carries on.
func TestMessageFloodClosesWith1008(t *testing.T) {
	sec := newSecurityEvents()
	h := newTestHubWith(t, link.Config{}, nil, func(ep *link.Endpoint) { ep.OnSecurityEvent(sec.record) })
	flooder, floodConn := h.connect(t, &agenttest.Agent{Credential: cred1})
	_, otherConn := h.connect(t, &agenttest.Agent{Credential: cred2, OnCommand: func(*agenttest.Conn, *protocol.Command) *protocol.Reply {
		r, _ := protocol.OKReply(nil)
		return r
	}})
	// Error frames get no answer, so the flood does not fill the hub's
	// send queue: only the rate policy can end the link.
	noise, _ := json.Marshal(map[string]any{"v": 1, "type": "error", "payload": map[string]any{"code": "bad_message"}})
	for range 1000 {
		if err := flooder.SendRaw(websocket.TextMessage, noise); err != nil {
			break // closed
		}
	}
	code, err := flooder.Wait(ctxTimeout(t, 5*time.Second))
	if code != websocket.ClosePolicyViolation {
		t.Fatalf("flooder closed with %d (%v), want 1008", code, err)
	}
	var ce *websocket.CloseError
	if errors.As(flooder.Err(), &ce) && ce.Text != "message rate exceeded" {
		t.Errorf("close reason %q, want %q", ce.Text, "message rate exceeded")
	}
	if d := h.waitDisconnected(t, 5*time.Second); d.conn != floodConn {
		t.Errorf("Disconnected(%s), want the flooder %s", d.conn.ID(), floodConn.ID())
	}
	if got := metric(t, h.reg, "ferry_hub_link_rate_closes_total", "limit", "messages"); got != 1 {
		t.Errorf("rate closes{messages} = %v, want 1", got)
	}
	evs := sec.all()
	if len(evs) != 1 || evs[0].Kind != link.KindFlood || !evs[0].Closed || evs[0].Peer.InstallationID != ins1 {
		t.Errorf("security events = %+v, want one closing flood event of %s", evs, ins1)
	}
	// The other agent is unaffected.
	if _, err := otherConn.Call(ctxTimeout(t, 5*time.Second), protocol.OpExportAPI, protocol.ExportRequest{APIID: "api-1"}); err != nil {
		t.Errorf("call to the other agent after the flood: %v", err)
	}
	if _, ok := h.ep.Registry().Get(ins2); !ok {
		t.Error("the other agent is no longer registered")
	}
}

// TestMessageRateUnderTheLimit checks the other side of D6: an agent that
// keeps under the rate is never closed, whatever it sends in total.
func TestMessageRateUnderTheLimit(t *testing.T) {
	h := newTestHub(t, link.Config{MessageRate: 50, MessageBurst: 5}, nil)
	c, lc := h.connect(t, &agenttest.Agent{Credential: cred1})
	noise, _ := json.Marshal(map[string]any{"v": 1, "type": "error", "payload": map[string]any{"code": "bad_message"}})
	// 40 messages at 25/s: twice the burst, half the rate.
	for range 40 {
		if err := c.SendRaw(websocket.TextMessage, noise); err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Millisecond)
	}
	hc, _ := protocol.New(protocol.TypeHealthCheck, "hc1", "", &protocol.HealthCheck{})
	if err := c.Send(hc); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitFrame(ctxTimeout(t, 5*time.Second), func(e *protocol.Envelope) bool { return e.ReplyTo == "hc1" }); err != nil {
		t.Fatalf("health check after 40 paced messages: %v", err)
	}
	select {
	case <-lc.Done():
		t.Error("link ended under the rate limit")
	default:
	}
}

// TestBadMessages covers W15: malformed envelopes, unknown types and invalid
// payloads are answered with bad_message (an error frame naming the message,
// or a reply when it is a command) and the link stays open; the eleventh
// within a minute closes it with 1008.
func TestBadMessages(t *testing.T) {
	sec := newSecurityEvents()
	h := newTestHubWith(t, link.Config{}, nil, func(ep *link.Endpoint) { ep.OnSecurityEvent(sec.record) })
	c, lc := h.connect(t, &agenttest.Agent{Credential: cred1})
	tests := []struct {
		name     string
		frame    string
		ref      string
		wantType protocol.Type
		wantCode protocol.Code
	}{
		{"missing type", `{"v":1,"id":"b1"}`, "b1", protocol.TypeError, protocol.CodeBadMessage},
		{"missing version", `{"type":"health_check","id":"b2"}`, "b2", protocol.TypeError, protocol.CodeBadMessage},
		{"not json", `hello there`, "", protocol.TypeError, protocol.CodeBadMessage},
		{"json array", `[1,2]`, "", protocol.TypeError, protocol.CodeBadMessage},
		{"command without id", `{"v":1,"type":"command","payload":{"op":"promotion.list"}}`, "", protocol.TypeError, protocol.CodeBadMessage},
		{"reply without reply_to", `{"v":1,"type":"reply","id":"b6"}`, "b6", protocol.TypeError, protocol.CodeBadMessage},
		{"unknown type without id", `{"v":1,"type":"teleport"}`, "", protocol.TypeError, protocol.CodeBadMessage},
		{"unknown type with id", `{"v":1,"type":"teleport","id":"b8"}`, "b8", protocol.TypeReply, protocol.CodeUnsupported},
		{"command without op", `{"v":1,"type":"command","id":"b9","payload":{}}`, "b9", protocol.TypeReply, protocol.CodeBadMessage},
		{"command payload not an object", `{"v":1,"type":"command","id":"b10","payload":"x"}`, "b10", protocol.TypeReply, protocol.CodeBadMessage},
	}
	if len(tests) != link.DefaultMaxBadMessages {
		t.Fatalf("%d cases, want DefaultMaxBadMessages = %d", len(tests), link.DefaultMaxBadMessages)
	}
	for i, tt := range tests {
		if err := c.SendRaw(websocket.TextMessage, []byte(tt.frame)); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		// Answers come in order; the i-th answer after the hello reply is
		// this message's.
		n := 0
		env, err := c.WaitFrame(ctxTimeout(t, 5*time.Second), func(e *protocol.Envelope) bool {
			if e.Type == protocol.TypeHelloReply {
				return false
			}
			n++
			return n == i+1
		})
		if err != nil {
			t.Fatalf("%s: no answer: %v", tt.name, err)
		}
		var pe protocol.Error
		switch env.Type {
		case protocol.TypeError:
			if err := env.DecodePayload(&pe); err != nil {
				t.Fatal(err)
			}
		case protocol.TypeReply:
			var r protocol.Reply
			if err := env.DecodePayload(&r); err != nil || r.Error == nil {
				t.Fatalf("%s: reply %s (%v)", tt.name, env.Payload, err)
			}
			pe, pe.Ref = *r.Error, env.ReplyTo
		}
		if env.Type != tt.wantType || pe.Code != tt.wantCode || pe.Ref != tt.ref {
			t.Errorf("%s: answer %s %s (ref %q), want %s %s (ref %q)", tt.name, env.Type, pe.Code, pe.Ref, tt.wantType, tt.wantCode, tt.ref)
		}
	}
	// Still open after ten.
	hc, _ := protocol.New(protocol.TypeHealthCheck, "hc1", "", &protocol.HealthCheck{})
	if err := c.Send(hc); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitFrame(ctxTimeout(t, 5*time.Second), func(e *protocol.Envelope) bool { return e.ReplyTo == "hc1" }); err != nil {
		t.Fatalf("health check after %d bad messages: %v", len(tests), err)
	}
	if got := metric(t, h.reg, "ferry_hub_link_bad_messages_total"); got != float64(len(tests)) {
		t.Errorf("bad messages = %v, want %d", got, len(tests))
	}
	// The eleventh closes the link.
	if err := c.SendRaw(websocket.TextMessage, []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if code, err := c.Wait(ctxTimeout(t, 5*time.Second)); code != websocket.ClosePolicyViolation {
		t.Errorf("close after 11 bad messages = %d (%v), want 1008", code, err)
	}
	if d := h.waitDisconnected(t, 5*time.Second); d.conn != lc {
		t.Errorf("Disconnected(%s), want %s", d.conn.ID(), lc.ID())
	}
	if got := metric(t, h.reg, "ferry_hub_link_rate_closes_total", "limit", "bad_messages"); got != 1 {
		t.Errorf("rate closes{bad_messages} = %v, want 1", got)
	}
	if evs := sec.all(); len(evs) != 1 || evs[0].Kind != link.KindBadMessages || !evs[0].Closed {
		t.Errorf("security events = %+v, want one closing bad_messages event", evs)
	}
}

// TestBadMessagesWindowSlides checks that W15's allowance is per window: ten
// bad messages, a pause longer than the window, ten more, and the link is
// still open.
func TestBadMessagesWindowSlides(t *testing.T) {
	const window = 300 * time.Millisecond
	h := newTestHub(t, link.Config{BadMessageWindow: window}, nil)
	c, lc := h.connect(t, &agenttest.Agent{Credential: cred1})
	send := func() {
		for range link.DefaultMaxBadMessages {
			if err := c.SendRaw(websocket.TextMessage, []byte(`{"v":1}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	send()
	time.Sleep(window + 100*time.Millisecond)
	send()
	hc, _ := protocol.New(protocol.TypeHealthCheck, "hc1", "", &protocol.HealthCheck{})
	if err := c.Send(hc); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitFrame(ctxTimeout(t, 5*time.Second), func(e *protocol.Envelope) bool { return e.ReplyTo == "hc1" }); err != nil {
		t.Fatalf("link closed although each window held only %d bad messages: %v", link.DefaultMaxBadMessages, err)
	}
	select {
	case <-lc.Done():
		t.Error("link ended")
	default:
	}
}

// TestUnsupportedVersion covers W16: a hello of a protocol version the hub
// does not speak gets an unsupported_version error frame, then 1008.
func TestUnsupportedVersion(t *testing.T) {
	for _, v := range []int{0, -1, protocol.Version + 1} {
		t.Run(fmt.Sprintf("v=%d", v), func(t *testing.T) {
			h := newTestHub(t, link.Config{}, nil)
			c := h.dial(t, &agenttest.Agent{Credential: cred1, SkipHello: true})
			hello, _ := json.Marshal(map[string]any{"v": v, "type": "hello", "id": "a1", "payload": map[string]any{"agent_version": "9.0.0"}})
			if err := c.SendRaw(websocket.TextMessage, hello); err != nil {
				t.Fatal(err)
			}
			code, err := c.Wait(ctxTimeout(t, 5*time.Second))
			if code != websocket.ClosePolicyViolation {
				t.Errorf("version %d: close %d (%v), want 1008", v, code, err)
			}
			got := c.Received()
			var pe protocol.Error
			if len(got) != 1 || got[0].Type != protocol.TypeError || got[0].DecodePayload(&pe) != nil ||
				pe.Code != protocol.CodeUnsupportedVersion || pe.Ref != "a1" {
				t.Errorf("version %d: frames before the close = %+v, want one unsupported_version error for a1", v, got)
			}
			if n := metric(t, h.reg, "ferry_hub_link_handshake_failures_total", "reason", "version"); n != 1 {
				t.Errorf("handshake failures{version} = %v, want 1", n)
			}
			if n := h.ep.Registry().Len(); n != 0 {
				t.Errorf("registry holds %d links, want 0", n)
			}
		})
	}
}

// TestUpgradeRefusals covers W2 (credential in the query string), W4
// (WebSocket version other than 13) and W5 (missing or unknown
// subprotocol): each is refused over HTTP, with no 101 and no credential
// lookup.
func TestUpgradeRefusals(t *testing.T) {
	tests := []struct {
		name       string
		agent      agenttest.Agent
		query      string
		wantStatus int
		wantCode   string
	}{
		{"token in the query, no header", agenttest.Agent{}, "?token=" + cred1, http.StatusUnauthorized, "credential_in_query"},
		{"token in the query and the header", agenttest.Agent{Credential: cred1}, "?token=" + cred1, http.StatusUnauthorized, "credential_in_query"},
		{"access_token in the query", agenttest.Agent{Credential: cred1}, "?access_token=x", http.StatusUnauthorized, "credential_in_query"},
		{"any query parameter", agenttest.Agent{Credential: cred1}, "?agent=ins_1", http.StatusUnauthorized, "credential_in_query"},
		{"no subprotocol", agenttest.Agent{Credential: cred1, NoSubprotocol: true}, "", http.StatusBadRequest, "subprotocol"},
		{"unknown subprotocol", agenttest.Agent{Credential: cred1, Subprotocols: []string{"promohub.v1", "ferry.v2"}}, "", http.StatusBadRequest, "subprotocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHub(t, link.Config{}, nil)
			_, err := tt.agent.Dial(ctxTimeout(t, 5*time.Second), h.srv.URL+agenttest.LinkPath+tt.query)
			var he *agenttest.HandshakeError
			if !errors.As(err, &he) || he.StatusCode != tt.wantStatus || !strings.Contains(he.Body, `"code":"`+tt.wantCode+`"`) {
				t.Fatalf("dial: %v, want %d %s", err, tt.wantStatus, tt.wantCode)
			}
			if strings.Contains(he.Body, cred1) {
				t.Errorf("refusal echoes the credential: %s", he.Body)
			}
			if n := h.sess.calls(); n != 0 {
				t.Errorf("AuthenticateAgent called %d times, want 0", n)
			}
			if n := metric(t, h.reg, "ferry_hub_link_handshake_failures_total", "reason", tt.wantCode); n != 1 {
				t.Errorf("handshake failures{%s} = %v, want 1", tt.wantCode, n)
			}
		})
	}
	t.Run("websocket version 8", func(t *testing.T) {
		h := newTestHub(t, link.Config{}, nil)
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+agenttest.LinkPath, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "8")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		req.Header.Set("Sec-WebSocket-Protocol", protocol.Subprotocol)
		req.Header.Set("Authorization", "Bearer "+cred1)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Sec-WebSocket-Version") != "13" {
			t.Errorf("version 8: %s, Sec-WebSocket-Version %q; want 426 with 13", resp.Status, resp.Header.Get("Sec-WebSocket-Version"))
		}
		if n := h.sess.calls(); n != 0 {
			t.Errorf("AuthenticateAgent called %d times, want 0", n)
		}
	})
	t.Run("accepted upgrade selects ferry.v1", func(t *testing.T) {
		h := newTestHub(t, link.Config{}, nil)
		c, _ := h.connect(t, &agenttest.Agent{Credential: cred1, Subprotocols: []string{"other", protocol.Subprotocol}})
		if got := c.Subprotocol(); got != protocol.Subprotocol {
			t.Errorf("subprotocol = %q, want %q", got, protocol.Subprotocol)
		}
	})
}
