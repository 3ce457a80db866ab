package server

import (
	"context"
	"log/slog"
	"time"

	"ferry.dev/hub/internal/fleet"
	"ferry.dev/hub/internal/link"
	"ferry.dev/hub/internal/promotion"
	"ferry.dev/shared/protocol"
)

// sessions adapts the fleet to the link endpoint, so neither imports the
// other.
type sessions struct {
	fleet      *fleet.Fleet
	log        *slog.Logger
	index      *envIndex
	promotions *promotion.Service // set before serving
}

var _ link.Sessions = (*sessions)(nil)

func (s *sessions) AuthenticateAgent(ctx context.Context, cred string) (link.Peer, error) {
	inst, err := s.fleet.Authenticate(ctx, cred)
	if err != nil {
		return link.Peer{}, err
	}
	return link.Peer{InstallationID: inst.ID, OrgID: inst.OrgID, EnvIDs: inst.EnvIDs, ClientKeyHash: inst.ClientKeyHash}, nil
}

func (s *sessions) Hello(ctx context.Context, p link.Peer, h *protocol.Hello) (*protocol.HelloReply, error) {
	return s.fleet.Hello(ctx, p.InstallationID, p.OrgID, p.EnvIDs, h)
}

func (s *sessions) Connected(ctx context.Context, c *link.Conn) {
	s.index.add(c.Peer())
	s.promotions.Kick() // deliver what waited for this agent
}

func (s *sessions) Disconnected(c *link.Conn, primary bool) {
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
