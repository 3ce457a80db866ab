package link

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"ferry.dev/shared/protocol"
)

// session is one connection to the hub.
type session struct {
	c  *Client
	ws *websocket.Conn

	send      chan []byte   // bounded queue drained by the writer
	quit      chan struct{} // closed by close: the writer sends the close frame
	done      chan struct{} // closed when serve returns
	closeOnce sync.Once
	closeCode int
	closeMsg  string
	inflight  sync.WaitGroup // hub commands being handled; Add only under mu

	mu       sync.Mutex // guards pending, seq, draining and inflight.Add
	pending  map[string]chan *protocol.Envelope
	seq      uint64
	draining bool

	// Owned by the reader: the hub's recent command ids, oldest first,
	// with the reply each got (see answer).
	recent      map[string]*answer
	recentOrder []string
}

// maxRecentCommands bounds the command ids a session remembers to answer
// copies of them.
const maxRecentCommands = 1024

// answer is the reply a hub command got, kept so that a copy of the
// command (a frame the network duplicated) gets the same reply, marked
// duplicate, instead of running again.
type answer struct {
	once sync.Once
	done chan struct{} // closed once r is set
	r    *protocol.Reply
}

func (a *answer) set(r *protocol.Reply) {
	a.once.Do(func() { a.r = r; close(a.done) })
}

// remember records a command id; fresh is false for a copy.
func (s *session) remember(id string) (a *answer, fresh bool) {
	if s.recent == nil {
		s.recent = map[string]*answer{}
	}
	if a, ok := s.recent[id]; ok {
		return a, false
	}
	if len(s.recentOrder) >= maxRecentCommands {
		delete(s.recent, s.recentOrder[0])
		s.recentOrder = s.recentOrder[1:]
	}
	a = &answer{done: make(chan struct{})}
	s.recent[id] = a
	s.recentOrder = append(s.recentOrder, id)
	return a, true
}

func (s *session) nextID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("a%d", s.seq)
}

func (s *session) close(code int, msg string) {
	s.closeOnce.Do(func() {
		s.closeCode, s.closeMsg = code, msg
		close(s.quit)
	})
}

// hello runs before the writer starts, so it writes directly.
func (s *session) hello() (*protocol.HelloReply, error) {
	cfg := s.c.cfg
	env, err := protocol.New(protocol.TypeHello, s.nextID(), "", &protocol.Hello{AgentVersion: cfg.AgentVersion, Hostname: cfg.Hostname, APIMURL: cfg.APIMURL})
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(env)
	_ = s.ws.SetWriteDeadline(time.Now().Add(cfg.WriteWait))
	if err := s.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	s.c.m.messages.WithLabelValues(string(protocol.TypeHello), "out").Inc()
	_ = s.ws.SetReadDeadline(time.Now().Add(cfg.WriteWait))
	_, frame, err := s.ws.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("read hello reply: %w", err)
	}
	rep, err := protocol.Decode(frame)
	if err != nil {
		return nil, err
	}
	if rep.Type == protocol.TypeError {
		// e.g. unsupported_version; the hub closes the link next.
		var pe protocol.Error
		if err := rep.DecodePayload(&pe); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("hub refused the hello: %w", &pe)
	}
	if rep.Type != protocol.TypeHelloReply || rep.ReplyTo != env.ID {
		return nil, fmt.Errorf("hub answered hello with %s", rep.Type)
	}
	var hr protocol.HelloReply
	if err := rep.DecodePayload(&hr); err != nil {
		return nil, err
	}
	s.c.m.messages.WithLabelValues(string(protocol.TypeHelloReply), "in").Inc()
	return &hr, nil
}

func (s *session) enqueue(env *protocol.Envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("encode %s: %w", env.Type, err)
	}
	select {
	case <-s.quit:
		return ErrNotConnected
	default:
	}
	select {
	case s.send <- b:
		s.c.m.messages.WithLabelValues(string(env.Type), "out").Inc()
		return nil
	default:
		s.close(websocket.CloseTryAgainLater, "agent send queue full")
		return protocol.Errorf(protocol.CodeUnavailable, "link congested")
	}
}

// serve runs the writer goroutine and reads until the connection fails.
func (s *session) serve(ctx context.Context) error {
	cfg := s.c.cfg
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeLoop()
	}()
	stop := context.AfterFunc(ctx, func() { s.close(websocket.CloseGoingAway, "agent shutting down") })
	defer stop()
	s.ws.SetPingHandler(func(data string) error {
		_ = s.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
		// WriteControl is safe alongside the writer's writes.
		err := s.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(cfg.WriteWait))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	err := s.readLoop(ctx)
	s.close(websocket.CloseAbnormalClosure, "read ended")
	<-writerDone
	s.inflight.Wait()
	close(s.done)
	return err
}

func (s *session) writeLoop() {
	cfg := s.c.cfg
	defer s.ws.Close()
	write := func(b []byte) error {
		_ = s.ws.SetWriteDeadline(time.Now().Add(cfg.WriteWait))
		return s.ws.WriteMessage(websocket.TextMessage, b)
	}
	for {
		select {
		case b := <-s.send:
			if err := write(b); err != nil {
				s.close(websocket.CloseAbnormalClosure, "write failed")
				return
			}
		case <-s.quit:
			if s.closeCode == websocket.CloseAbnormalClosure {
				return
			}
			for drained := false; !drained; {
				select {
				case b := <-s.send:
					if write(b) != nil {
						return
					}
				default:
					drained = true
				}
			}
			_ = s.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(s.closeCode, s.closeMsg), time.Now().Add(cfg.WriteWait))
			return
		}
	}
}

func (s *session) readLoop(ctx context.Context) error {
	cfg := s.c.cfg
	for {
		_ = s.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
		typ, frame, err := s.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				switch ce.Code {
				case protocol.CloseSuperseded:
					return fmt.Errorf("hub closed the link: %w", ErrSuperseded)
				case protocol.CloseRevoked:
					return fmt.Errorf("hub closed the link: the installation was revoked: %w", ErrUnauthorized)
				}
				return fmt.Errorf("hub closed the link: %d %s", ce.Code, ce.Text)
			}
			return fmt.Errorf("read: %w", err)
		}
		if typ != websocket.TextMessage {
			s.close(websocket.CloseUnsupportedData, "binary frames are not supported")
			return errors.New("hub sent a binary frame")
		}
		env, err := protocol.Decode(frame)
		if err != nil {
			s.close(websocket.CloseProtocolError, "invalid frame")
			return fmt.Errorf("hub sent an invalid frame: %w", err)
		}
		s.c.m.messages.WithLabelValues(metricType(env.Type), "in").Inc()
		switch env.Type {
		case protocol.TypeReply:
			s.deliver(env)
		case protocol.TypeCommand:
			ans, fresh := s.remember(env.ID)
			if !fresh {
				// A copy: it does not run again and gets the first reply.
				s.c.m.messages.WithLabelValues("duplicate_command", "in").Inc()
				go func(id string) {
					select {
					case <-ans.done:
						r := *ans.r
						r.Duplicate = true
						s.reply(id, &r)
					case <-s.quit:
					}
				}(env.ID)
				continue
			}
			if !s.startCommand() {
				r := protocol.ErrorReply(protocol.CodeUnavailable, "agent is draining; retry on its next connection")
				ans.set(r)
				s.reply(env.ID, r)
				continue
			}
			go func() {
				defer s.inflight.Done()
				s.handle(ctx, env, ans)
			}()
		case protocol.TypeHealthCheck:
			r, _ := protocol.OKReply(&protocol.Health{Healthy: true})
			s.reply(env.ID, r)
		case protocol.TypeSettings:
			var st protocol.Settings
			if err := env.DecodePayload(&st); err != nil {
				s.c.log.Debug("ignored a settings message", "err", err)
				continue
			}
			if st.ReconnectSpreadMs != 0 {
				s.c.setSpread(st.ReconnectSpreadMs)
			}
		case protocol.TypeError:
			var pe protocol.Error
			_ = env.DecodePayload(&pe)
			s.c.log.Warn("hub refused a message from this agent", "code", pe.Code, "ref", pe.Ref, "detail", pe.Message)
		case protocol.TypeGoodbye:
			var g protocol.Goodbye
			_ = env.DecodePayload(&g)
			s.c.log.Info("hub said goodbye", "reason", g.Reason, "reconnect", g.Reconnect)
			s.close(websocket.CloseNormalClosure, "goodbye")
			return fmt.Errorf("hub said goodbye: %s", g.Reason)
		default:
			if env.ID != "" {
				s.reply(env.ID, protocol.ErrorReply(protocol.CodeUnsupported, "message type "+string(env.Type)+" is not supported by this agent"))
			}
		}
	}
}

// startCommand counts a hub command in flight unless the session is
// draining. Under mu, so that no Add races with drain's Wait.
func (s *session) startCommand() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.inflight.Add(1)
	return true
}

func metricType(t protocol.Type) string {
	if t.Known() {
		return string(t)
	}
	return "unknown"
}

func (s *session) deliver(env *protocol.Envelope) {
	s.mu.Lock()
	ch, ok := s.pending[env.ReplyTo]
	s.mu.Unlock()
	if !ok {
		s.c.log.Debug("reply for unknown or expired call", "reply_to", env.ReplyTo)
		return
	}
	select {
	case ch <- env:
	default:
	}
}

func (s *session) handle(ctx context.Context, env *protocol.Envelope, ans *answer) {
	reply := func(r *protocol.Reply) {
		// Queued before a copy of the command may answer with it, so the
		// first reply always goes first.
		s.reply(env.ID, r)
		ans.set(r)
	}
	var cmd protocol.Command
	if err := env.DecodePayload(&cmd); err != nil {
		reply(protocol.ErrorReply(protocol.CodeInvalid, err.Error()))
		return
	}
	h, ok := s.c.handlers[cmd.Op]
	if !ok {
		reply(protocol.ErrorReply(protocol.CodeUnsupported, "operation "+string(cmd.Op)+" is not supported by this agent"))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.c.cfg.CallTimeout)
	defer cancel()
	out, err := h(ctx, cmd.Body)
	if err != nil {
		var pe *protocol.Error
		if !errors.As(err, &pe) {
			s.c.log.Error("command from hub failed", "op", cmd.Op, "err", err)
			pe = protocol.Errorf(protocol.CodeInternal, err.Error())
		}
		reply(protocol.ErrorReply(pe.Code, pe.Message))
		return
	}
	r, err := protocol.OKReply(out)
	if err != nil {
		r = protocol.ErrorReply(protocol.CodeInternal, err.Error())
	}
	reply(r)
}

func (s *session) reply(to string, r *protocol.Reply) {
	env, err := protocol.New(protocol.TypeReply, s.nextID(), to, r)
	if err == nil {
		_ = s.enqueue(env)
	}
}

func (s *session) call(ctx context.Context, op protocol.Op, body any) (json.RawMessage, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", op, err)
	}
	id := s.nextID()
	env, err := protocol.New(protocol.TypeCommand, id, "", &protocol.Command{Op: op, Body: raw})
	if err != nil {
		return nil, err
	}
	ch := make(chan *protocol.Envelope, 1)
	s.mu.Lock()
	s.pending[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	if err := s.enqueue(env); err != nil {
		return nil, err
	}
	select {
	case rep := <-ch:
		var r protocol.Reply
		if err := rep.DecodePayload(&r); err != nil {
			return nil, protocol.Errorf(protocol.CodeInternal, err.Error())
		}
		if r.Status == protocol.StatusError {
			return nil, r.Error
		}
		return r.Body, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, protocol.Errorf(protocol.CodeTimeout, fmt.Sprintf("hub did not answer %s in time", op))
		}
		return nil, ctx.Err()
	case <-s.quit:
		return nil, protocol.Errorf(protocol.CodeDisconnected, "link closed before the hub answered")
	}
}

// drain refuses new commands, waits for in-flight ones, says goodbye and
// closes.
func (s *session) drain(ctx context.Context) {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	idle := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(idle)
	}()
	select {
	case <-idle:
	case <-ctx.Done():
	}
	if env, err := protocol.New(protocol.TypeGoodbye, "", "", &protocol.Goodbye{Reason: "agent shutting down", Reconnect: true}); err == nil {
		_ = s.enqueue(env)
	}
	s.close(websocket.CloseGoingAway, "agent shutting down")
}
