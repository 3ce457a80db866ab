package link_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ferry.dev/hub/internal/agenttest"
	"ferry.dev/hub/internal/link"
	"ferry.dev/shared/protocol"
)

func TestHelloIsFirst(t *testing.T) {
	cmd, err := protocol.New(protocol.TypeCommand, "a1", "", &protocol.Command{Op: protocol.OpListTargets})
	if err != nil {
		t.Fatal(err)
	}
	cmdFrame, _ := json.Marshal(cmd)
	tests := []struct {
		name     string
		msgType  int
		frame    []byte // nil: send nothing and let HelloTimeout expire
		wantCode int
	}{
		{"command first", websocket.TextMessage, cmdFrame, websocket.CloseProtocolError},
		{"invalid json first", websocket.TextMessage, []byte(`{"v":1,`), websocket.CloseProtocolError},
		{"hello without agent version", websocket.TextMessage, []byte(`{"v":1,"type":"hello","id":"a1","payload":{}}`), websocket.CloseProtocolError},
		{"binary first", websocket.BinaryMessage, []byte{1, 2, 3}, websocket.CloseUnsupportedData},
		{"nothing within the hello timeout", 0, nil, websocket.CloseProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHub(t, link.Config{HelloTimeout: 150 * time.Millisecond}, nil)
			c := h.dial(t, &agenttest.Agent{Credential: cred1, SkipHello: true})
			if tt.frame != nil {
				if err := c.SendRaw(tt.msgType, tt.frame); err != nil {
					t.Fatal(err)
				}
			}
			code, err := c.Wait(ctxTimeout(t, 5*time.Second))
			if code != tt.wantCode {
				t.Errorf("close code = %d (%v), want %d", code, err, tt.wantCode)
			}
			if got := metric(t, h.reg, "ferry_hub_link_handshake_failures_total", "reason", "hello"); got != 1 {
				t.Errorf("handshake failures{reason=hello} = %v, want 1", got)
			}
			if n := h.ep.Registry().Len(); n != 0 {
				t.Errorf("registry holds %d connections, want 0", n)
			}
			select {
			case <-h.sess.connected:
				t.Error("Sessions.Connected called for a link without hello")
			default:
			}
		})
	}
}

func TestHelloReply(t *testing.T) {
	h := newTestHub(t, link.Config{HubVersion: "9.9.9", PingInterval: 3 * time.Second}, nil)
	c, lc := h.connect(t, &agenttest.Agent{Credential: cred1, Hello: &protocol.Hello{AgentVersion: "1.2.3", Hostname: "apim-dev"}})
	want := &protocol.HelloReply{
		InstallationID: ins1, OrgID: "org_1", OrgName: "Acme",
		Environments: []protocol.Environment{{ID: "env_dev", Name: "env_dev"}},
		Status:       protocol.InstallationAccepted, HubVersion: "9.9.9", HeartbeatSeconds: 3,
		ReconnectSpreadMs: 2000, // one agent at the default 50/s: the 2 s floor
	}
	if diff := cmp.Diff(want, c.HelloReply()); diff != "" {
		t.Errorf("hello reply (-want +got):\n%s", diff)
	}
	h.sess.mu.Lock()
	hellos := h.sess.hellos
	h.sess.mu.Unlock()
	if diff := cmp.Diff([]protocol.Hello{{AgentVersion: "1.2.3", Hostname: "apim-dev"}}, hellos); diff != "" {
		t.Errorf("hellos recorded (-want +got):\n%s", diff)
	}
	if lc.Peer().InstallationID != ins1 {
		t.Errorf("peer = %+v, want installation %s", lc.Peer(), ins1)
	}
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(`
# HELP ferry_hub_agents_connected Agent links currently connected to this hub (after hello).
# TYPE ferry_hub_agents_connected gauge
ferry_hub_agents_connected 1
`), "ferry_hub_agents_connected"); err != nil {
		t.Error(err)
	}
	c.Close()
	h.waitDisconnected(t, 5*time.Second)
	if got := metric(t, h.reg, "ferry_hub_agents_connected"); got != 0 {
		t.Errorf("agents connected after close = %v, want 0", got)
	}
	if got := metric(t, h.reg, "ferry_hub_link_disconnects_total", "reason", "peer closed"); got != 1 {
		t.Errorf("disconnects{peer closed} = %v, want 1", got)
	}
}

func TestRefusesCredential(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
	}{
		{"no authorization header", nil},
		{"not a bearer", http.Header{"Authorization": {"Basic " + cred1}}},
		{"empty bearer", http.Header{"Authorization": {"Bearer "}}},
		{"unknown credential", http.Header{"Authorization": {"Bearer not-a-credential"}}},
	}
	h := newTestHub(t, link.Config{}, nil)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := (&agenttest.Agent{Header: tt.header}).Dial(ctxTimeout(t, 5*time.Second), h.srv.URL)
			var he *agenttest.HandshakeError
			if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
				t.Fatalf("dial error = %v, want a refused upgrade with 401", err)
			}
			var problem struct{ Code string }
			if err := json.Unmarshal([]byte(he.Body), &problem); err != nil || problem.Code != "unauthorized" {
				t.Errorf("body = %q, want a problem with code unauthorized", he.Body)
			}
			if got := metric(t, h.reg, "ferry_hub_link_handshake_failures_total", "reason", "unauthorized"); got != float64(i+1) {
				t.Errorf("handshake failures{unauthorized} = %v, want %d", got, i+1)
			}
		})
	}
	if n := h.ep.Registry().Len(); n != 0 {
		t.Errorf("registry holds %d connections, want 0", n)
	}
}

// TestRefusal: a credential the inventory refuses with a *Refusal (one
// rotated out and expired) is refused with 401 and the refusal's own code
// and detail, counted under that code.
func TestRefusal(t *testing.T) {
	h := newTestHub(t, link.Config{}, nil)
	const detail = "this installation's credential was rotated and the old one expired at 2026-01-01T00:00:00Z; re-enroll the agent with a new link token"
	h.sess.mu.Lock()
	h.sess.authErr = &link.Refusal{Code: "credential_expired", Detail: detail, InstallationID: ins1}
	h.sess.mu.Unlock()
	_, err := (&agenttest.Agent{Credential: cred1}).Dial(ctxTimeout(t, 5*time.Second), h.srv.URL)
	var he *agenttest.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial error = %v, want a refused upgrade with 401", err)
	}
	var problem struct{ Code, Detail string }
	if err := json.Unmarshal([]byte(he.Body), &problem); err != nil || problem.Code != "credential_expired" || problem.Detail != detail {
		t.Errorf("body = %q, want a credential_expired problem with the refusal's detail", he.Body)
	}
	if got := metric(t, h.reg, "ferry_hub_link_handshake_failures_total", "reason", "credential_expired"); got != 1 {
		t.Errorf("handshake failures{credential_expired} = %v, want 1", got)
	}
	if protocol.CodeOf(&link.Refusal{}) != protocol.CodeUnauthorized {
		t.Error("a Refusal is not an unauthorized error")
	}
}

func TestCredentialCheckUnavailable(t *testing.T) {
	h := newTestHub(t, link.Config{}, nil)
	h.sess.authErr = errors.New("store down")
	_, err := (&agenttest.Agent{Credential: cred1}).Dial(ctxTimeout(t, 5*time.Second), h.srv.URL)
	var he *agenttest.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial error = %v, want 503", err)
	}
}

func TestRefusesBrowserOrigin(t *testing.T) {
	h := newTestHub(t, link.Config{}, nil)
	a := &agenttest.Agent{Credential: cred1, Header: http.Header{"Origin": {"https://evil.example"}}}
	_, err := a.Dial(ctxTimeout(t, 5*time.Second), h.srv.URL)
	var he *agenttest.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden {
		t.Fatalf("dial error = %v, want a refused upgrade with 403", err)
	}
	if n := h.sess.calls(); n != 0 {
		t.Errorf("AuthenticateAgent called %d times for a browser origin, want 0", n)
	}
	if got := metric(t, h.reg, "ferry_hub_link_handshake_failures_total", "reason", "origin"); got != 1 {
		t.Errorf("handshake failures{origin} = %v, want 1", got)
	}
}

func TestReadLimit(t *testing.T) {
	// A command whose frame is exactly n bytes long.
	frameOf := func(n int) []byte {
		const head = `{"v":1,"type":"command","id":"big","payload":{"op":"test.unknown","body":"`
		const tail = `"}}`
		return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
	}
	t.Run("at the limit", func(t *testing.T) {
		h := newTestHub(t, link.Config{}, nil)
		c, _ := h.connect(t, &agenttest.Agent{Credential: cred1})
		if err := c.SendRaw(websocket.TextMessage, frameOf(protocol.MaxFrameBytes)); err != nil {
			t.Fatal(err)
		}
		rep, err := c.WaitFrame(ctxTimeout(t, 10*time.Second), func(e *protocol.Envelope) bool { return e.ReplyTo == "big" })
		if err != nil {
			t.Fatalf("no reply to a frame of exactly %d bytes: %v", protocol.MaxFrameBytes, err)
		}
		var r protocol.Reply
		if err := rep.DecodePayload(&r); err != nil || r.Error == nil || r.Error.Code != protocol.CodeUnsupported {
			t.Errorf("reply = %+v (%v), want unsupported", r, err)
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		h := newTestHub(t, link.Config{}, nil)
		c, lc := h.connect(t, &agenttest.Agent{Credential: cred1})
		sent := make(chan error, 1)
		go func() { sent <- c.SendRaw(websocket.TextMessage, frameOf(protocol.MaxFrameBytes+1)) }()
		code, err := c.Wait(ctxTimeout(t, 10*time.Second))
		if code != websocket.CloseMessageTooBig {
			t.Errorf("close code = %d (%v), want %d", code, err, websocket.CloseMessageTooBig)
		}
		<-sent // the write may fail once the hub has closed the socket
		if d := h.waitDisconnected(t, 5*time.Second); d.conn != lc || !d.primary {
			t.Errorf("Disconnected(%s, %v), want (%s, true)", d.conn.ID(), d.primary, lc.ID())
		}
		if got := metric(t, h.reg, "ferry_hub_link_disconnects_total", "reason", "frame exceeds 4 MiB"); got != 1 {
			t.Errorf("disconnects{frame exceeds 4 MiB} = %v, want 1", got)
		}
	})
}

// TestNewConnectionSupersedesOld covers catalogue row W8: the old connection
// is closed with 4000 superseded.
func TestNewConnectionSupersedesOld(t *testing.T) {
	h := newTestHub(t, link.Config{}, nil)
	first, firstConn := h.connect(t, &agenttest.Agent{Credential: cred1})
	_, secondConn := h.connect(t, &agenttest.Agent{Credential: cred1})

	code, err := first.Wait(ctxTimeout(t, 5*time.Second))
	if code != protocol.CloseSuperseded {
		t.Errorf("first connection closed with %d (%v), want %d", code, err, protocol.CloseSuperseded)
	}
	var ce *websocket.CloseError
	if !errors.As(first.Err(), &ce) || ce.Text != "superseded" {
		t.Errorf("close reason = %v, want superseded", first.Err())
	}
	d := h.waitDisconnected(t, 5*time.Second)
	if d.conn != firstConn || d.primary {
		t.Errorf("Disconnected(%s, primary=%v), want (%s, primary=false)", d.conn.ID(), d.primary, firstConn.ID())
	}
	got, ok := h.ep.Registry().Get(ins1)
	if !ok || got != secondConn {
		t.Errorf("registry holds %v for %s, want the second connection %s", got, ins1, secondConn.ID())
	}
	if got := metric(t, h.reg, "ferry_hub_agents_connected"); got != 1 {
		t.Errorf("agents connected = %v, want 1", got)
	}
	if got := metric(t, h.reg, "ferry_hub_link_disconnects_total", "reason", "superseded"); got != 1 {
		t.Errorf("disconnects{superseded} = %v, want 1", got)
	}
	select {
	case <-secondConn.Done():
		t.Error("the second connection ended")
	default:
	}
}

func TestShutdownSaysGoodbye(t *testing.T) {
	h := newTestHub(t, link.Config{}, nil)
	a, _ := h.connect(t, &agenttest.Agent{Credential: cred1})
	b, _ := h.connect(t, &agenttest.Agent{Credential: cred2})

	if err := h.ep.Shutdown(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Shutdown waits for the links to end, so both are gone already.
	for i := range 2 {
		select {
		case <-h.sess.disconnected:
		default:
			t.Fatalf("Shutdown returned before Disconnected was called for link %d", i+1)
		}
	}
	for _, c := range []*agenttest.Conn{a, b} {
		code, _ := c.Wait(ctxTimeout(t, 5*time.Second))
		if code != websocket.CloseServiceRestart {
			t.Errorf("close code = %d, want %d", code, websocket.CloseServiceRestart)
		}
		frames := c.Received()
		last := frames[len(frames)-1]
		var g protocol.Goodbye
		if last.Type != protocol.TypeGoodbye || last.DecodePayload(&g) != nil || !g.Reconnect {
			t.Errorf("last frame before close = %s %s, want goodbye with reconnect=true", last.Type, last.Payload)
		}
	}
	if n := h.ep.Registry().Len(); n != 0 {
		t.Errorf("registry holds %d connections after shutdown", n)
	}
	_, err := (&agenttest.Agent{Credential: cred1}).Dial(ctxTimeout(t, 5*time.Second), h.srv.URL)
	var he *agenttest.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after shutdown: %v, want 503", err)
	}
}

func TestShutdownClosesNonReadingAgent(t *testing.T) {
	h := newTestHub(t, link.Config{WriteWait: time.Second}, nil)
	h.connect(t, &agenttest.Agent{Credential: cred1, NoRead: true})
	if err := h.ep.Shutdown(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	h.waitDisconnected(t, time.Second)
}

// A link whose hello is still being recorded when Shutdown starts is not in
// the registry yet; it must still be told goodbye so Shutdown can finish.
func TestShutdownDuringHello(t *testing.T) {
	h := newTestHub(t, link.Config{}, nil)
	inHello, release := make(chan struct{}), make(chan struct{})
	h.sess.onHello = func(p link.Peer) {
		if p.InstallationID == ins1 {
			close(inHello)
			<-release
		}
	}
	dialed := make(chan *agenttest.Conn, 1)
	go func() {
		c, err := (&agenttest.Agent{Credential: cred1}).Dial(context.Background(), h.srv.URL)
		if err != nil {
			t.Errorf("dial: %v", err)
		}
		dialed <- c
	}()
	<-inHello
	shutdown := make(chan error, 1)
	go func() { shutdown <- h.ep.Shutdown(ctxTimeout(t, 2*time.Second)) }()
	// Once new links are refused, Shutdown has marked itself closing and
	// goes on to say goodbye to the registered links.
	for {
		c, err := (&agenttest.Agent{Credential: cred2}).Dial(ctxTimeout(t, time.Second), h.srv.URL)
		if err == nil {
			c.Close()
		}
		var he *agenttest.HandshakeError
		if errors.As(err, &he) && he.StatusCode == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown = %v, want it to close the link that was saying hello", err)
	}
	if c := <-dialed; c != nil {
		if code, _ := c.Wait(ctxTimeout(t, 5*time.Second)); code != websocket.CloseServiceRestart {
			t.Errorf("close code = %d, want %d", code, websocket.CloseServiceRestart)
		}
		c.Close()
	}
}
