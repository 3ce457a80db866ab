package hubtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"ferry.dev/shared/protocol"
)

// LinkPath is where the hub serves agent links.
const LinkPath = "/api/v1/link"

// writeWait bounds every write of the fake.
const writeWait = 5 * time.Second

// DefaultHelloReply is the hello reply of a Hub without an OnHello hook.
func DefaultHelloReply() *protocol.HelloReply {
	return &protocol.HelloReply{
		InstallationID: "ins_test", OrgID: "org_test", OrgName: "Test",
		Environments: []protocol.Environment{{ID: "env_test", Name: "Test"}},
		Status:       protocol.InstallationAccepted, HubVersion: "hubtest", HeartbeatSeconds: 10,
	}
}

// Hub is a fake hub. Set its hooks before the first connection.
type Hub struct {
	// Authorize decides the upgrade from the bearer credential ("" when
	// there is none): 0 accepts, anything else is the HTTP status to refuse
	// with. Nil accepts any non-empty credential and refuses the rest with
	// 401.
	Authorize func(credential string) int
	// OnHello answers the agent's hello. Nil answers DefaultHelloReply. It
	// runs before the reply is sent, so blocking in it holds the agent in
	// its connecting state. An error closes the link with 1011.
	OnHello func(c *Conn, h *protocol.Hello) (*protocol.HelloReply, error)
	// OnCommand answers a command from the agent, in its own goroutine. Nil
	// answers unsupported; a nil Reply never answers.
	OnCommand func(c *Conn, cmd *protocol.Command) *protocol.Reply
	// PingInterval is how often the hub pings each agent; zero never pings.
	PingInterval time.Duration

	wg sync.WaitGroup // connection handlers, pingers and command hooks

	mu       sync.Mutex // guards the fields below
	srv      *httptest.Server
	closed   bool
	attempts int
	conns    []*Conn
	frames   []Frame
	changed  chan struct{} // closed and replaced on every change
}

// Frame is one recorded frame.
type Frame struct {
	// Conn is the index of the connection, in the order the hub accepted
	// them, from 0.
	Conn int
	// FromAgent is true for frames the agent sent.
	FromAgent bool
	// Env is the decoded frame; nil when it did not decode.
	Env *protocol.Envelope
	// Raw is the frame as sent.
	Raw []byte
}

// Start serves the hub on a loopback port until the test ends.
func (h *Hub) Start(t testing.TB) {
	t.Helper()
	srv := httptest.NewServer(h)
	h.mu.Lock()
	h.srv = srv
	h.mu.Unlock()
	t.Cleanup(h.Close)
}

// URL is the hub's base URL (http://127.0.0.1:port), once started.
func (h *Hub) URL() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv == nil {
		return ""
	}
	return h.srv.URL
}

// Close drops every connection, stops the server and waits for every
// goroutine of the hub. New upgrades are refused with 503.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	srv, conns := h.srv, append([]*Conn(nil), h.conns...)
	h.mu.Unlock()
	for _, c := range conns {
		c.Drop()
	}
	if srv != nil {
		srv.Close()
	}
	h.wg.Wait()
}

// Attempts is how many link upgrades were requested, refused ones included.
func (h *Hub) Attempts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attempts
}

// Conns returns the upgraded connections in the order they were accepted.
func (h *Hub) Conns() []*Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Conn(nil), h.conns...)
}

// Frames returns every frame recorded so far, in order.
func (h *Hub) Frames() []Frame {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Frame(nil), h.frames...)
}

// WaitConn waits until n connections have been answered hello and returns
// the n-th (from 1).
func (h *Hub) WaitConn(ctx context.Context, n int) (*Conn, error) {
	return waitFor(ctx, h, func() (*Conn, bool) {
		seen := 0
		for _, c := range h.conns {
			if c.hello != nil {
				seen++
				if seen == n {
					return c, true
				}
			}
		}
		return nil, false
	})
}

// WaitFrame waits for a recorded frame that satisfies match, looking at the
// frames recorded so far first.
func (h *Hub) WaitFrame(ctx context.Context, match func(Frame) bool) (Frame, error) {
	seen := 0
	return waitFor(ctx, h, func() (Frame, bool) {
		for _, f := range h.frames[seen:] {
			if match(f) {
				return f, true
			}
		}
		seen = len(h.frames)
		return Frame{}, false
	})
}

// waitFor calls check with h.mu held after every change until it reports
// true or ctx ends.
func waitFor[T any](ctx context.Context, h *Hub, check func() (T, bool)) (T, error) {
	for {
		h.mu.Lock()
		v, ok := check()
		ch := h.changedLocked()
		h.mu.Unlock()
		if ok {
			return v, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}

func (h *Hub) changedLocked() chan struct{} {
	if h.changed == nil {
		h.changed = make(chan struct{})
	}
	return h.changed
}

func (h *Hub) notifyLocked() {
	if h.changed != nil {
		close(h.changed)
		h.changed = nil
	}
}

func (h *Hub) record(f Frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.frames = append(h.frames, f)
	h.notifyLocked()
}

// ServeHTTP serves LinkPath.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != LinkPath {
		http.NotFound(w, r)
		return
	}
	h.mu.Lock()
	h.attempts++
	closed := h.closed
	if !closed {
		h.wg.Add(1)
	}
	h.notifyLocked()
	h.mu.Unlock()
	if closed {
		http.Error(w, "hubtest: closed", http.StatusServiceUnavailable)
		return
	}
	defer h.wg.Done()

	cred, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	status := 0
	if h.Authorize != nil {
		status = h.Authorize(cred)
	} else if cred == "" {
		status = http.StatusUnauthorized
	}
	if status != 0 {
		http.Error(w, "hubtest: refused", status)
		return
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(protocol.MaxFrameBytes)
	c := &Conn{h: h, ws: ws, quit: make(chan struct{}), done: make(chan struct{}), pending: map[string]chan *protocol.Envelope{}}
	h.mu.Lock()
	c.index = len(h.conns)
	h.conns = append(h.conns, c)
	closed = h.closed // Close may have taken its snapshot of conns already
	h.notifyLocked()
	h.mu.Unlock()
	if closed {
		c.Drop()
	}
	c.serve()
}

// Conn is one agent connection of the fake hub.
type Conn struct {
	h     *Hub
	ws    *websocket.Conn
	index int
	hello *protocol.Hello // set once, under h.mu, after the hello reply

	wmu      sync.Mutex    // serializes writes
	silent   atomic.Bool   // no pings, answers or sends
	quit     chan struct{} // closed by stop: the pinger ends
	done     chan struct{} // closed when the reader has ended
	stopOnce sync.Once

	mu      sync.Mutex // guards the fields below
	pending map[string]chan *protocol.Envelope
	seq     int
	err     error
}

// Index is the connection's position in accept order, from 0.
func (c *Conn) Index() int { return c.index }

// Hello is the agent's hello, once answered.
func (c *Conn) Hello() *protocol.Hello {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	return c.hello
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (a *websocket.CloseError when the agent
// sent a close frame); nil while it runs.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Conn) nextID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return fmt.Sprintf("h%d", c.seq)
}

func (c *Conn) serve() {
	var err error
	defer func() {
		c.mu.Lock()
		c.err = err
		for id, ch := range c.pending {
			close(ch)
			delete(c.pending, id)
		}
		c.mu.Unlock()
		c.stop()
		close(c.done)
		c.h.mu.Lock()
		c.h.notifyLocked()
		c.h.mu.Unlock()
	}()
	if err = c.sayHello(); err != nil {
		return
	}
	if c.h.PingInterval > 0 {
		c.h.wg.Add(1)
		go func() {
			defer c.h.wg.Done()
			c.pingLoop()
		}()
	}
	for {
		var frame []byte
		_, frame, err = c.ws.ReadMessage()
		if err != nil {
			return
		}
		env := c.recordIn(frame)
		if env == nil {
			continue
		}
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
			if c.silent.Load() {
				continue
			}
			c.h.wg.Add(1)
			go func() {
				defer c.h.wg.Done()
				c.answer(env)
			}()
		case protocol.TypeHealthCheck:
			r, _ := protocol.OKReply(&protocol.Health{Healthy: true})
			_ = c.Reply(env.ID, r)
		case protocol.TypeGoodbye, protocol.TypeHello, protocol.TypeHelloReply:
		default:
			if env.ID != "" {
				_ = c.Reply(env.ID, protocol.ErrorReply(protocol.CodeUnsupported, "hubtest: unknown message type"))
			}
		}
	}
}

func (c *Conn) recordIn(frame []byte) *protocol.Envelope {
	env, _ := protocol.Decode(frame)
	c.h.record(Frame{Conn: c.index, FromAgent: true, Env: env, Raw: frame})
	return env
}

func (c *Conn) sayHello() error {
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, frame, err := c.ws.ReadMessage()
	if err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	_ = c.ws.SetReadDeadline(time.Time{})
	env := c.recordIn(frame)
	var hello protocol.Hello
	if env == nil || env.Type != protocol.TypeHello || env.DecodePayload(&hello) != nil {
		c.Close(websocket.CloseProtocolError, "hello must be the first message")
		return errors.New("first frame was not a valid hello")
	}
	rep := DefaultHelloReply()
	if c.h.OnHello != nil {
		rep, err = c.h.OnHello(c, &hello)
		if err != nil {
			c.Close(websocket.CloseInternalServerErr, err.Error())
			return fmt.Errorf("OnHello: %w", err)
		}
	}
	out, err := protocol.New(protocol.TypeHelloReply, "hello", env.ID, rep)
	if err != nil {
		return err
	}
	if err := c.Send(out); err != nil {
		return fmt.Errorf("send hello reply: %w", err)
	}
	c.h.mu.Lock()
	c.hello = &hello
	c.h.notifyLocked()
	c.h.mu.Unlock()
	return nil
}

func (c *Conn) pingLoop() {
	t := time.NewTicker(c.h.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			if c.silent.Load() {
				continue
			}
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				return
			}
		}
	}
}

func (c *Conn) answer(env *protocol.Envelope) {
	var cmd protocol.Command
	if err := env.DecodePayload(&cmd); err != nil {
		_ = c.Reply(env.ID, protocol.ErrorReply(protocol.CodeInvalid, err.Error()))
		return
	}
	if c.h.OnCommand == nil {
		_ = c.Reply(env.ID, protocol.ErrorReply(protocol.CodeUnsupported, "hubtest: no OnCommand hook"))
		return
	}
	if r := c.h.OnCommand(c, &cmd); r != nil {
		_ = c.Reply(env.ID, r)
	}
}

// Reply sends r as the answer to the agent's message id.
func (c *Conn) Reply(id string, r *protocol.Reply) error {
	env, err := protocol.New(protocol.TypeReply, c.nextID(), id, r)
	if err != nil {
		return err
	}
	return c.Send(env)
}

// Send writes one envelope as a text frame. A silent connection sends
// nothing.
func (c *Conn) Send(env *protocol.Envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("encode %s: %w", env.Type, err)
	}
	return c.SendRaw(websocket.TextMessage, b)
}

// SendRaw writes one frame of the given gorilla message type as is. A
// silent connection sends nothing.
func (c *Conn) SendRaw(messageType int, data []byte) error {
	if c.silent.Load() {
		return nil
	}
	env, _ := protocol.Decode(data)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	if err := c.ws.WriteMessage(messageType, data); err != nil {
		return err
	}
	c.h.record(Frame{Conn: c.index, Env: env, Raw: data})
	return nil
}

// Call sends a command to the agent and waits for its reply.
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
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
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
		return nil, ctx.Err()
	}
}

// Goodbye tells the agent the hub is leaving.
func (c *Conn) Goodbye(reason string, reconnect bool) error {
	env, err := protocol.New(protocol.TypeGoodbye, "", "", &protocol.Goodbye{Reason: reason, Reconnect: reconnect})
	if err != nil {
		return err
	}
	return c.Send(env)
}

// Silence makes the hub play dead on this connection: it keeps reading and
// recording, but stops pinging, answering and sending.
func (c *Conn) Silence() { c.silent.Store(true) }

// Close sends a close frame with code and text and closes the socket.
func (c *Conn) Close(code int, text string) {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
	c.stop()
}

// Drop closes the TCP connection without a close frame.
func (c *Conn) Drop() { c.stop() }

func (c *Conn) stop() {
	c.stopOnce.Do(func() {
		close(c.quit)
		c.ws.Close()
	})
}
