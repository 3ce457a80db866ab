package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"ferry.dev/agent/internal/apim"
	"ferry.dev/agent/internal/authn"
	"ferry.dev/agent/internal/definition"
	"ferry.dev/agent/internal/taskstore"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// sourceEnv returns the environment this agent serves, from the hub's hello.
func (r *Runner) sourceEnv() (protocol.Environment, error) {
	h := r.hub.Hello()
	if h == nil || len(h.Environments) == 0 {
		return protocol.Environment{}, protocol.Errorf(protocol.CodeUnavailable, "the agent has not connected to the hub yet; retry shortly")
	}
	return h.Environments[0], nil
}

// Export exports an API from the local APIM without members and groups and
// sanitizes it. An API without a crossId gets one derived from this
// environment's id and the API's id, the same on every export.
func (r *Runner) Export(ctx context.Context, apiID string) (protocol.ExportedAPI, error) {
	src, err := r.sourceEnv()
	if err != nil {
		return protocol.ExportedAPI{}, err
	}
	raw, err := r.apim.Export(ctx, apiID)
	if err != nil {
		return protocol.ExportedAPI{}, r.apimErr("export", apiID, err)
	}
	san, err := definition.Sanitize(raw, definition.StableCrossID(src.ID, apiID))
	switch {
	case errors.Is(err, definition.ErrUnsupported):
		return protocol.ExportedAPI{}, protocol.Errorf(protocol.CodeInvalid, "API "+apiID+" cannot be promoted: "+err.Error())
	case errors.Is(err, definition.ErrTooLarge):
		return protocol.ExportedAPI{}, protocol.Errorf(protocol.CodeTooLarge, "API "+apiID+" cannot be promoted: "+err.Error())
	case err != nil:
		return protocol.ExportedAPI{}, protocol.Errorf(protocol.CodeUpstream, "APIM exported an unreadable definition for API "+apiID+": "+err.Error())
	}
	if len(san.JSON) > maxDefinitionBytes {
		return protocol.ExportedAPI{}, protocol.Errorf(protocol.CodeTooLarge, fmt.Sprintf("API %s: the sanitized definition is %d bytes; the link carries at most %d (large pictures or media?)", apiID, len(san.JSON), maxDefinitionBytes))
	}
	if san.Name == "" {
		return protocol.ExportedAPI{}, protocol.Errorf(protocol.CodeInvalid, "API "+apiID+" has no name")
	}
	return protocol.ExportedAPI{APIID: apiID, CrossID: san.CrossID, Name: san.Name, Version: san.Version, Definition: san.JSON}, nil
}

// HandleExport answers OpExportAPI.
func (r *Runner) HandleExport(ctx context.Context, body json.RawMessage) (any, error) {
	var req protocol.ExportRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, protocol.Errorf(protocol.CodeInvalid, "malformed export request: "+err.Error())
	}
	if err := req.Validate(); err != nil {
		return nil, protocol.Errorf(protocol.CodeInvalid, err.Error())
	}
	api, err := r.Export(ctx, req.APIID)
	if err != nil {
		return nil, err
	}
	return api, nil
}

// Targets returns the environments this agent may promote to.
func (r *Runner) Targets(ctx context.Context) (protocol.TargetList, error) {
	var tl protocol.TargetList
	if err := r.hub.Call(ctx, protocol.OpListTargets, nil, &tl); err != nil {
		return protocol.TargetList{}, hubErr(err)
	}
	return tl, nil
}

// RequestPromotion exports apiID, sanitizes it and, when u holds
// API_DEFINITION UPDATE on it in this environment, asks the hub to promote
// it to target, an environment id or name, with u as the requester and u's
// session for the hub to check again. Without the permission it answers
// forbidden and asks the hub nothing. It returns the promotion the hub
// created, which is also stored in the local view.
func (r *Runner) RequestPromotion(ctx context.Context, apiID, target string, u authn.User) (taskstore.Promotion, error) {
	requester := u.Actor()
	src, err := r.sourceEnv()
	if err != nil {
		return taskstore.Promotion{}, err
	}
	// The crossId that the permission is bound to is known after the
	// export; exporting changes nothing.
	api, err := r.Export(ctx, apiID)
	if err != nil {
		return taskstore.Promotion{}, err
	}
	if err := u.RequireAPI(src.ID, src.Name, api.CrossID, api.Name, session.APIDefUpdate); err != nil {
		return taskstore.Promotion{}, err
	}
	tl, err := r.Targets(ctx)
	if err != nil {
		return taskstore.Promotion{}, err
	}
	dst, err := resolveTarget(tl.Targets, target)
	if err != nil {
		return taskstore.Promotion{}, err
	}
	if dst.ID == src.ID {
		return taskstore.Promotion{}, protocol.Errorf(protocol.CodeInvalid, "the target environment is the one this agent serves")
	}
	var p protocol.Promotion
	req := protocol.PromotionRequest{API: api, SourceEnvID: src.ID, TargetEnvID: dst.ID, Requester: requester, Session: u.Token.Reveal()}
	if err := r.hub.Call(ctx, protocol.OpRequestPromotion, req, &p); err != nil {
		return taskstore.Promotion{}, hubErr(err)
	}
	if p.ID == "" {
		return taskstore.Promotion{}, protocol.Errorf(protocol.CodeInternal, "the hub answered the promotion request without a promotion")
	}
	view := fromWire(p)
	if err := r.store.UpsertPromotions(ctx, view); err != nil {
		r.log.Warn("could not update the local promotions view", "promotion_id", p.ID, "err", err)
	}
	r.log.Info("promotion requested", "promotion_id", p.ID, "api_id", apiID, "cross_id", api.CrossID, "to", dst.Name, "requester", requester)
	return view, nil
}

// resolveTarget finds target among ts by id, then by name, then by name
// ignoring case.
func resolveTarget(ts []protocol.Target, target string) (protocol.Target, error) {
	for _, t := range ts {
		if t.ID == target {
			return t, nil
		}
	}
	for _, t := range ts {
		if t.Name == target {
			return t, nil
		}
	}
	var found []protocol.Target
	for _, t := range ts {
		if strings.EqualFold(t.Name, target) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return protocol.Target{}, protocol.Errorf(protocol.CodeNotFound, fmt.Sprintf("no promotion target %q: list them with GET /api/v1/promotion-targets", target))
	}
	return protocol.Target{}, protocol.Errorf(protocol.CodeInvalid, fmt.Sprintf("several environments are named %q ignoring case; use the id", target))
}

// APIs lists the APIs of the local APIM.
func (r *Runner) APIs(ctx context.Context) ([]apim.API, error) {
	list, err := r.apim.ListAPIs(ctx)
	if err != nil {
		return nil, r.apimErr("list APIs", "", err)
	}
	return list, nil
}

// API returns one API of the local APIM.
func (r *Runner) API(ctx context.Context, id string) (apim.API, error) {
	a, err := r.apim.GetAPI(ctx, id)
	if err != nil {
		return apim.API{}, r.apimErr("get API", id, err)
	}
	return a, nil
}

// apimErr classifies an APIM failure for callers outside the package.
func (r *Runner) apimErr(op, apiID string, err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case apim.IsNotFound(err):
		return protocol.Errorf(protocol.CodeNotFound, "no API "+apiID+" in this environment's APIM")
	}
	r.log.Warn("APIM call failed", "op", op, "api_id", apiID, "err", err)
	return protocol.Errorf(protocol.CodeUpstream, "APIM: "+clip(err.Error(), maxReasonBytes))
}

// hubErr passes the hub's classified errors on and classifies the others.
func hubErr(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) || errors.Is(err, context.Canceled) {
		return err
	}
	return protocol.Errorf(protocol.CodeUnavailable, "the hub could not be asked: "+err.Error())
}
