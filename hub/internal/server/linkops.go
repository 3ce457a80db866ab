package server

import (
	"context"
	"encoding/json"
	"errors"

	"ferry.dev/hub/internal/link"
	"ferry.dev/hub/internal/promotion"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// registerLinkOps connects the operations agents may call to the promotion
// service. Each handler acts only for the environments the calling
// installation serves.
func registerLinkOps(ep *link.Endpoint, svc *promotion.Service) {
	ep.Handle(protocol.OpListTargets, func(ctx context.Context, p link.Peer, _ json.RawMessage) (any, error) {
		targets, err := svc.Targets(ctx, p.OrgID, p.EnvIDs)
		if err != nil {
			return nil, wireErr(err)
		}
		src := ""
		if len(p.EnvIDs) > 0 {
			src = p.EnvIDs[0]
		}
		return protocol.TargetList{SourceEnvID: src, Targets: targets}, nil
	})
	ep.Handle(protocol.OpRequestPromotion, func(ctx context.Context, p link.Peer, body json.RawMessage) (any, error) {
		var req protocol.PromotionRequest
		if err := decodeBody(body, &req); err != nil {
			return nil, err
		}
		if !p.Serves(req.SourceEnvID) {
			return nil, protocol.Errorf(protocol.CodeNotFound, "source environment is not one this installation serves")
		}
		requester := req.Requester
		if requester == "" {
			requester = "installation:" + p.InstallationID
		}
		pr, err := svc.Create(ctx, promotion.Request{OrgID: p.OrgID, SourceEnvID: req.SourceEnvID, TargetEnvID: req.TargetEnvID, Requester: requester, API: req.API})
		if err != nil {
			return nil, wireErr(err)
		}
		return svc.Wire(ctx, pr), nil
	})
	ep.Handle(protocol.OpReportDecision, func(ctx context.Context, p link.Peer, body json.RawMessage) (any, error) {
		var d protocol.Decision
		if err := decodeBody(body, &d); err != nil {
			return nil, err
		}
		pr, err := svc.Decide(ctx, p.OrgID, p.InstallationID, p.EnvIDs, d)
		if err != nil {
			return nil, wireErr(err)
		}
		return svc.Wire(ctx, pr), nil
	})
	ep.Handle(protocol.OpListPromotions, func(ctx context.Context, p link.Peer, _ json.RawMessage) (any, error) {
		out := protocol.PromotionList{Promotions: []protocol.Promotion{}}
		seen := map[string]bool{}
		for _, env := range p.EnvIDs {
			list, err := svc.List(ctx, state.PromotionFilter{OrgID: p.OrgID, EnvID: env, Limit: 500})
			if err != nil {
				return nil, wireErr(err)
			}
			for _, pr := range list {
				if !seen[pr.ID] {
					seen[pr.ID] = true
					out.Promotions = append(out.Promotions, svc.Wire(ctx, pr))
				}
			}
		}
		return out, nil
	})
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
