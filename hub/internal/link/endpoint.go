package link

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/shared/protocol"
)

// Config tunes the endpoint. Zero fields take the defaults in parentheses.
type Config struct {
	PingInterval  time.Duration // how often the hub pings (10s)
	PongWait      time.Duration // silence after which the link is dead (30s)
	WriteWait     time.Duration // deadline of every write (10s)
	HelloTimeout  time.Duration // time allowed for the first frame (10s)
	CallTimeout   time.Duration // deadline of a call without one (30s)
	SendQueue     int           // frames queued per connection (16)
	MaxInflight   int           // agent commands handled at once per connection (8)
	MaxFrameBytes int64         // read limit (protocol.MaxFrameBytes)
	HubVersion    string
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.PingInterval, 10*time.Second)
	def(&c.PongWait, 30*time.Second)
	def(&c.WriteWait, 10*time.Second)
	def(&c.HelloTimeout, 10*time.Second)
	def(&c.CallTimeout, 30*time.Second)
	if c.SendQueue <= 0 {
		c.SendQueue = 16
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 8
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = protocol.MaxFrameBytes
	}
}

// Sessions is what the endpoint needs from the installation inventory.
type Sessions interface {
	// AuthenticateAgent maps an installation credential to its identity.
	// An error wrapping protocol.CodeUnauthorized refuses the upgrade.
	AuthenticateAgent(ctx context.Context, credential string) (Peer, error)
	// Hello records the agent's hello and builds the hub's reply.
	Hello(ctx context.Context, p Peer, h *protocol.Hello) (*protocol.HelloReply, error)
	// Connected is called once the connection is the installation's primary.
	Connected(ctx context.Context, c *Conn)
	// Disconnected is called when a connection ends; primary is false when a
	// newer connection had already superseded it.
	Disconnected(c *Conn, primary bool)
}

// Endpoint serves the agents' WebSocket endpoint.
type Endpoint struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	sessions Sessions
	registry *Registry
	upgrader websocket.Upgrader
	handlers map[protocol.Op]HandlerFunc // written before serving only

	mu       sync.Mutex // guards closing
	closing  bool
	wg       sync.WaitGroup // one per live connection
	baseCtx  context.Context
	cancelFn context.CancelFunc
}

// New builds an endpoint. Register handlers with Handle before serving.
func New(cfg Config, sessions Sessions, log *slog.Logger, reg prometheus.Registerer) (*Endpoint, error) {
	if sessions == nil {
		return nil, errors.New("link: sessions are required")
	}
	if log == nil {
		return nil, errors.New("link: logger is required")
	}
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	e := &Endpoint{
		cfg:      cfg,
		log:      log.With("component", "link"),
		m:        newMetrics(reg),
		sessions: sessions,
		registry: NewRegistry(),
		handlers: make(map[protocol.Op]HandlerFunc),
		baseCtx:  ctx,
		cancelFn: cancel,
	}
	e.upgrader = websocket.Upgrader{
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
		WriteBufferPool: &sync.Pool{},
		// Agents are programs, not browsers: any Origin header means a
		// browser page is trying to use an agent's credential.
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "" },
	}
	return e, nil
}

// Handle registers the handler for an operation agents may call.
func (e *Endpoint) Handle(op protocol.Op, h HandlerFunc) { e.handlers[op] = h }

// Registry returns the endpoint's connection registry.
func (e *Endpoint) Registry() *Registry { return e.registry }

func (e *Endpoint) refuse(w http.ResponseWriter, status int, reason, msg string) {
	e.m.handshakeFailures.WithLabelValues(reason).Inc()
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(status), "status": status, "code": reason, "detail": msg})
}

// ServeHTTP upgrades an authenticated agent, reads its hello, and hands the
// link to a goroutine that serves it until it ends; Shutdown waits for it.
func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	closing := e.closing
	if !closing {
		e.wg.Add(1)
	}
	e.mu.Unlock()
	if closing {
		e.refuse(w, http.StatusServiceUnavailable, "shutting_down", "the hub is shutting down; reconnect to a peer or retry shortly")
		return
	}
	handedOff := false
	defer func() {
		if !handedOff {
			e.wg.Done()
		}
	}()

	if r.Header.Get("Origin") != "" {
		e.log.Warn("refused link from a browser origin", "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		e.refuse(w, http.StatusForbidden, "origin", "browser origins may not open agent links")
		return
	}
	cred, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		e.refuse(w, http.StatusUnauthorized, "unauthorized", "send the installation credential as 'Authorization: Bearer …'")
		return
	}
	peer, err := e.sessions.AuthenticateAgent(r.Context(), cred)
	if err != nil {
		code := protocol.CodeOf(err)
		if code == protocol.CodeUnauthorized {
			e.log.Warn("refused link with an unknown credential", "remote", r.RemoteAddr)
			e.refuse(w, http.StatusUnauthorized, "unauthorized", "unknown installation credential; link the agent again with a new link token")
			return
		}
		e.log.Error("authenticate agent", "err", err)
		e.refuse(w, http.StatusServiceUnavailable, "unavailable", "the hub cannot check credentials right now; retry shortly")
		return
	}
	ws, err := e.upgrader.Upgrade(w, r, nil)
	if err != nil {
		e.m.handshakeFailures.WithLabelValues("upgrade").Inc()
		return // the upgrader has answered
	}
	ws.SetReadLimit(e.cfg.MaxFrameBytes)
	c := &Conn{
		id:      newConnID(),
		peer:    peer,
		ws:      ws,
		ep:      e,
		send:    make(chan []byte, e.cfg.SendQueue),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		pending: make(map[string]chan *protocol.Envelope),
		recent:  make(map[string]struct{}),
	}
	c.lastSeen.Store(time.Now().UnixNano())
	if !e.hello(c) {
		ws.Close()
		close(c.done)
		return
	}
	// Serve the link from a goroutine of its own and return: net/http keeps
	// its 4 KiB read and write buffers, the request and the response, and
	// this goroutine keeps its deep stack, for as long as the handler runs.
	// That was about half of each link's memory.
	handedOff = true
	go func() {
		defer e.wg.Done()
		e.serve(c)
	}()
}

// hello reads the first frame, which must be a hello, and answers it.
func (e *Endpoint) hello(c *Conn) bool {
	fail := func(code int, reason, msg string) bool {
		e.m.handshakeFailures.WithLabelValues(reason).Inc()
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, msg), time.Now().Add(e.cfg.WriteWait))
		c.logger().Warn("link handshake failed", "reason", reason, "detail", msg)
		return false
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(e.cfg.HelloTimeout))
	typ, frame, err := c.ws.ReadMessage()
	if err != nil {
		if errors.Is(err, websocket.ErrReadLimit) {
			return fail(websocket.CloseMessageTooBig, "hello", "frame exceeds the read limit")
		}
		return fail(websocket.CloseProtocolError, "hello", "no hello received")
	}
	if typ != websocket.TextMessage {
		return fail(websocket.CloseUnsupportedData, "hello", "binary frames are not supported")
	}
	env, err := protocol.Decode(frame)
	if err != nil || env.Type != protocol.TypeHello {
		return fail(websocket.CloseProtocolError, "hello", "hello must be the first message")
	}
	e.m.messages.WithLabelValues(string(protocol.TypeHello), "in").Inc()
	var h protocol.Hello
	if err := env.DecodePayload(&h); err != nil {
		return fail(websocket.CloseProtocolError, "hello", err.Error())
	}
	rep, err := e.sessions.Hello(e.baseCtx, c.peer, &h)
	if err != nil {
		return fail(websocket.CloseInternalServerErr, "hello", "hub could not record the hello; retry")
	}
	if rep.HubVersion == "" {
		rep.HubVersion = e.cfg.HubVersion
	}
	rep.HeartbeatSeconds = int(e.cfg.PingInterval / time.Second)
	out, err := protocol.New(protocol.TypeHelloReply, "hello", env.ID, rep)
	if err != nil {
		return fail(websocket.CloseInternalServerErr, "hello", err.Error())
	}
	b, _ := json.Marshal(out)
	_ = c.ws.SetWriteDeadline(time.Now().Add(e.cfg.WriteWait))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		e.m.handshakeFailures.WithLabelValues("hello").Inc()
		return false
	}
	e.m.messages.WithLabelValues(string(protocol.TypeHelloReply), "out").Inc()
	return true
}

func (e *Endpoint) serve(c *Conn) {
	if old := e.registry.add(c); old != nil {
		old.logger().Info("link superseded by a newer connection of the same installation")
		old.Close(websocket.ClosePolicyViolation, "superseded by a newer connection")
	}
	// A Shutdown that began during the hello did not see c in the registry.
	e.mu.Lock()
	closing := e.closing
	e.mu.Unlock()
	if closing {
		c.goodbye()
	}
	e.m.connected.Inc()
	c.logger().Info("agent connected")
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	e.sessions.Connected(e.baseCtx, c)
	c.readLoop(e.baseCtx)
	c.Close(websocket.CloseAbnormalClosure, "read ended")
	<-writerDone
	close(c.done) // fails pending calls
	primary := e.registry.remove(c)
	e.m.connected.Dec()
	e.m.disconnects.WithLabelValues(disconnectReason(c.closeReason)).Inc()
	c.logger().Info("agent disconnected", "reason", c.closeReason)
	e.sessions.Disconnected(c, primary)
}

func disconnectReason(r string) string {
	switch r {
	case "slow consumer", "superseded by a newer connection", "goodbye", "peer closed", "frame exceeds 4 MiB", "invalid frame", "silent", "hub shutting down", closePolicy:
		return r
	}
	return "error"
}

// Shutdown says goodbye to every agent (asking them to reconnect), closes
// their links and waits for the connections to end or ctx to expire.
func (e *Endpoint) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.closing = true
	e.mu.Unlock()
	e.registry.Each((*Conn).goodbye)
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	defer e.cancelFn()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// goodbye asks the agent to reconnect and closes the link.
func (c *Conn) goodbye() {
	if env, err := protocol.New(protocol.TypeGoodbye, "", "", &protocol.Goodbye{Reason: "hub shutting down", Reconnect: true}); err == nil {
		_ = c.enqueue(env)
	}
	c.Close(websocket.CloseServiceRestart, "hub shutting down")
}

func bearer(h string) (string, bool) {
	const p = "Bearer "
	if len(h) <= len(p) || h[:len(p)] != p {
		return "", false
	}
	return h[len(p):], true
}
