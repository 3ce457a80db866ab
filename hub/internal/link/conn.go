package link

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"ferry.dev/shared/protocol"
)

// Peer is the authenticated identity behind a connection.
type Peer struct {
	InstallationID string
	OrgID          string
	EnvIDs         []string
	// ClientKeyHash is the auth.ClientKeyHash of the client certificate the
	// installation enrolled with: the upgrade request must present a
	// verified certificate with that key. Empty binds nothing.
	ClientKeyHash string
	// PreviousCredential is true when the link authenticated with the
	// credential its installation's current one replaced (a rotation),
	// within the overlap during which the old one still opens links.
	PreviousCredential bool
}

// Serves reports whether the peer serves environment envID.
func (p Peer) Serves(envID string) bool {
	for _, e := range p.EnvIDs {
		if e == envID {
			return true
		}
	}
	return false
}

// HandlerFunc answers one command from an agent. The returned value is the
// reply body; an error becomes an error reply (its protocol.Code when it
// wraps a *protocol.Error, internal otherwise).
type HandlerFunc func(ctx context.Context, p Peer, body json.RawMessage) (any, error)

// ErrClosed is returned by calls on a closed connection.
var ErrClosed = protocol.Errorf(protocol.CodeDisconnected, "link closed before the reply arrived")

// Conn is one agent's WebSocket connection.
type Conn struct {
	id     string
	remote string // the peer's address, as the listener saw it
	peer   Peer
	ws     *websocket.Conn
	ep     *Endpoint

	send     chan []byte   // bounded queue drained by the writer
	queued   atomic.Int64  // bytes in send, and the frame being written
	quit     chan struct{} // closed by Close: the writer sends the close frame
	done     chan struct{} // closed when both goroutines have finished
	lastSeen atomic.Int64  // unix nanos of the last frame or pong

	closeOnce   sync.Once
	closeCode   int    // written once before quit is closed
	closeReason string // written once before quit is closed

	mu      sync.Mutex                         // guards pending and seq
	pending map[string]chan *protocol.Envelope // command id → reply channel
	seq     uint64

	violations atomic.Int32 // policy violations so far; MaxViolations closes the link

	// Owned by the reader: the agent's recent command ids, oldest first,
	// with the reply each got once it has one.
	recent      map[string]*answer
	recentOrder []string
	rate        bucket // every message the agent sends takes a token
	bad         window // the agent's recent bad messages
}

// logger returns the connection's logger. It is built at each use instead
// of kept per connection: logging is rare and 10,000 idle links should not
// each hold a handler with preformatted attributes.
func (c *Conn) logger() *slog.Logger {
	return c.ep.log.With("agent_id", c.peer.InstallationID, "conn_id", c.id)
}

// ID is the connection's id (for logs).
func (c *Conn) ID() string { return c.id }

// Remote is the address the connection came from.
func (c *Conn) Remote() string { return c.remote }

// CloseReason says why the connection ended (e.g. "goodbye", "silent",
// "superseded", "slow consumer"; "error" for anything unexpected), once
// Done is closed; empty before.
func (c *Conn) CloseReason() string {
	select {
	case <-c.done:
		return disconnectReason(c.closeReason)
	default:
		return ""
	}
}

// Peer is the connection's authenticated identity.
func (c *Conn) Peer() Peer { return c.peer }

// LastSeen is when the hub last heard from the agent.
func (c *Conn) LastSeen() time.Time { return time.Unix(0, c.lastSeen.Load()) }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

func newConnID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "c_" + hex.EncodeToString(b[:])
}

// Close ends the connection with a WebSocket close code and reason. It is
// safe to call many times and from any goroutine.
func (c *Conn) Close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeReason = code, reason
		close(c.quit)
		if code == websocket.CloseAbnormalClosure || code == websocket.CloseTryAgainLater {
			// The agent is gone, silent or not reading: a write blocked
			// on its full socket would wait out its deadline (longer for
			// a large frame) before the link could end. End it now
			// (net.Conn deadlines may be set from any goroutine).
			_ = c.ws.NetConn().SetWriteDeadline(time.Now())
		}
	})
}

// enqueue hands a frame to the writer. A full queue disconnects the agent as
// slow instead of blocking.
func (c *Conn) enqueue(env *protocol.Envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("encode %s: %w", env.Type, err)
	}
	select {
	case <-c.quit:
		return ErrClosed
	default:
	}
	c.queued.Add(int64(len(b)))
	select {
	case c.send <- b:
		c.ep.m.messages.WithLabelValues(string(env.Type), "out").Inc()
		return nil
	default:
		c.queued.Add(-int64(len(b)))
		c.logger().Warn("agent is not reading fast enough; disconnecting it", "queue", cap(c.send))
		c.Close(websocket.CloseTryAgainLater, "slow consumer")
		return protocol.Errorf(protocol.CodeUnavailable, "agent link is congested")
	}
}

// offer hands an encoded frame that may be lost (advice, not a message the
// agent must get) to the writer if the queue has room, and reports whether
// it did. Unlike enqueue it never disconnects the agent.
func (c *Conn) offer(b []byte) bool {
	select {
	case <-c.quit:
		return false
	default:
	}
	c.queued.Add(int64(len(b)))
	select {
	case c.send <- b:
		return true
	default:
		c.queued.Add(-int64(len(b)))
		return false
	}
}

func (c *Conn) nextID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return fmt.Sprintf("h%d", c.seq)
}

// DefaultSlowLinkRate is Config.SlowLinkRate's default: 32 KiB/s, half the
// 64 KiB/s of the catalogue's degraded link (row A6).
const DefaultSlowLinkRate = 32 << 10

// Call sends a command and waits for its reply, the context's deadline or
// the connection's end. A context without a deadline gets the endpoint's
// call timeout plus the time, at the slow-link rate, to send the command
// and what is queued ahead of it on the connection (callTimeout).
func (c *Conn) Call(ctx context.Context, op protocol.Op, body any) (json.RawMessage, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", op, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.callTimeout(len(raw)+int(c.queued.Load())))
		defer cancel()
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
	start := time.Now()
	if err := c.enqueue(env); err != nil {
		return nil, err
	}
	var rep *protocol.Envelope
	select {
	case rep = <-ch:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, protocol.Errorf(protocol.CodeTimeout, fmt.Sprintf("agent did not answer %s in time", op))
		}
		return nil, ctx.Err()
	case <-c.quit:
		// Fail at once: the writer may still be blocked on a slow socket for
		// up to its write deadline, and done waits for it.
		select {
		case rep = <-ch:
		default:
			return nil, ErrClosed
		}
	}
	c.ep.m.callDuration.WithLabelValues(string(op)).Observe(time.Since(start).Seconds())
	var r protocol.Reply
	if err := rep.DecodePayload(&r); err != nil {
		return nil, protocol.Errorf(protocol.CodeInternal, err.Error())
	}
	if r.Status == protocol.StatusError {
		return nil, r.Error
	}
	return r.Body, nil
}

// callTimeout is the deadline of a call without one, whose command and
// the frames queued ahead of it are size bytes: the endpoint's call
// timeout plus the time size takes at the slow-link rate. The socket
// accepts a frame into kernel buffers long before a throttled link has
// carried it, so the deadline cannot start when the write returns; it
// allows for the bytes instead.
func (c *Conn) callTimeout(size int) time.Duration {
	return c.ep.cfg.CallTimeout + c.atSlowRate(size)
}

// atSlowRate is how long size bytes take at the slow-link rate.
func (c *Conn) atSlowRate(size int) time.Duration {
	return time.Duration(float64(size) / c.ep.cfg.SlowLinkRate * float64(time.Second))
}

// writeFrame writes one queued frame, allowing the write deadline plus the
// frame's time at the slow-link rate (a 1 MiB frame on a 100 KiB/s path
// takes longer than the 10 s write deadline).
func (c *Conn) writeFrame(b []byte) error {
	defer c.queued.Add(-int64(len(b)))
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.ep.cfg.WriteWait + c.atSlowRate(len(b))))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// writeLoop owns every write on the socket.
func (c *Conn) writeLoop() {
	cfg := c.ep.cfg
	ticker := time.NewTicker(cfg.PingInterval)
	defer ticker.Stop()
	defer c.ws.Close() // unblocks the reader
	for {
		select {
		case b := <-c.send:
			if err := c.writeFrame(b); err != nil {
				c.Close(websocket.CloseAbnormalClosure, "write failed")
				return
			}
		case <-ticker.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteWait)); err != nil {
				c.Close(websocket.CloseAbnormalClosure, "ping failed")
				return
			}
		case <-c.quit:
			c.drainQueue()
			if c.closeCode != websocket.CloseAbnormalClosure {
				msg := websocket.FormatCloseMessage(c.closeCode, c.closeReason)
				_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(cfg.WriteWait))
			}
			return
		}
	}
}

// drainQueue writes frames still queued (e.g. a goodbye) before the close
// frame. Only the writer calls it.
func (c *Conn) drainQueue() {
	if c.closeCode == websocket.CloseAbnormalClosure {
		return
	}
	for {
		select {
		case b := <-c.send:
			if err := c.writeFrame(b); err != nil {
				return
			}
		default:
			return
		}
	}
}

// readLoop runs in the link's own goroutine until the socket fails.
func (c *Conn) readLoop(ctx context.Context) {
	cfg := c.ep.cfg
	c.ws.SetPongHandler(func(string) error {
		c.lastSeen.Store(time.Now().UnixNano())
		return c.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
	})
	sem := make(chan struct{}, cfg.MaxInflight)
	var wg sync.WaitGroup
	defer wg.Wait()
	// Handlers of the agent's commands end with the link, before wg.Wait.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
		typ, frame, err := c.ws.ReadMessage()
		if err != nil {
			c.closeFromReadError(err)
			return
		}
		now := time.Now()
		c.lastSeen.Store(now.UnixNano())
		if !c.rate.allow(now) {
			c.flooded()
			return
		}
		if typ != websocket.TextMessage {
			c.Close(websocket.CloseUnsupportedData, "binary frames are not supported; send JSON text frames")
			return
		}
		// gorilla does not check that text frames are UTF-8 (RFC 6455 §8.1).
		if !utf8.Valid(frame) {
			c.ep.m.messages.WithLabelValues("invalid", "in").Inc()
			c.logger().Warn("agent sent a text frame that is not UTF-8; closing link")
			c.Close(websocket.CloseInvalidFramePayloadData, closeInvalidUTF8)
			return
		}
		env, err := protocol.Decode(frame)
		if err != nil {
			c.ep.m.messages.WithLabelValues("invalid", "in").Inc()
			if c.badMessage(refOf(frame), err.Error(), false) {
				return
			}
			continue
		}
		c.ep.m.messages.WithLabelValues(metricType(env.Type), "in").Inc()
		switch env.Type {
		case protocol.TypeReply:
			c.deliverReply(env)
		case protocol.TypeHelloReply:
			c.reply(env.ID, protocol.ErrorReply(protocol.CodeInvalid, "hello_reply is sent by the hub, never by an agent"))
			c.violate(KindDirection, "agent sent hello_reply")
		case protocol.TypeSettings:
			if env.ID != "" {
				c.reply(env.ID, protocol.ErrorReply(protocol.CodeInvalid, "settings are sent by the hub, never by an agent"))
			}
			c.violate(KindDirection, "agent sent settings")
		case protocol.TypeCommand:
			ans, fresh := c.rememberCommand(env.ID)
			if !fresh {
				// A copy of a command this link already received: it does
				// not run again, and gets the first copy's reply, marked
				// duplicate, once there is one.
				c.ep.m.duplicates.Inc()
				go func(id string) {
					if r, ok := ans.duplicate(c.quit); ok {
						c.reply(id, r)
					}
				}(env.ID)
				continue
			}
			var cmd protocol.Command
			if err := env.DecodePayload(&cmd); err != nil {
				r := protocol.ErrorReply(protocol.CodeBadMessage, err.Error())
				ans.set(r)
				c.reply(env.ID, r)
				if c.badMessage(env.ID, err.Error(), true) {
					return
				}
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-c.quit:
				return
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				c.handleCommand(ctx, env.ID, &cmd, ans)
			}()
		case protocol.TypeHealthCheck:
			r, _ := protocol.OKReply(&protocol.Health{Healthy: true})
			c.reply(env.ID, r)
		case protocol.TypeGoodbye:
			var g protocol.Goodbye
			_ = env.DecodePayload(&g)
			c.logger().Info("agent said goodbye", "reason", g.Reason)
			c.Close(websocket.CloseNormalClosure, "goodbye")
			return
		case protocol.TypeHello:
			c.Close(websocket.CloseProtocolError, "hello sent twice")
			return
		case protocol.TypeError:
			var pe protocol.Error
			_ = env.DecodePayload(&pe)
			c.logger().Warn("agent refused a message from the hub", "code", pe.Code, "ref", pe.Ref, "detail", pe.Message)
		default:
			// Unknown types get an unsupported reply when they can be
			// answered (the protocol's compatibility rule) and an error
			// frame otherwise; either way they count as bad messages.
			msg := "message type " + string(env.Type) + " is not supported by this hub"
			if env.ID != "" {
				c.reply(env.ID, protocol.ErrorReply(protocol.CodeUnsupported, msg))
			}
			if c.badMessage(env.ID, msg, env.ID != "") {
				return
			}
		}
	}
}

func metricType(t protocol.Type) string {
	if t.Known() {
		return string(t)
	}
	return "unknown"
}

func (c *Conn) closeFromReadError(err error) {
	var ce *websocket.CloseError
	switch {
	case isProtocolError(err):
		// gorilla has already sent 1002 (a bad mask, reserved bits,
		// an oversized or fragmented control frame, ...).
		c.logger().Warn("agent broke the WebSocket framing rules; closing link", "err", err)
		c.Close(websocket.CloseAbnormalClosure, closeProtocolError)
	case errors.As(err, &ce):
		c.Close(websocket.CloseNormalClosure, "peer closed")
	case isTimeout(err):
		c.logger().Warn("agent silent past the pong deadline; closing link", "pong_wait", c.ep.cfg.PongWait)
		c.Close(websocket.CloseAbnormalClosure, "silent")
	case errors.Is(err, websocket.ErrReadLimit):
		c.logger().Warn("agent sent a frame over the read limit; closing link", "limit", c.ep.cfg.MaxFrameBytes)
		c.Close(websocket.CloseMessageTooBig, "frame exceeds 4 MiB")
	default:
		c.Close(websocket.CloseAbnormalClosure, "read failed")
	}
	c.logger().Debug("link read ended", "err", err)
}

// Close reasons of the read path.
const (
	closeInvalidUTF8   = "invalid UTF-8"
	closeProtocolError = "protocol error"
)

// isProtocolError reports whether err is gorilla's answer to a frame that
// breaks RFC 6455, after which it has sent a 1002 close frame itself.
// gorilla returns those as plain errors prefixed "websocket: "; this only
// picks a log line and a metric label, so matching the text is safe.
func isProtocolError(err error) bool {
	var ne net.Error
	var ce *websocket.CloseError
	if errors.As(err, &ne) || errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, websocket.ErrReadLimit) {
		return false
	}
	return strings.HasPrefix(err.Error(), "websocket: ")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *Conn) deliverReply(env *protocol.Envelope) {
	c.mu.Lock()
	ch, ok := c.pending[env.ReplyTo]
	c.mu.Unlock()
	if !ok {
		if !c.issued(env.ReplyTo) {
			c.violate(KindUnknownReply, "reply to "+env.ReplyTo+", which this hub never sent")
			return
		}
		c.logger().Debug("reply for unknown or expired command", "reply_to", env.ReplyTo)
		return
	}
	select {
	case ch <- env:
	default: // a duplicate reply; the first one won
	}
}

func (c *Conn) handleCommand(ctx context.Context, id string, cmd *protocol.Command, ans *answer) {
	reply := func(r *protocol.Reply) {
		ans.set(r)
		c.reply(id, r)
	}
	if hubOnly[cmd.Op] {
		reply(protocol.ErrorReply(protocol.CodeInvalid, "operation "+string(cmd.Op)+" is sent by the hub, never by an agent"))
		c.violate(KindDirection, "agent sent "+string(cmd.Op))
		return
	}
	h, ok := c.ep.handlers[cmd.Op]
	if !ok {
		reply(protocol.ErrorReply(protocol.CodeUnsupported, "operation "+string(cmd.Op)+" is not supported by this hub"))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.ep.cfg.CallTimeout)
	defer cancel()
	out, err := h(ctx, c.peer, cmd.Body)
	if err != nil {
		code := protocol.CodeOf(err)
		msg := err.Error()
		if code == protocol.CodeInternal {
			c.logger().Error("command failed", "op", cmd.Op, "err", err)
			msg = "internal error; the hub logged the details"
		}
		var pe *protocol.Error
		if errors.As(err, &pe) {
			msg = pe.Message
		}
		reply(protocol.ErrorReply(code, msg))
		if IsViolation(err) {
			c.violate(KindRefused, string(cmd.Op)+": "+msg)
		}
		return
	}
	r, err := protocol.OKReply(out)
	if err != nil {
		reply(protocol.ErrorReply(protocol.CodeInternal, err.Error()))
		return
	}
	reply(r)
}

func (c *Conn) reply(to string, r *protocol.Reply) {
	env, err := protocol.New(protocol.TypeReply, c.nextID(), to, r)
	if err != nil {
		c.logger().Error("encode reply", "err", err)
		return
	}
	_ = c.enqueue(env)
}
