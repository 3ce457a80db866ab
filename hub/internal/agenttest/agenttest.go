package agenttest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"ferry.dev/shared/protocol"
)

// LinkPath is where the hub serves agent links; Dial appends it to a hub URL
// without a path.
const LinkPath = "/api/v1/link"

// writeWait bounds every write of the fake.
const writeWait = 5 * time.Second

// Agent is the script of a fake agent. Set its fields before Dial.
type Agent struct {
	// Credential is sent as "Authorization: Bearer <Credential>". Empty sends
	// no Authorization header.
	Credential string
	// Header holds extra headers of the upgrade request, e.g. Origin.
	Header http.Header
	// Subprotocols are offered in Sec-WebSocket-Protocol. Nil offers
	// protocol.Subprotocol, like a real agent.
	Subprotocols []string
	// NoSubprotocol offers no subprotocol at all.
	NoSubprotocol bool
	// Hello is the first message. Nil says {agent_version: "agenttest"}.
	Hello *protocol.Hello
	// SkipHello connects without saying hello: the test sends the first
	// frame itself, and the reader starts at once.
	SkipHello bool
	// OnCommand answers a command from the hub, in its own goroutine. Nil
	// answers unsupported; a nil Reply never answers (an agent that hangs).
	OnCommand func(c *Conn, cmd *protocol.Command) *protocol.Reply
	// IgnorePings keeps reading but never answers a ping.
	IgnorePings bool
	// NoRead never reads after the hello reply, like a stuck agent: pings go
	// unanswered and the hub's frames pile up in the TCP buffers.
	NoRead bool
	// RecvBuffer, when positive, sets the socket's receive buffer (SO_RCVBUF)
	// right after connecting, so that a NoRead agent's buffers fill after a
	// few KiB instead of the many MiB loopback autotuning allows.
	RecvBuffer int
	// TLS configures a wss dial: the roots to check the hub's certificate
	// against and the client certificate to present. Nil trusts the system
	// roots and presents none.
	TLS *tls.Config
}

// HandshakeError is returned by Dial when the hub refuses the upgrade.
type HandshakeError struct {
	StatusCode int
	Body       string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("hub refused the link upgrade: %d %s", e.StatusCode, strings.TrimSpace(e.Body))
}

// Conn is one connection of a fake agent.
type Conn struct {
	a     *Agent
	ws    *websocket.Conn
	hello *protocol.HelloReply

	wmu sync.Mutex // serializes writes

	done     chan struct{}  // closed when the reader has ended
	handlers sync.WaitGroup // command hooks in flight
	stopOnce sync.Once

	mu       sync.Mutex                         // guards the fields below
	received []*protocol.Envelope               // frames from the hub, in order
	pending  map[string]chan *protocol.Envelope // call id → reply
	seq      int
	pings    int
	err      error         // why the reader ended; set before done is closed
	changed  chan struct{} // closed and replaced when received or err change
}

// Dial connects to the hub at hubURL (http, https, ws or wss; LinkPath is
// appended when the URL has no path) and says hello unless SkipHello is set.
// A refused upgrade returns a *HandshakeError.
func (a *Agent) Dial(ctx context.Context, hubURL string) (*Conn, error) {
	target, err := linkURL(hubURL)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for k, vs := range a.Header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if a.Credential != "" {
		h.Set("Authorization", "Bearer "+a.Credential)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: a.Subprotocols, TLSClientConfig: a.TLS}
	if d.Subprotocols == nil {
		d.Subprotocols = []string{protocol.Subprotocol}
	}
	if a.NoSubprotocol {
		d.Subprotocols = nil
	}
	if a.RecvBuffer > 0 {
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if tc, ok := conn.(*net.TCPConn); ok {
				if err := tc.SetReadBuffer(a.RecvBuffer); err != nil {
					conn.Close()
					return nil, fmt.Errorf("set receive buffer: %w", err)
				}
			}
			return conn, nil
		}
	}
	ws, resp, err := d.DialContext(ctx, target, h)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return nil, &HandshakeError{StatusCode: resp.StatusCode, Body: string(body)}
		}
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	ws.SetReadLimit(protocol.MaxFrameBytes)
	c := &Conn{a: a, ws: ws, done: make(chan struct{}), pending: make(map[string]chan *protocol.Envelope)}
	if a.IgnorePings {
		ws.SetPingHandler(func(string) error {
			c.mu.Lock()
			c.pings++
			c.mu.Unlock()
			return nil
		})
	} else {
		ws.SetPingHandler(func(data string) error {
			c.mu.Lock()
			c.pings++
			c.mu.Unlock()
			err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
			if errors.Is(err, websocket.ErrCloseSent) {
				return nil
			}
			return err
		})
	}
	if !a.SkipHello {
		if err := c.sayHello(ctx); err != nil {
			ws.Close()
			return nil, err
		}
	}
	if a.NoRead {
		return c, nil
	}
	go c.readLoop()
	return c, nil
}

func linkURL(hub string) (string, error) {
	u, err := url.Parse(hub)
	if err != nil {
		return "", fmt.Errorf("parse hub URL: %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("hub URL %q: want http(s) or ws(s)", hub)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = LinkPath
	}
	return u.String(), nil
}

// sayHello sends the hello and reads the hub's reply; it runs before the
// reader starts.
func (c *Conn) sayHello(ctx context.Context) error {
	h := c.a.Hello
	if h == nil {
		h = &protocol.Hello{AgentVersion: "agenttest"}
	}
	env, err := protocol.New(protocol.TypeHello, c.nextID(), "", h)
	if err != nil {
		return err
	}
	if err := c.Send(env); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.ws.SetReadDeadline(deadline)
	defer func() { _ = c.ws.SetReadDeadline(time.Time{}) }()
	_, frame, err := c.ws.ReadMessage()
	if err != nil {
		return fmt.Errorf("read hello reply: %w", err)
	}
	rep, err := protocol.Decode(frame)
	if err != nil {
		return fmt.Errorf("read hello reply: %w", err)
	}
	c.record(rep)
	if rep.Type != protocol.TypeHelloReply || rep.ReplyTo != env.ID {
		return fmt.Errorf("hub answered hello with %s (reply_to %q)", rep.Type, rep.ReplyTo)
	}
	var hr protocol.HelloReply
	if err := rep.DecodePayload(&hr); err != nil {
		return err
	}
	c.hello = &hr
	return nil
}

// Subprotocol is the subprotocol the hub selected.
func (c *Conn) Subprotocol() string { return c.ws.Subprotocol() }

// HelloReply is the hub's answer to the hello; nil with SkipHello.
func (c *Conn) HelloReply() *protocol.HelloReply { return c.hello }

func (c *Conn) nextID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return fmt.Sprintf("a%d", c.seq)
}

// changedLocked returns the channel closed on the next change.
func (c *Conn) changedLocked() chan struct{} {
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.changed
}

func (c *Conn) notifyLocked() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

func (c *Conn) record(env *protocol.Envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.received = append(c.received, env)
	c.notifyLocked()
}

func (c *Conn) readLoop() {
	var err error
	defer func() {
		c.mu.Lock()
		c.err = err
		for id, ch := range c.pending {
			close(ch)
			delete(c.pending, id)
		}
		c.notifyLocked()
		c.mu.Unlock()
		close(c.done)
	}()
	for {
		var typ int
		var frame []byte
		typ, frame, err = c.ws.ReadMessage()
		if err != nil {
			return
		}
		if typ != websocket.TextMessage {
			err = fmt.Errorf("hub sent a non-text frame (type %d)", typ)
			return
		}
		env, derr := protocol.Decode(frame)
		if derr != nil {
			err = fmt.Errorf("hub sent an invalid frame: %w", derr)
			return
		}
		c.record(env)
		switch env.Type {
		case protocol.TypeReply:
			c.mu.Lock()
			ch, ok := c.pending[env.ReplyTo]
			delete(c.pending, env.ReplyTo)
			c.mu.Unlock()
			if ok {
				ch <- env
			}
		case protocol.TypeCommand:
			c.handlers.Add(1)
			go func() {
				defer c.handlers.Done()
				c.answer(env)
			}()
		case protocol.TypeHealthCheck:
			r, _ := protocol.OKReply(&protocol.Health{Healthy: true})
			_ = c.Reply(env.ID, r)
		}
	}
}

func (c *Conn) answer(env *protocol.Envelope) {
	var cmd protocol.Command
	if err := env.DecodePayload(&cmd); err != nil {
		_ = c.Reply(env.ID, protocol.ErrorReply(protocol.CodeInvalid, err.Error()))
		return
	}
	if c.a.OnCommand == nil {
		_ = c.Reply(env.ID, protocol.ErrorReply(protocol.CodeUnsupported, "agenttest: no OnCommand hook"))
		return
	}
	if r := c.a.OnCommand(c, &cmd); r != nil {
		_ = c.Reply(env.ID, r)
	}
}

// Reply sends r as the answer to the hub's message id.
func (c *Conn) Reply(id string, r *protocol.Reply) error {
	env, err := protocol.New(protocol.TypeReply, c.nextID(), id, r)
	if err != nil {
		return err
	}
	return c.Send(env)
}

// Send writes one envelope as a text frame.
func (c *Conn) Send(env *protocol.Envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("encode %s: %w", env.Type, err)
	}
	return c.SendRaw(websocket.TextMessage, b)
}

// SendRaw writes one frame of the given gorilla message type as is.
func (c *Conn) SendRaw(messageType int, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	return c.ws.WriteMessage(messageType, data)
}

// Goodbye tells the hub the agent is leaving.
func (c *Conn) Goodbye(reason string) error {
	env, err := protocol.New(protocol.TypeGoodbye, "", "", &protocol.Goodbye{Reason: reason, Reconnect: true})
	if err != nil {
		return err
	}
	return c.Send(env)
}

// Call sends a command to the hub and waits for its reply. It fails when
// the link ends first or ctx expires.
func (c *Conn) Call(ctx context.Context, op protocol.Op, body any) (*protocol.Reply, error) {
	var raw json.RawMessage
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", op, err)
		}
		raw = b
	}
	id := c.nextID()
	env, err := protocol.New(protocol.TypeCommand, id, "", &protocol.Command{Op: op, Body: raw})
	if err != nil {
		return nil, err
	}
	ch := make(chan *protocol.Envelope, 1)
	c.mu.Lock()
	if c.err != nil || c.a.NoRead {
		c.mu.Unlock()
		return nil, errors.New("agenttest: Call needs a running reader")
	}
	c.pending[id] = ch
	c.mu.Unlock()
	if err := c.Send(env); err != nil {
		return nil, err
	}
	select {
	case rep, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("link ended before the reply to %s: %w", op, c.Err())
		}
		var r protocol.Reply
		if err := rep.DecodePayload(&r); err != nil {
			return nil, err
		}
		return &r, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// Received returns the frames received from the hub so far, hello reply
// included.
func (c *Conn) Received() []*protocol.Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*protocol.Envelope(nil), c.received...)
}

// Pings returns how many pings the agent has read.
func (c *Conn) Pings() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pings
}

// WaitFrame waits for a frame from the hub that satisfies match, looking at
// frames already received first.
func (c *Conn) WaitFrame(ctx context.Context, match func(*protocol.Envelope) bool) (*protocol.Envelope, error) {
	seen := 0
	for {
		c.mu.Lock()
		for _, env := range c.received[seen:] {
			if match(env) {
				c.mu.Unlock()
				return env, nil
			}
		}
		seen = len(c.received)
		ended, ch := c.err != nil, c.changedLocked()
		c.mu.Unlock()
		if ended {
			return nil, fmt.Errorf("link ended before the frame arrived: %w", c.Err())
		}
		select {
		case <-ch:
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Done is closed when the reader has ended (never with NoRead, until Close).
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the reader ended: a *websocket.CloseError when the hub closed
// the link with a close frame. Nil while it runs.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Wait waits for the link to end and returns the hub's close code, or -1
// when it ended without a close frame (the error says why).
func (c *Conn) Wait(ctx context.Context) (int, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	err := c.Err()
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, nil
	}
	return -1, err
}

// Close sends a normal close frame, closes the socket and waits for the
// reader and the command hooks. Hooks must not call it; they may Drop.
func (c *Conn) Close() {
	c.wmu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "agenttest done"), time.Now().Add(time.Second))
	c.wmu.Unlock()
	c.Drop()
	<-c.done
	c.handlers.Wait()
}

// Drop closes the TCP connection without a close frame, like a crashed
// agent. It does not wait; Done is closed once the reader has noticed.
func (c *Conn) Drop() {
	c.stopOnce.Do(func() {
		c.ws.Close()
		if c.a.NoRead {
			c.mu.Lock()
			c.err = errClosedByTest
			c.notifyLocked()
			c.mu.Unlock()
			close(c.done)
		}
	})
}

// errClosedByTest is Err for a NoRead connection the test closed.
var errClosedByTest = errors.New("agenttest: closed by the test")
