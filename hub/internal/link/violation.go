package link

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"ferry.dev/shared/protocol"
)

// MaxViolations is how many policy violations one connection may commit
// before the hub closes it with 1008 (policy violation).
const MaxViolations = 3

// maxRecentCommands bounds the agent command ids a connection remembers to
// refuse replays.
const maxRecentCommands = 1024

// closePolicy is the close reason of a link ended for its violations.
const closePolicy = "too many policy violations"

// Violation marks a handler's refusal as a policy violation by the agent
// (an attempt on another environment's objects, say): the reply carries
// err's code as usual, and the connection counts it toward MaxViolations.
func Violation(err error) error { return &violation{err: err} }

type violation struct{ err error }

func (v *violation) Error() string { return v.err.Error() }
func (v *violation) Unwrap() error { return v.err }

// hubOnly are the operations only the hub sends; an agent sending one is
// confused or hostile.
var hubOnly = map[protocol.Op]bool{
	protocol.OpExportAPI:        true,
	protocol.OpDeliverPromotion: true,
	protocol.OpPromotionUpdate:  true,
	protocol.OpCancelPromotion:  true,
	protocol.OpRotateCredential: true,
}

// violate counts one violation of kind, reports it as a security event and
// closes the link with 1008 at MaxViolations. It is safe from any goroutine.
func (c *Conn) violate(kind, detail string) {
	n := c.violations.Add(1)
	c.ep.m.violations.WithLabelValues(kind).Inc()
	closed := n == MaxViolations
	if closed {
		c.ep.m.policyCloses.Inc()
		c.Close(websocket.ClosePolicyViolation, closePolicy)
	}
	c.security(kind, fmt.Sprintf("%s (violation %d of %d)", detail, n, MaxViolations), closed)
}

// rememberCommand records an agent command id; it reports false when the id
// was already seen on this connection. Only the reader calls it.
//
// Ids and their replies are kept for recentCommandsFor, at most
// maxRecentCommands of them: a copy made by the network arrives within
// moments, and replies held for the whole life of a link would grow the
// hub's heap with every command.
func (c *Conn) rememberCommand(id string) (a *answer, fresh bool) {
	if a, ok := c.recent[id]; ok {
		return a, false
	}
	now := time.Now()
	for len(c.recentOrder) > 0 && (len(c.recentOrder) >= maxRecentCommands || now.Sub(c.recent[c.recentOrder[0]].at) > recentCommandsFor) {
		delete(c.recent, c.recentOrder[0])
		c.recentOrder = c.recentOrder[1:]
	}
	a = newAnswer()
	a.at = now
	c.recent[id] = a
	c.recentOrder = append(c.recentOrder, id)
	return a, true
}

// recentCommandsFor is how long a link remembers a command id and its reply:
// long enough for a copy the network made (it arrives within a round trip,
// about a second on the slowest link the catalogue tests), short enough
// that the memory held per link stays a few seconds' worth of commands. A
// copy arriving later runs again, which the operations allow: a decision
// already recorded is answered as such, a second promotion request meets
// the one-active-promotion rule. An agent's own retries use new ids.
const recentCommandsFor = 10 * time.Second

// answer is the reply a command got, kept so that a copy of the command
// (a frame the network duplicated, or an agent retrying on the same link)
// gets the same reply instead of running again.
type answer struct {
	at   time.Time // when the command arrived
	once sync.Once
	done chan struct{} // closed once r is set
	r    *protocol.Reply
}

func newAnswer() *answer { return &answer{done: make(chan struct{})} }

// set records the command's reply; only the first call counts.
func (a *answer) set(r *protocol.Reply) {
	a.once.Do(func() { a.r = r; close(a.done) })
}

// duplicate returns the reply for a copy of the command, once the first
// copy has its reply, or false if quit closes first.
func (a *answer) duplicate(quit <-chan struct{}) (*protocol.Reply, bool) {
	select {
	case <-a.done:
		r := *a.r
		r.Duplicate = true
		return &r, true
	case <-quit:
		return nil, false
	}
}

// issued reports whether id names a command this connection sent (a late
// reply to one is normal; a reply to anything else is not).
func (c *Conn) issued(id string) bool {
	n, err := strconv.ParseUint(strings.TrimPrefix(id, "h"), 10, 64)
	if err != nil || !strings.HasPrefix(id, "h") || n == 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return n <= c.seq
}

// IsViolation reports whether err was marked by Violation.
func IsViolation(err error) bool {
	var v *violation
	return errors.As(err, &v)
}
