package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"ferry.dev/hub/internal/authz"
	"ferry.dev/hub/internal/promotion"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// PromotionRequest is the body of POST /orgs/{org}/promotions.
type PromotionRequest struct {
	APIID     string `json:"apiId"`
	SourceEnv string `json:"sourceEnv"` // id or name
	TargetEnv string `json:"targetEnv"` // id or name
}

// PromotionDTO is a promotion on the wire (without its definition unless
// asked for).
type PromotionDTO struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	Delivery    string     `json:"delivery,omitempty"` // waiting_for_target | pending | delivered
	APIID       string     `json:"apiId"`
	CrossID     string     `json:"crossId"`
	APIName     string     `json:"apiName"`
	APIVersion  string     `json:"apiVersion,omitempty"`
	SourceEnvID string     `json:"sourceEnvId"`
	TargetEnvID string     `json:"targetEnvId"`
	Requester   string     `json:"requester"`
	TargetAPIID string     `json:"targetApiId,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	DeliveredAt *time.Time `json:"deliveredAt,omitempty"`
	DecidedAt   *time.Time `json:"decidedAt,omitempty"`
}

// AuditEntryDTO is one audit entry.
type AuditEntryDTO struct {
	Seq         int64     `json:"seq"`
	Time        time.Time `json:"time"`
	Event       string    `json:"event"`
	Actor       string    `json:"actor"`
	EnvID       string    `json:"envId,omitempty"`
	PromotionID string    `json:"promotionId,omitempty"`
	Detail      string    `json:"detail,omitempty"`
	PrevHash    string    `json:"prevHash"`
	Hash        string    `json:"hash"`
}

// AuditPage is a page of audit entries; NextAfterSeq continues it.
type AuditPage struct {
	Items        []AuditEntryDTO `json:"items"`
	NextAfterSeq int64           `json:"nextAfterSeq,omitempty"`
}

// VerifyDTO is the result of checking an audit chain.
type VerifyDTO struct {
	OK          bool   `json:"ok"`
	Checked     int64  `json:"checked"`
	BrokenAtSeq int64  `json:"brokenAtSeq,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (a *API) promotionDTO(p state.Promotion) PromotionDTO {
	d := PromotionDTO{
		ID: p.ID, Status: string(p.Status), APIID: p.APIID, CrossID: p.CrossID, APIName: p.APIName,
		APIVersion: p.APIVersion, SourceEnvID: p.SourceEnvID, TargetEnvID: p.TargetEnvID, Requester: p.Requester,
		TargetAPIID: p.TargetAPIID, Reason: p.Reason, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
		DeliveredAt: optTime(p.DeliveredAt), DecidedAt: optTime(p.DecidedAt),
	}
	switch {
	case p.Delivered:
		d.Delivery = "delivered"
	case a.promotions.Waiting(p):
		d.Delivery = "waiting_for_target"
	case p.Status == protocol.PromotionCreated:
		d.Delivery = "pending"
	}
	return d
}

func (a *API) createPromotion(c *gin.Context) {
	var req PromotionRequest
	if err := decode(c, &req); err != nil {
		a.fail(c, err)
		return
	}
	if req.APIID == "" || len(req.APIID) > 256 || req.SourceEnv == "" || req.TargetEnv == "" {
		a.problem(c, protocol.CodeInvalid, "apiId, sourceEnv and targetEnv are required")
		return
	}
	// The key is also kept with the promotion, so that a retry finds it
	// after the in-memory replay record is gone (a hub restart, or a write
	// that committed although the store answered an error).
	p, replayed, err := a.promotions.CreateAtHubOnce(c.Request.Context(), orgOf(c).ID, req.APIID, req.SourceEnv, req.TargetEnv, principal(c).caller(), c.GetHeader(idempotencyHeader))
	var ae *promotion.ActiveError
	var me *promotion.IdempotencyMismatchError
	switch {
	case errors.As(err, &ae):
		a.fail(c, &ActiveConflict{ID: ae.ID, Msg: ae.Error()})
		return
	case errors.As(err, &me):
		writeProblem(c, http.StatusUnprocessableEntity, "idempotency_key_mismatch", "this Idempotency-Key was used with a different request ("+me.ID+")")
		return
	case err != nil:
		a.fail(c, err)
		return
	}
	if replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	c.JSON(http.StatusCreated, a.promotionDTO(p))
}

func (a *API) listPromotions(c *gin.Context) {
	o := orgOf(c)
	f := state.PromotionFilter{OrgID: o.ID, APIID: c.Query("apiId")}
	limit, offset, err := paging(c)
	if err != nil {
		a.fail(c, err)
		return
	}
	f.Limit, f.Offset = limit, offset
	if st := c.Query("status"); st != "" {
		s := protocol.PromotionStatus(st)
		switch s {
		case protocol.PromotionCreated, protocol.PromotionToBeValidated, protocol.PromotionAccepted, protocol.PromotionRejected, protocol.PromotionError, protocol.PromotionCancelled:
		default:
			a.problem(c, protocol.CodeInvalid, "unknown status "+st)
			return
		}
		f.Status = []protocol.PromotionStatus{s}
	}
	for _, q := range []struct {
		param string
		dst   *string
	}{{"sourceEnv", &f.SourceEnvID}, {"targetEnv", &f.TargetEnvID}, {"env", &f.EnvID}} {
		if v := c.Query(q.param); v != "" {
			env, err := a.store.Environment(c.Request.Context(), o.ID, v)
			if err != nil {
				a.fail(c, err)
				return
			}
			*q.dst = env.ID
			// Listing one environment's promotions (its tasks) needs
			// ENVIRONMENT_API[READ] there.
			if q.param == "env" {
				if a.deny(c, env.ID, "", authz.NeedEnv(principal(c).perms(), env, session.EnvAPIRead)) != nil {
					return
				}
			}
		}
	}
	// Everyone else sees the promotions from or to the environments they
	// may read.
	if perms := principal(c).perms(); !perms.OrgAdmin {
		envs, err := a.store.ListEnvironments(c.Request.Context(), o.ID)
		if err != nil {
			a.fail(c, err)
			return
		}
		for _, e := range envs {
			if perms.CanEnv(e.ID, session.EnvAPIRead) {
				f.AnyEnvIDs = append(f.AnyEnvIDs, e.ID)
			}
		}
		if len(f.AnyEnvIDs) == 0 {
			c.JSON(http.StatusOK, List[PromotionDTO]{Items: []PromotionDTO{}})
			return
		}
	}
	list, err := a.promotions.List(c.Request.Context(), f)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := List[PromotionDTO]{Items: []PromotionDTO{}}
	for _, p := range list {
		out.Items = append(out.Items, a.promotionDTO(p))
	}
	if len(list) == limit {
		out.NextOffset = offset + limit
	}
	c.JSON(http.StatusOK, out)
}

func (a *API) getPromotion(c *gin.Context) {
	ctx := c.Request.Context()
	p, err := a.promotions.Get(ctx, orgOf(c).ID, c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	// Organization admins and the requester may read it; others need
	// ENVIRONMENT_API[READ] on its source or target.
	if pr := principal(c); !pr.perms().OrgAdmin && (p.RequesterID == "" || p.RequesterID != pr.UserID) {
		var envs []state.Environment
		for _, id := range []string{p.SourceEnvID, p.TargetEnvID} {
			e, err := a.store.Environment(ctx, p.OrgID, id)
			if err != nil {
				a.fail(c, err)
				return
			}
			envs = append(envs, e)
		}
		if a.deny(c, p.SourceEnvID, p.ID, authz.NeedEnvAny(pr.perms(), session.EnvAPIRead, envs...)) != nil {
			return
		}
	}
	c.JSON(http.StatusOK, a.promotionDTO(p))
}

func (a *API) cancelPromotion(c *gin.Context) {
	// The action takes no body; one sent must still be an empty object.
	if c.Request.ContentLength != 0 {
		if err := decode(c, &struct{}{}); err != nil {
			a.fail(c, err)
			return
		}
	}
	p, err := a.promotions.Cancel(c.Request.Context(), orgOf(c).ID, c.Param("id"), principal(c).caller())
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, a.promotionDTO(p))
}

func (a *API) listAudit(c *gin.Context) {
	o := orgOf(c)
	limit, _, err := paging(c)
	if err != nil {
		a.fail(c, err)
		return
	}
	f := state.AuditFilter{OrgID: o.ID, PromotionID: c.Query("promotionId"), Event: c.Query("event"), Actor: c.Query("actor"), Limit: limit}
	if v := c.Query("env"); v != "" {
		env, err := a.store.Environment(c.Request.Context(), o.ID, v)
		if err != nil {
			a.fail(c, err)
			return
		}
		f.EnvID = env.ID
	}
	for _, q := range []struct {
		param string
		dst   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := c.Query(q.param); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				a.problem(c, protocol.CodeInvalid, q.param+" must be an RFC 3339 time, e.g. 2026-11-26T12:00:00Z")
				return
			}
			*q.dst = t
		}
	}
	if v := c.Query("afterSeq"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			a.problem(c, protocol.CodeInvalid, "afterSeq must be a non-negative integer")
			return
		}
		f.AfterSeq = n
	}
	list, err := a.audit.List(c.Request.Context(), f)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := AuditPage{Items: []AuditEntryDTO{}}
	for _, e := range list {
		out.Items = append(out.Items, AuditEntryDTO{Seq: e.Seq, Time: e.Time, Event: e.Event, Actor: e.Actor, EnvID: e.EnvID,
			PromotionID: e.PromotionID, Detail: e.Detail, PrevHash: e.PrevHash, Hash: e.Hash})
	}
	if len(list) == limit {
		out.NextAfterSeq = list[len(list)-1].Seq
	}
	c.JSON(http.StatusOK, out)
}

func (a *API) verifyAudit(c *gin.Context) {
	b, n, err := a.audit.Verify(c.Request.Context(), orgOf(c).ID)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := VerifyDTO{OK: b == nil, Checked: n}
	if b != nil {
		out.BrokenAtSeq, out.Reason = b.Seq, b.Reason
	}
	c.JSON(http.StatusOK, out)
}
