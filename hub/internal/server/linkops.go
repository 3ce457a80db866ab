package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/authz"
	"ferry.dev/hub/internal/link"
	"ferry.dev/hub/internal/promotion"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// linkOps serves the operations agents call. Each acts only for the
// environments the calling installation serves. A request or decision that
// carries a user's session is checked against that user's permissions;
// without one, the installation acts on its own and is recorded as the
// actor.
type linkOps struct {
	svc   *promotion.Service
	auth  *authz.Authority
	users userLookup
	audit promotion.Auditor
	log   *slog.Logger
}

// userLookup finds a user, to name the actor and to refuse disabled users.
type userLookup interface {
	User(ctx context.Context, orgID, idOrUsername string) (state.User, error)
}

// register connects the operations to the endpoint.
func (o *linkOps) register(ep *link.Endpoint) {
	ep.Handle(protocol.OpListTargets, o.targets)
	ep.Handle(protocol.OpRequestPromotion, o.request)
	ep.Handle(protocol.OpReportDecision, o.decide)
	ep.Handle(protocol.OpListPromotions, o.list)
	ep.OnSecurityEvent(o.securityEvent)
}

// securityEvent audits an agent's misbehaviour on its link as a refused
// access: a message only the hub sends, a command id replayed, a reply to a
// command never sent, a message flood or too many bad messages. Refusals of
// the operations above (link.KindRefused) were audited where they happened.
//
// A link refused for its client certificate (link.KindClientCertificate)
// is audited as LINK_CLIENT_CERTIFICATE_MISMATCH in the organization whose
// credential was presented, with the address it came from as the actor: who
// holds the credential is exactly what is in doubt.
func (o *linkOps) securityEvent(ctx context.Context, ev link.SecurityEvent) {
	if ev.Kind == link.KindRefused {
		return
	}
	// The link's reader, or the refused request, waits for this write;
	// bound it.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if ev.Kind == link.KindClientCertificate {
		env := ""
		if len(ev.Peer.EnvIDs) > 0 {
			env = ev.Peer.EnvIDs[0]
		}
		actor := "peer:" + ev.Remote
		if _, err := o.audit.Record(ctx, audit.Event{OrgID: ev.Peer.OrgID, Event: audit.LinkClientCertMismatch, Actor: actor, EnvID: env, Detail: ev.Detail}); err != nil {
			o.log.Error("audit entry could not be written", "actor", actor, "detail", ev.Detail, "err", err)
		}
		return
	}
	detail := "link " + ev.Kind + " violation: " + ev.Detail
	if ev.Closed {
		detail += "; link closed with 1008"
	}
	o.denied(ctx, ev.Peer, "", detail)
}

func (o *linkOps) targets(ctx context.Context, p link.Peer, _ json.RawMessage) (any, error) {
	targets, err := o.svc.Targets(ctx, p.OrgID, p.EnvIDs)
	if err != nil {
		return nil, wireErr(err)
	}
	src := ""
	if len(p.EnvIDs) > 0 {
		src = p.EnvIDs[0]
	}
	return protocol.TargetList{SourceEnvID: src, Targets: targets}, nil
}

func (o *linkOps) request(ctx context.Context, p link.Peer, body json.RawMessage) (any, error) {
	var req protocol.PromotionRequest
	if err := decodeBody(body, &req); err != nil {
		return nil, err
	}
	if !p.Serves(req.SourceEnvID) {
		o.denied(ctx, p, "", "promotion request from an environment this installation does not serve")
		return nil, link.Violation(protocol.Errorf(protocol.CodeNotFound, "source environment is not one this installation serves"))
	}
	by := installationCaller(p)
	if req.Session != "" {
		var err error
		what := fmt.Sprintf("promotion request of %s (crossId %s)", req.API.Name, req.API.CrossID)
		if by, err = o.sessionCaller(ctx, p, req.Session, o.auth.Now(), what, true); err != nil {
			return nil, err
		}
	}
	pr, err := o.svc.Create(ctx, promotion.Request{OrgID: p.OrgID, SourceEnvID: req.SourceEnvID, TargetEnvID: req.TargetEnvID, By: by, API: req.API})
	if err != nil {
		return nil, wireErr(err)
	}
	return o.svc.Wire(ctx, pr), nil
}

func (o *linkOps) decide(ctx context.Context, p link.Peer, body json.RawMessage) (any, error) {
	var d protocol.Decision
	if err := decodeBody(body, &d); err != nil {
		return nil, err
	}
	by := installationCaller(p)
	by.Name = "" // the agent's actor stands
	if d.Session != "" {
		// The session must have been valid when the admin decided, not
		// now: a decision taken while the hub was down stays valid.
		at, now := d.DecidedAt, o.auth.Now()
		what := fmt.Sprintf("decision %s on %s", d.Outcome, d.PromotionID)
		if at.IsZero() {
			at = now
		}
		if at.After(now.Add(session.Leeway)) {
			o.denied(ctx, p, d.PromotionID, what+" refused: decided_at is in the future")
			return nil, authz.Forbidden("decided_at is in the future; check the agent's clock")
		}
		var err error
		if by, err = o.sessionCaller(ctx, p, d.Session, at, what, false); err != nil {
			return nil, err
		}
	}
	pr, err := o.svc.Decide(ctx, p.OrgID, p.InstallationID, p.EnvIDs, d, by)
	if err != nil {
		werr := wireErr(err)
		// The workflow refuses (and audits) a decision on a promotion of
		// an environment this installation does not serve with the same
		// not_found as a missing one; on the link it also counts as a
		// violation.
		if protocol.CodeOf(werr) == protocol.CodeNotFound {
			if other, gerr := o.svc.Get(ctx, p.OrgID, d.PromotionID); gerr == nil && !p.Serves(other.TargetEnvID) {
				return nil, link.Violation(werr)
			}
		}
		return nil, werr
	}
	return o.svc.Wire(ctx, pr), nil
}

func (o *linkOps) list(ctx context.Context, p link.Peer, _ json.RawMessage) (any, error) {
	out := protocol.PromotionList{Promotions: []protocol.Promotion{}}
	seen := map[string]bool{}
	for _, env := range p.EnvIDs {
		list, err := o.svc.List(ctx, state.PromotionFilter{OrgID: p.OrgID, EnvID: env, Limit: 500})
		if err != nil {
			return nil, wireErr(err)
		}
		for _, pr := range list {
			if !seen[pr.ID] {
				seen[pr.ID] = true
				out.Promotions = append(out.Promotions, o.svc.Wire(ctx, pr))
			}
		}
	}
	return out, nil
}

// installationCaller is an installation acting on its own.
func installationCaller(p link.Peer) promotion.Caller {
	return promotion.Caller{Name: "installation:" + p.InstallationID, Trusted: true}
}

// sessionCaller verifies a session an agent relayed: signed by this hub,
// for the installation's organization, valid at at. When active is set the
// user must also still exist and be enabled (true for requests, made now;
// false for decisions, which may have been made offline before a change).
// A refusal is audited and returned as forbidden.
func (o *linkOps) sessionCaller(ctx context.Context, p link.Peer, token string, at time.Time, what string, active bool) (promotion.Caller, error) {
	claims, err := o.auth.Verify(token, p.OrgID, at)
	if err != nil {
		o.denied(ctx, p, "", what+" refused: "+err.Error())
		return promotion.Caller{}, authz.Forbidden("the user's session is invalid, expired or of another organization; sign in again")
	}
	by := promotion.Caller{Name: authz.UserActor(claims.Subject), UserID: claims.Subject, Perms: claims}
	u, err := o.users.User(ctx, p.OrgID, claims.Subject)
	switch {
	case err == nil:
		by.Name = authz.UserActor(u.Username)
	case !errors.Is(err, state.ErrNotFound):
		return promotion.Caller{}, wireErr(err)
	}
	if active && (err != nil || u.Disabled) {
		o.deniedAs(ctx, p, by.Name, "", what+" refused: the user is disabled or deleted")
		return promotion.Caller{}, authz.Forbidden("the user is disabled or deleted")
	}
	return by, nil
}

// denied records a refused link operation of installation p.
func (o *linkOps) denied(ctx context.Context, p link.Peer, promotionID, detail string) {
	o.deniedAs(ctx, p, "installation:"+p.InstallationID, promotionID, detail)
}

// deniedAs records a refused link operation of actor, through p.
func (o *linkOps) deniedAs(ctx context.Context, p link.Peer, actor, promotionID, detail string) {
	o.log.Info("access denied", "actor", actor, "agent_id", p.InstallationID, "promotion_id", promotionID, "detail", detail)
	if _, err := o.audit.Record(ctx, audit.Event{OrgID: p.OrgID, Event: audit.AccessDenied, Actor: actor, PromotionID: promotionID, Detail: detail}); err != nil {
		o.log.Error("audit entry could not be written", "actor", actor, "detail", detail, "err", err)
	}
}

func decodeBody(body json.RawMessage, v interface{ Validate() error }) error {
	if err := json.Unmarshal(body, v); err != nil {
		return protocol.Errorf(protocol.CodeInvalid, "malformed body: "+err.Error())
	}
	if err := v.Validate(); err != nil {
		return protocol.Errorf(protocol.CodeInvalid, err.Error())
	}
	return nil
}

// wireErr turns service and store errors into protocol errors.
func wireErr(err error) error {
	var ae *promotion.ActiveError
	var pe *protocol.Error
	switch {
	case errors.As(err, &ae):
		return &protocol.Error{Code: protocol.CodeConflict, Message: ae.Error(), Ref: ae.ID}
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, state.ErrNotFound):
		return protocol.Errorf(protocol.CodeNotFound, "not found")
	case errors.Is(err, state.ErrUnavailable):
		return protocol.Errorf(protocol.CodeUnavailable, "the hub's store is unavailable; retry shortly")
	}
	return err
}
