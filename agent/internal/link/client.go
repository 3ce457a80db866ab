package link

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/shared/protocol"
)

// State is the link's state.
type State int32

// Link states, in the order a session goes through them.
const (
	StateClosed     State = 0
	StateConnecting State = 1
	StateConnected  State = 2
	StateDraining   State = 3
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDraining:
		return "draining"
	}
	return "closed"
}

// HandlerFunc answers one command from the hub. The returned value is the
// reply body; an error becomes an error reply.
type HandlerFunc func(ctx context.Context, body json.RawMessage) (any, error)

// ErrUnauthorized means the hub refused the credential; retrying will not
// help until the agent is linked again.
var ErrUnauthorized = errors.New("the hub refused this installation's credential; link the agent again with a new link token")

// ErrSuperseded ends a session the hub closed with protocol.CloseSuperseded:
// a newer connection with the same credential replaced it. Run backs off
// without resetting, so two agents sharing a credential do not take the
// link from each other every second.
var ErrSuperseded = errors.New("a newer connection with this installation's credential replaced this one")

// ErrNotConnected is returned by Call while the link is down.
var ErrNotConnected = protocol.Errorf(protocol.CodeUnavailable, "not connected to the hub")

// DefaultReconnectSpread is Config.ReconnectSpread's default: the spread of
// an agent that has no figure from its hub. A hub advertises one in every
// hello reply (protocol.HelloReply.ReconnectSpreadMs), and again in a
// settings message as its fleet grows, sized to the fleet: 2 s for a
// handful of agents, 10 s for 500. The agent uses the last one it heard, so
// this default applies only before the first hello (an agent started while
// its hub is down) and with a hub too old to advertise. The agent then
// knows nothing of the fleet, and it errs on the hub's side: row B3 of the
// reliability catalogue allows no 1-second window more than 20 % of a
// restarted hub's redials, and uniform over 10 s gives each second 10 % on
// average (the worst of 500 agents stays well under 20 %), where over 5 s
// the average alone was 20 %. The price, for those agents only, is that one
// whose own link was cut waits up to 10 s instead of the 5 s row A3 asks; a
// late redial costs one agent seconds, a herd can take the hub down for
// all.
const DefaultReconnectSpread = 10 * time.Second

// maxAdvertisedSpread bounds the reconnect spread the agent accepts from a
// hub; a larger one is cut to it and a negative one means none.
const maxAdvertisedSpread = 2 * time.Minute

// Config configures a Client. Zero durations take the defaults in
// parentheses.
type Config struct {
	HubURL       string // http(s)://host:port of the hub; required
	Credential   string // installation credential; required
	AgentVersion string // required
	Hostname     string
	APIMURL      string
	// TLS configures the connection to an https hub (trusted CAs, client
	// certificate); nil uses the system roots and no client certificate.
	TLS *tls.Config
	// KeepCredential keeps, durably, a new credential the hub sent when it
	// rotated this installation's (protocol.OpRotateCredential). The link
	// acknowledges the new credential, and dials with it, only once
	// KeepCredential has returned nil; after an error it keeps the old one
	// and tells the hub. Nil answers rotations unsupported.
	KeepCredential func(ctx context.Context, credential string) error

	MinBackoff time.Duration // (1s)
	MaxBackoff time.Duration // (30s, catalogue row B2)
	HealthyIn  time.Duration // a session this long resets the backoff (1s): a hub that accepted and served us is healthy; a crash loop that drops us at once still backs off
	// ReconnectSpread is the window over which the first redial after a
	// healthy session (and the first after Run's first failed dial) is
	// spread, uniformly (10s, DefaultReconnectSpread): when a hub restarts,
	// its agents come back over these seconds instead of all in the first
	// one. Later redials follow the backoff. It applies while the hub has
	// advertised no spread of its own (its last hello reply carried none);
	// an advertised one takes its place. Negative means no spread of its
	// own (the backoff alone).
	ReconnectSpread time.Duration
	PongWait        time.Duration // silence after which the hub is dead (30s)
	WriteWait       time.Duration // (10s)
	CallTimeout     time.Duration // (30s)
	SendQueue       int           // (64)
}

// Client keeps the agent linked to the hub.
type Client struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	dialer   *websocket.Dialer
	handlers map[protocol.Op]HandlerFunc // written before Run only

	state     atomic.Int32
	mu        sync.Mutex // guards sess, cred, hello, spread, onConnect, connected, everUp, draining
	sess      *session
	cred      string // the credential the next dial presents: Config.Credential, or the hub's rotated one
	hello     *protocol.HelloReply
	spread    time.Duration // the reconnect spread the hub last advertised (hello or settings); 0: none
	onConnect []func(*protocol.HelloReply)
	connected chan struct{} // closed and replaced on each connect; guarded by mu
	everUp    bool
	draining  bool // set by Drain: Run ends instead of reconnecting

	rand func() float64 // draws of Run's backoff, [0,1); nil is math/rand; tests fix it before Run

	rotating sync.Mutex // held through a rotation: the credential kept and the one dialled with change together
}

// New builds a client; Run connects.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Client, error) {
	if cfg.HubURL == "" || cfg.Credential == "" || cfg.AgentVersion == "" {
		return nil, errors.New("link: hub URL, credential and agent version are required")
	}
	if log == nil {
		return nil, errors.New("link: logger is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.MinBackoff, time.Second)
	def(&cfg.MaxBackoff, 30*time.Second)
	def(&cfg.HealthyIn, time.Second)
	if cfg.ReconnectSpread == 0 {
		cfg.ReconnectSpread = DefaultReconnectSpread
	}
	def(&cfg.PongWait, 30*time.Second)
	def(&cfg.WriteWait, 10*time.Second)
	def(&cfg.CallTimeout, 30*time.Second)
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = 64
	}
	dialer := &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096,
		Proxy: http.ProxyFromEnvironment, TLSClientConfig: cfg.TLS,
		Subprotocols: []string{protocol.Subprotocol}, // the hub refuses upgrades without it
	}
	c := &Client{
		cfg:       cfg,
		log:       log.With("component", "link"),
		m:         newMetrics(reg),
		dialer:    dialer,
		handlers:  make(map[protocol.Op]HandlerFunc),
		connected: make(chan struct{}),
		cred:      cfg.Credential,
	}
	if cfg.KeepCredential != nil {
		c.handlers[protocol.OpRotateCredential] = c.rotate
	}
	return c, nil
}

// rotate answers protocol.OpRotateCredential: it keeps the hub's new
// credential (Config.KeepCredential), and only then answers ok and dials
// with it from the next session on. The session the command came on stays
// up. A credential already in use is answered ok at once.
func (c *Client) rotate(ctx context.Context, body json.RawMessage) (any, error) {
	var r protocol.CredentialRotation
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, protocol.Errorf(protocol.CodeInvalid, "malformed credential rotation")
	}
	if err := r.Validate(); err != nil {
		return nil, protocol.Errorf(protocol.CodeInvalid, err.Error())
	}
	c.rotating.Lock()
	defer c.rotating.Unlock()
	if r.Credential == c.credential() {
		return nil, nil
	}
	if err := c.cfg.KeepCredential(ctx, r.Credential); err != nil {
		c.log.Error("could not keep the new credential the hub sent; the old one stays in use", "err", err)
		return nil, protocol.Errorf(protocol.CodeUnavailable, "the agent could not keep the new credential: "+err.Error())
	}
	c.mu.Lock()
	c.cred = r.Credential
	c.mu.Unlock()
	c.log.Info("the hub rotated this installation's credential; the new one is kept and presented from the next connection on")
	return nil, nil
}

// credential is the credential the next dial presents.
func (c *Client) credential() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cred
}

// Handle registers the handler of an operation the hub may call.
func (c *Client) Handle(op protocol.Op, h HandlerFunc) { c.handlers[op] = h }

// OnConnect registers f to run (in its own goroutine) after every hello.
func (c *Client) OnConnect(f func(*protocol.HelloReply)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onConnect = append(c.onConnect, f)
}

// State returns the link's state.
func (c *Client) State() State { return State(c.state.Load()) }

// Hello returns the hub's last hello reply, or nil before the first.
func (c *Client) Hello() *protocol.HelloReply {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hello
}

func (c *Client) setState(s State) {
	c.state.Store(int32(s))
	c.m.state.Set(float64(s))
}

func linkURL(hub string) (string, error) {
	u, err := url.Parse(strings.TrimRight(hub, "/"))
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
		return "", fmt.Errorf("hub URL %q: want http(s)://", hub)
	}
	u.Path += "/api/v1/link"
	return u.String(), nil
}

// Run keeps the link up until ctx ends or Drain has closed it. It returns
// ErrUnauthorized when the hub refuses the credential, and nil otherwise.
func (c *Client) Run(ctx context.Context) error {
	target, err := linkURL(c.cfg.HubURL)
	if err != nil {
		return err
	}
	defer c.setState(StateClosed)
	b := backoff{min: c.cfg.MinBackoff, max: c.cfg.MaxBackoff, rand: c.rand}
	for {
		if c.isDraining() {
			return nil
		}
		c.setState(StateConnecting)
		start := time.Now()
		err := c.session(ctx, target)
		if ctx.Err() != nil || c.isDraining() {
			return nil
		}
		if errors.Is(err, ErrUnauthorized) {
			c.log.Error("hub refused the installation credential; stopping the link", "err", err)
			return err
		}
		// Not connected while waiting: WaitConnected must wait.
		c.setState(StateConnecting)
		superseded := errors.Is(err, ErrSuperseded)
		if superseded {
			c.log.Warn("the hub replaced this link with a newer connection of the same installation; is another agent running with this credential?")
		}
		if time.Since(start) >= c.cfg.HealthyIn && !superseded {
			b.reset()
		}
		b.spread = c.ReconnectSpread()
		wait := b.next()
		c.log.Warn("link to hub lost; reconnecting", "err", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// session dials, says hello and serves one connection until it fails.
func (c *Client) session(ctx context.Context, target string) error {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+c.credential())
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	ws, resp, err := c.dialer.DialContext(dctx, target, h)
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			c.m.dialErrors.WithLabelValues("unauthorized").Inc()
			// The hub's problem says why: unknown, or rotated out and expired.
			return fmt.Errorf("%w (hub answered %s%s)", ErrUnauthorized, resp.Status, problemOf(resp))
		}
		if resp != nil {
			c.m.dialErrors.WithLabelValues("refused").Inc()
			return fmt.Errorf("hub answered the link upgrade with %s%s", resp.Status, problemOf(resp))
		}
		c.m.dialErrors.WithLabelValues("network").Inc()
		return fmt.Errorf("dial hub: %w", err)
	}
	ws.SetReadLimit(protocol.MaxFrameBytes)
	s := &session{c: c, ws: ws, send: make(chan []byte, c.cfg.SendQueue), quit: make(chan struct{}), done: make(chan struct{}), pending: map[string]chan *protocol.Envelope{}}
	rep, err := s.hello()
	if err != nil {
		ws.Close()
		c.m.dialErrors.WithLabelValues("hello").Inc()
		return fmt.Errorf("hello: %w", err)
	}
	c.mu.Lock()
	if c.draining {
		// Drain ran during the hello and found no session to drain.
		c.mu.Unlock()
		ws.Close()
		return errors.New("link drained")
	}
	c.sess, c.hello, c.spread = s, rep, advertisedSpread(rep.ReconnectSpreadMs)
	hooks := append([]func(*protocol.HelloReply){}, c.onConnect...)
	if c.everUp {
		c.m.reconnects.Inc()
	}
	c.everUp = true
	c.setState(StateConnected) // before waking WaitConnected
	close(c.connected)
	c.connected = make(chan struct{})
	c.mu.Unlock()
	envs := make([]string, 0, len(rep.Environments))
	for _, e := range rep.Environments {
		envs = append(envs, e.Name)
	}
	c.log.Info("connected to hub", "agent_id", rep.InstallationID, "org", rep.OrgName, "environments", envs)
	for _, f := range hooks {
		go f(rep)
	}
	err = s.serve(ctx)
	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
	}
	c.mu.Unlock()
	return err
}

// ReconnectSpread is the window over which the first redial after a
// healthy session will be spread: the one the hub last advertised, or else
// Config.ReconnectSpread; 0 when there is none.
func (c *Client) ReconnectSpread() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.spread > 0 {
		return c.spread
	}
	return max(c.cfg.ReconnectSpread, 0)
}

// setSpread takes the reconnect spread of a settings message from the hub.
func (c *Client) setSpread(ms int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spread = advertisedSpread(ms)
}

// advertisedSpread is a reconnect spread the hub advertised, in
// milliseconds, within [0, maxAdvertisedSpread]; 0 means none.
func advertisedSpread(ms int64) time.Duration {
	ms = min(max(ms, 0), maxAdvertisedSpread.Milliseconds())
	return time.Duration(ms) * time.Millisecond
}

// WaitConnected blocks until the next successful hello or ctx's end.
func (c *Client) WaitConnected(ctx context.Context) error {
	if c.State() == StateConnected {
		return nil
	}
	c.mu.Lock()
	ch := c.connected
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Call sends a command to the hub and decodes the reply body into out
// (which may be nil). It fails at once with ErrNotConnected while the link
// is down.
func (c *Client) Call(ctx context.Context, op protocol.Op, body, out any) error {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return ErrNotConnected
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.CallTimeout)
		defer cancel()
	}
	raw, err := s.call(ctx, op, body)
	if err != nil {
		return err
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decode %s reply: %w", op, err)
		}
	}
	return nil
}

// Drain stops taking new commands from the hub, says goodbye and closes the
// link once in-flight commands are done or ctx ends.
//
// Drain is final: Run returns instead of reconnecting. It returns once the
// session has ended (the goodbye is on the wire) or ctx ends.
func (c *Client) Drain(ctx context.Context) {
	c.mu.Lock()
	c.draining = true
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return
	}
	c.setState(StateDraining)
	s.drain(ctx)
	select {
	case <-s.done:
	case <-ctx.Done():
	}
}

func (c *Client) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// problemOf returns ": <code>: <detail>" from the problem document a hub
// answers a refused upgrade with (the dialer keeps the start of the body),
// so that the agent's log says why; empty when there is none.
func problemOf(resp *http.Response) string {
	if resp.Body == nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	var p struct{ Code, Detail string }
	if json.Unmarshal(b, &p) != nil || (p.Code == "" && p.Detail == "") {
		return ""
	}
	out := ": " + p.Code
	if p.Detail != "" {
		out += ": " + p.Detail
	}
	return strings.ToValidUTF8(out, "")
}
