package link

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gorilla/websocket"

	"ferry.dev/shared/protocol"
)

// Limits on what one agent connection may send (catalogue rows D6/W25 and
// W15). Config fields of the same names override them, for tests.
const (
	// DefaultMessageRate and DefaultMessageBurst are the token bucket every
	// connection's incoming messages draw from: refilled at 100 messages/s,
	// holding at most 200. A healthy agent sends a few messages a minute
	// (replies, decisions, list calls); the burst absorbs a reconnecting
	// agent's backlog of decisions. An agent above 100 messages/s sustained
	// is closed with 1008.
	DefaultMessageRate  = 100
	DefaultMessageBurst = 200
	// DefaultMaxBadMessages bad messages (not a valid envelope, an unknown
	// type, a command whose payload does not validate) are answered with an
	// error and tolerated within DefaultBadMessageWindow; one more closes the
	// link with 1008. This is separate from the MaxViolations strikes, which
	// count attacks rather than mistakes.
	DefaultMaxBadMessages   = 10
	DefaultBadMessageWindow = time.Minute
)

// Close reasons of the policies in this file.
const (
	closeFlood       = "message rate exceeded"
	closeBadMessages = "too many bad messages"
)

// Security event kinds, passed to the OnSecurityEvent hook.
const (
	KindDirection    = "direction"     // a message only the hub sends
	KindUnknownReply = "unknown_reply" // a reply to a command the hub never sent
	KindRefused      = "refused"       // a handler's refusal marked with Violation (the handler audits it)
	KindFlood        = "flood"         // above the message rate; the link is closed
	KindBadMessages  = "bad_messages"  // too many bad messages; the link is closed
	// KindClientCertificate is a link refused before the upgrade (403
	// client_certificate_mismatch): its installation is bound to a client
	// certificate key, and the request presented another or none.
	KindClientCertificate = "client_certificate"
)

// SecurityEvent is an agent's misbehaviour on its link, for the audit trail.
type SecurityEvent struct {
	Peer   Peer
	ConnID string // empty for a refusal before the upgrade
	Kind   string // one of the Kind constants
	Detail string // what happened, for humans; never carries a credential
	Closed bool   // the event closed the link
	// Remote is the IP address the request came from, for a refusal before
	// the upgrade (KindClientCertificate); empty otherwise.
	Remote string
}

// OnSecurityEvent registers f, called for every violation, for every link
// closed by the rate policies, and for every upgrade refused because its
// client certificate key is not the installation's. It runs synchronously
// on the connection's goroutine (at most MaxViolations+1 times per
// connection), or on the request's before the refusal is answered, so it
// may write to the audit trail but should not take long. Register before
// serving.
func (e *Endpoint) OnSecurityEvent(f func(ctx context.Context, ev SecurityEvent)) {
	e.onSecurity = f
}

// security logs ev as a security event and hands it to the hook.
func (c *Conn) security(kind, detail string, closed bool) {
	c.logger().Warn("security event on agent link", "security", true, "kind", kind, "detail", detail, "closed", closed)
	if f := c.ep.onSecurity; f != nil {
		f(c.ep.baseCtx, SecurityEvent{Peer: c.peer, ConnID: c.id, Kind: kind, Detail: detail, Closed: closed})
	}
}

// bucket is a token bucket. Only the reader uses it.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newBucket(rate float64, burst int) bucket {
	return bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// allow takes one token at now and reports whether there was one.
func (b *bucket) allow(now time.Time) bool {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// window counts events in a sliding time window. Only the reader uses it.
type window struct {
	max   int
	span  time.Duration
	times []time.Time // within span of the last event, oldest first; at most max+1
}

// add records an event at now and reports whether more than max events fell
// within span.
func (w *window) add(now time.Time) bool {
	cut := now.Add(-w.span)
	i := 0
	for i < len(w.times) && !w.times[i].After(cut) {
		i++
	}
	w.times = append(w.times[i:], now)
	return len(w.times) > w.max
}

// flooded closes a connection that sent above the message rate.
func (c *Conn) flooded() {
	c.ep.m.rateCloses.WithLabelValues("messages").Inc()
	c.Close(websocket.ClosePolicyViolation, closeFlood)
	c.security(KindFlood, "agent sent more than its message rate", true)
}

// badMessage answers a bad message (with an error frame unless replied is
// set: the caller answered a command with a reply) and counts it; it
// reports whether the count closed the link. Only the reader calls it.
func (c *Conn) badMessage(ref, detail string, replied bool) (closed bool) {
	c.ep.m.badMessages.Inc()
	c.logger().Debug("bad message from agent", "ref", ref, "detail", detail)
	if !replied {
		if env, err := protocol.New(protocol.TypeError, "", "", &protocol.Error{Code: protocol.CodeBadMessage, Message: detail, Ref: ref}); err == nil {
			_ = c.enqueue(env)
		}
	}
	if !c.bad.add(time.Now()) {
		return false
	}
	c.ep.m.rateCloses.WithLabelValues("bad_messages").Inc()
	c.Close(websocket.ClosePolicyViolation, closeBadMessages)
	c.security(KindBadMessages, "agent sent more than its allowance of bad messages", true)
	return true
}

// refOf returns the id of a frame that failed to decode, when it has a
// usable one, to name it in the error frame.
func refOf(frame []byte) string {
	var probe struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(frame, &probe) != nil || len(probe.ID) > protocol.MaxIDLen {
		return ""
	}
	return probe.ID
}
