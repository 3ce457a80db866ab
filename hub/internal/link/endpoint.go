package link

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/hub/internal/auth"
	"ferry.dev/shared/protocol"
)

// Config tunes the endpoint. Zero fields take the defaults in parentheses.
type Config struct {
	PingInterval time.Duration // how often the hub pings (10s)
	PongWait     time.Duration // silence after which the link is dead (30s)
	WriteWait    time.Duration // deadline of every write (10s), plus a frame's time at SlowLinkRate
	HelloTimeout time.Duration // time allowed for the first frame (10s)
	CallTimeout  time.Duration // deadline of a call without one (30s), plus the frame's time at SlowLinkRate
	// SlowLinkRate is the slowest link, in bytes per second, over which a
	// call without a deadline still gets its answer in time
	// (DefaultSlowLinkRate): a call's deadline grows by its frame's size
	// at that rate, so that a large delivery over a slow link is not
	// timed out and sent again while its first copy is still on the way.
	SlowLinkRate  float64
	SendQueue     int   // frames queued per connection (16)
	MaxInflight   int   // agent commands handled at once per connection (8)
	MaxFrameBytes int64 // read limit (protocol.MaxFrameBytes)
	HubVersion    string
	// ReconnectRate is the redials per second the hub asks for after a
	// restart (DefaultReconnectRate): each hello reply advertises a
	// reconnect spread of (connected agents) / ReconnectRate seconds,
	// within [MinReconnectSpread, MaxReconnectSpread], and a settings
	// message tells every agent a larger one as the fleet grows.
	ReconnectRate float64

	MessageRate      float64       // messages/s an agent may send, sustained (DefaultMessageRate)
	MessageBurst     int           // messages an agent may send at once (DefaultMessageBurst)
	MaxBadMessages   int           // bad messages tolerated per BadMessageWindow (DefaultMaxBadMessages)
	BadMessageWindow time.Duration // (DefaultBadMessageWindow)
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
	if c.SlowLinkRate <= 0 {
		c.SlowLinkRate = DefaultSlowLinkRate
	}
	if c.ReconnectRate <= 0 {
		c.ReconnectRate = DefaultReconnectRate
	}
	if c.MessageRate <= 0 {
		c.MessageRate = DefaultMessageRate
	}
	if c.MessageBurst <= 0 {
		c.MessageBurst = DefaultMessageBurst
	}
	if c.MaxBadMessages <= 0 {
		c.MaxBadMessages = DefaultMaxBadMessages
	}
	def(&c.BadMessageWindow, DefaultBadMessageWindow)
}

// Sessions is what the endpoint needs from the installation inventory.
type Sessions interface {
	// AuthenticateAgent maps an installation credential to its identity.
	// An error wrapping protocol.CodeUnauthorized refuses the upgrade with
	// 401; a *Refusal among them says what the problem document says.
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
	// onSecurity receives security events; written before serving only.
	onSecurity func(context.Context, SecurityEvent)

	mu       sync.Mutex // guards closing
	closing  bool
	wg       sync.WaitGroup // one per live connection
	baseCtx  context.Context
	cancelFn context.CancelFunc

	spreadMu   sync.Mutex    // guards sentSpread; held through readvertise's sends
	sentSpread time.Duration // the reconnect spread last sent to all agents, or lower (see readvertise)
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

		sentSpread: MinReconnectSpread,
	}
	e.upgrader = websocket.Upgrader{
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
		WriteBufferPool: &sync.Pool{},
		// The link's only subprotocol; ServeHTTP refuses upgrades that do
		// not offer it.
		Subprotocols: []string{protocol.Subprotocol},
		// Compression stays off: it is never negotiated, so a frame with
		// RSV1 set is a protocol error (1002) and no inflate bomb can
		// reach the reader.
		EnableCompression: false,
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

	// Credentials travel only in the Authorization header: URLs end up in
	// access logs and proxies. The link takes no query parameters, so any
	// query may carry one and is refused before anything else; it is not
	// logged.
	if r.URL.RawQuery != "" {
		e.log.Warn("refused link with a query string (credentials belong in Authorization)", "remote", r.RemoteAddr)
		e.refuse(w, http.StatusUnauthorized, "credential_in_query", "the link takes no query parameters; send the installation credential only as 'Authorization: Bearer …'")
		return
	}
	if r.Header.Get("Origin") != "" {
		e.log.Warn("refused link from a browser origin", "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		e.refuse(w, http.StatusForbidden, "origin", "browser origins may not open agent links")
		return
	}
	// The version and subprotocol checks apply to upgrade requests; any
	// other request is refused by the upgrader once authenticated.
	upgrade := websocket.IsWebSocketUpgrade(r)
	if upgrade && r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		e.refuse(w, http.StatusUpgradeRequired, "websocket_version", "only WebSocket version 13 is supported")
		return
	}
	if upgrade && !offers(r, protocol.Subprotocol) {
		e.refuse(w, http.StatusBadRequest, "subprotocol", "offer the WebSocket subprotocol "+protocol.Subprotocol+" (Sec-WebSocket-Protocol)")
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
		var rf *Refusal
		if code == protocol.CodeUnauthorized && errors.As(err, &rf) {
			e.log.Warn("refused link with a credential the hub no longer accepts", "code", rf.Code, "agent_id", rf.InstallationID, "remote", r.RemoteAddr, "detail", rf.Detail)
			e.refuse(w, http.StatusUnauthorized, rf.Code, rf.Detail)
			return
		}
		if code == protocol.CodeUnauthorized {
			e.log.Warn("refused link with an unknown credential", "remote", r.RemoteAddr)
			e.refuse(w, http.StatusUnauthorized, "unauthorized", "unknown installation credential; link the agent again with a new link token")
			return
		}
		e.log.Error("authenticate agent", "err", err)
		e.refuse(w, http.StatusServiceUnavailable, "unavailable", "the hub cannot check credentials right now; retry shortly")
		return
	}
	if presented := auth.ClientKeyHash(r.TLS); peer.ClientKeyHash != "" && presented != peer.ClientKeyHash {
		e.refuseClientKey(w, r, peer, presented)
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
		remote:  r.RemoteAddr,
		peer:    peer,
		ws:      ws,
		ep:      e,
		send:    make(chan []byte, e.cfg.SendQueue),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		pending: make(map[string]chan *protocol.Envelope),
		recent:  make(map[string]*answer),
		rate:    newBucket(e.cfg.MessageRate, e.cfg.MessageBurst),
		bad:     window{max: e.cfg.MaxBadMessages, span: e.cfg.BadMessageWindow},
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

// refuseClientKey refuses, before the upgrade, the link of an installation
// bound to a client certificate key that presented another key (presented)
// or none (presented ""): a copied credential used with some other agent's
// certificate, or without one. It reports the refusal as a security event
// and answers only once the hook has returned, so the refusal is audited
// before the agent hears of it.
//
// An installation bound at enrollment stays bound when the hub later runs
// without --client-ca: the handshake then asks for no certificate, so its
// links are refused until the hub verifies client certificates again or the
// agent is linked anew, without one.
func (e *Endpoint) refuseClientKey(w http.ResponseWriter, r *http.Request, p Peer, presented string) {
	msg := "this installation enrolled with another client certificate key; present it, or re-enroll"
	detail := "the link presented no client certificate"
	if presented == "" {
		msg = "this installation enrolled with a client certificate and the link presented none; present it, or re-enroll"
	} else {
		leaf := r.TLS.VerifiedChains[0][0]
		detail = fmt.Sprintf("the link presented the client certificate %q with key sha256 %s", leaf.Subject.String(), presented)
	}
	detail = fmt.Sprintf("link of installation %s refused before the upgrade: it enrolled with the client certificate key sha256 %s, and %s",
		p.InstallationID, p.ClientKeyHash, detail)
	remote := r.RemoteAddr
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	e.log.Warn("refused link: client certificate key is not the installation's", "security", true, "agent_id", p.InstallationID,
		"remote", remote, "presented_key", presented)
	if f := e.onSecurity; f != nil {
		f(e.baseCtx, SecurityEvent{Peer: p, Kind: KindClientCertificate, Detail: detail, Remote: remote})
	}
	e.refuse(w, http.StatusForbidden, CodeClientCertificateMismatch, msg)
}

// Refusal is an AuthenticateAgent error that refuses the upgrade with 401
// and a problem of its own, for a credential the hub knows but no longer
// accepts. It wraps protocol.CodeUnauthorized.
type Refusal struct {
	// Code is the problem code, and the handshake failure reason in the
	// metrics: keep the set small.
	Code string
	// Detail says why, and what to do, for the agent's operator.
	Detail string
	// InstallationID is the installation whose credential it was, for the
	// hub's log.
	InstallationID string
}

func (r *Refusal) Error() string { return r.Code + ": " + r.Detail }

// Unwrap makes the refusal an unauthorized error.
func (r *Refusal) Unwrap() error { return protocol.Errorf(protocol.CodeUnauthorized, r.Detail) }

// CodeClientCertificateMismatch is the problem code, and the handshake
// failure reason, of a link whose client certificate key is not the one its
// installation enrolled with.
const CodeClientCertificateMismatch = "client_certificate_mismatch"

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
	if !utf8.Valid(frame) {
		return fail(websocket.CloseInvalidFramePayloadData, "hello", "text frame is not valid UTF-8")
	}
	if v, id, ok := helloVersion(frame); ok && (v < protocol.MinVersion || v > protocol.Version) {
		msg := fmt.Sprintf("protocol version %d is not supported; this hub speaks %d to %d", v, protocol.MinVersion, protocol.Version)
		if env, err := protocol.New(protocol.TypeError, "", "", &protocol.Error{Code: protocol.CodeUnsupportedVersion, Message: msg, Ref: id}); err == nil {
			b, _ := json.Marshal(env)
			_ = c.ws.SetWriteDeadline(time.Now().Add(e.cfg.WriteWait))
			_ = c.ws.WriteMessage(websocket.TextMessage, b)
		}
		return fail(websocket.ClosePolicyViolation, "version", msg)
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
	// Sized to the agents connected now, this one included: the agent keeps
	// the figure for its next disconnect.
	rep.ReconnectSpreadMs = reconnectSpread(e.registry.Len()+1, e.cfg.ReconnectRate).Milliseconds()
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
		old.logger().Info("link superseded by a newer connection of the same installation", "new_conn_id", c.id)
		old.Close(protocol.CloseSuperseded, closeSuperseded)
	}
	e.readvertise()
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
	e.readvertise()
	e.m.connected.Dec()
	e.m.disconnects.WithLabelValues(disconnectReason(c.closeReason)).Inc()
	c.logger().Info("agent disconnected", "reason", c.closeReason)
	e.sessions.Disconnected(c, primary)
}

func disconnectReason(r string) string {
	switch r {
	case "slow consumer", closeSuperseded, "goodbye", "peer closed", "frame exceeds 4 MiB", "silent", "hub shutting down", closePolicy,
		closeInvalidUTF8, closeFlood, closeBadMessages, closeProtocolError:
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

// closeSuperseded is the close reason sent with protocol.CloseSuperseded.
const closeSuperseded = "superseded"

// offers reports whether the upgrade request offers subprotocol p.
func offers(r *http.Request, p string) bool {
	for _, s := range websocket.Subprotocols(r) {
		if s == p {
			return true
		}
	}
	return false
}

// helloVersion reads the version and id of a hello frame without validating
// it; ok is false when the frame is not a JSON hello.
func helloVersion(frame []byte) (v int, id string, ok bool) {
	var probe struct {
		V    int           `json:"v"`
		Type protocol.Type `json:"type"`
		ID   string        `json:"id"`
	}
	if json.Unmarshal(frame, &probe) != nil || probe.Type != protocol.TypeHello {
		return 0, "", false
	}
	if len(probe.ID) > protocol.MaxIDLen {
		probe.ID = ""
	}
	return probe.V, probe.ID, true
}

func bearer(h string) (string, bool) {
	const p = "Bearer "
	if len(h) <= len(p) || h[:len(p)] != p {
		return "", false
	}
	return h[len(p):], true
}
