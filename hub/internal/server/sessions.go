package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/fleet"
	"ferry.dev/hub/internal/link"
	"ferry.dev/hub/internal/promotion"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// sessions adapts the fleet to the link endpoint, so neither imports the
// other.
type sessions struct {
	fleet      *fleet.Fleet
	log        *slog.Logger
	index      *envIndex
	promotions *promotion.Service // set before serving
	audit      *audit.Trail       // set before serving
	conns      *connLog           // installations' connection history

	expiredMu sync.Mutex
	// expiredAudited is when each installation's expired credential was
	// last audited (auditExpired).
	expiredAudited map[string]time.Time

	mu       sync.Mutex     // guards stopped and delivers.Add
	stopped  bool           // set by stop: no delivery starts after it
	delivers sync.WaitGroup // credential deliveries in flight
}

var _ link.Sessions = (*sessions)(nil)

func (s *sessions) AuthenticateAgent(ctx context.Context, cred string) (link.Peer, error) {
	inst, err := s.fleet.Authenticate(ctx, cred)
	var expired *fleet.ExpiredCredentialError
	if errors.As(err, &expired) {
		s.auditExpired(ctx, expired)
		return link.Peer{}, &link.Refusal{Code: "credential_expired", Detail: expired.Error(), InstallationID: expired.InstallationID}
	}
	if err != nil {
		return link.Peer{}, err
	}
	return link.Peer{InstallationID: inst.ID, OrgID: inst.OrgID, EnvIDs: inst.EnvIDs, ClientKeyHash: inst.ClientKeyHash,
		PreviousCredential: inst.Previous}, nil
}

func (s *sessions) Hello(ctx context.Context, p link.Peer, h *protocol.Hello) (*protocol.HelloReply, error) {
	return s.fleet.Hello(ctx, p.InstallationID, p.OrgID, p.EnvIDs, h)
}

func (s *sessions) Connected(ctx context.Context, c *link.Conn) {
	s.index.add(c.Peer())
	s.conns.add(state.ConnectionEvent{InstallationID: c.Peer().InstallationID, OrgID: c.Peer().OrgID, At: time.Now().UTC(),
		Event: state.ConnectionOpened, Remote: c.Remote()})
	s.promotions.Kick() // deliver what waited for this agent
	if c.Peer().PreviousCredential {
		// The agent has not got the credential of a rotation: send it a
		// new one. Not here: the link reads the reply only once this
		// returns. ctx ends when the endpoint shuts down.
		s.goDeliver(ctx, c.Peer().InstallationID)
	}
}

// goDeliver runs fleet.DeliverCredential for installation id on a
// goroutine that stop waits for.
func (s *sessions) goDeliver(ctx context.Context, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.delivers.Add(1)
	go func() {
		defer s.delivers.Done()
		s.fleet.DeliverCredential(ctx, id)
	}()
}

// stop waits for the credential deliveries in flight (their context ends
// with the link endpoint's shutdown); none starts after it.
func (s *sessions) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.delivers.Wait()
	s.conns.close(5 * time.Second)
}

func (s *sessions) Disconnected(c *link.Conn, primary bool) {
	// Every link that opened closes in the history, a superseded one too.
	s.conns.add(state.ConnectionEvent{InstallationID: c.Peer().InstallationID, OrgID: c.Peer().OrgID, At: time.Now().UTC(),
		Event: state.ConnectionClosed, Reason: c.CloseReason(), Remote: c.Remote()})
	if !primary {
		return
	}
	s.index.remove(c.Peer())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := c.Peer()
	s.fleet.Disconnected(ctx, p.InstallationID, c.LastSeen())
}

// presence reads liveness from the link registry for the fleet.
type presence struct{ reg *link.Registry }

var _ fleet.Presence = (*presence)(nil)

func (p *presence) Disconnect(id string, code int, reason string) {
	if p.reg == nil {
		return
	}
	if c, ok := p.reg.Get(id); ok {
		c.Close(code, reason)
	}
}

func (p *presence) Call(ctx context.Context, id string, op protocol.Op, body, out any) error {
	if p.reg == nil {
		return protocol.Errorf(protocol.CodeUnavailable, "installation "+id+" is not connected")
	}
	return p.reg.Call(ctx, id, op, body, out)
}

func (p *presence) LastSeen(id string) (time.Time, bool) {
	if p.reg == nil {
		return time.Time{}, false
	}
	c, ok := p.reg.Get(id)
	if !ok {
		return time.Time{}, false
	}
	return c.LastSeen(), true
}

// expiredAuditEvery is how often an installation's refused expired
// credential is audited: an agent that missed its rotation redials every
// 30 s, and each refusal is counted in
// ferry_hub_link_refused_total{reason="credential_expired"} anyway.
const expiredAuditEvery = time.Hour

// auditExpired records a link refused for an expired credential in the
// installation's organization, at most once per expiredAuditEvery.
func (s *sessions) auditExpired(ctx context.Context, e *fleet.ExpiredCredentialError) {
	if s.audit == nil {
		return
	}
	now := time.Now()
	s.expiredMu.Lock()
	if s.expiredAudited == nil {
		s.expiredAudited = map[string]time.Time{}
	}
	last, seen := s.expiredAudited[e.InstallationID]
	if seen && now.Sub(last) < expiredAuditEvery {
		s.expiredMu.Unlock()
		return
	}
	s.expiredAudited[e.InstallationID] = now
	for id, at := range s.expiredAudited {
		if now.Sub(at) >= expiredAuditEvery {
			delete(s.expiredAudited, id)
		}
	}
	s.expiredMu.Unlock()
	env := ""
	if len(e.EnvIDs) > 0 {
		env = e.EnvIDs[0]
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.audit.Record(actx, audit.Event{OrgID: e.OrgID, Event: audit.LinkCredentialExpired, Actor: "installation:" + e.InstallationID, EnvID: env,
		Detail: fmt.Sprintf("link refused: installation %s presented its previous credential, which expired at %s after a rotation; "+
			"an agent that missed the rotation must be re-enrolled with a new link token, anyone else holds an old credential. Further refusals are counted, and audited at most hourly",
			e.InstallationID, e.ExpiredAt.UTC().Format(time.RFC3339))}); err != nil {
		s.log.Error("audit entry could not be written", "event", audit.LinkCredentialExpired, "agent_id", e.InstallationID, "err", err)
	}
}
