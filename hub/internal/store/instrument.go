package store

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/hub/internal/state"
)

// Instrument returns s recording the duration and result of every
// operation in ferry_hub_store_operation_duration_seconds{op,engine,result}
// on reg. engine labels the series ("sqlite", "mongo"). Instrumenting
// several stores on one registry shares the histogram.
func Instrument(s state.Store, engine string, reg prometheus.Registerer) state.Store {
	return &instrumented{s: s, engine: engine, m: newMetrics(reg)}
}

// instrumented is the state.Store returned by Instrument.
type instrumented struct {
	s      state.Store
	engine string
	m      *metrics
}

var _ state.Store = (*instrumented)(nil)

// resultLabel classifies err for the result label.
func resultLabel(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, state.ErrNotFound):
		return "not_found"
	case errors.Is(err, state.ErrConflict):
		return "conflict"
	}
	return "error"
}

// done records one operation that started at start and ended with *err.
func (s *instrumented) done(op string, start time.Time, err *error) {
	s.m.opDuration.WithLabelValues(op, s.engine, resultLabel(*err)).Observe(time.Since(start).Seconds())
}

// Close closes the wrapped store; it is not measured.
func (s *instrumented) Close() error { return s.s.Close() }

// The other methods implement state.Store by calling the wrapped store and
// recording the call with done.

func (s *instrumented) Ping(ctx context.Context) (err error) {
	defer s.done("Ping", time.Now(), &err)
	return s.s.Ping(ctx)
}

func (s *instrumented) CreateOrg(ctx context.Context, o state.Org) (err error) {
	defer s.done("CreateOrg", time.Now(), &err)
	return s.s.CreateOrg(ctx, o)
}

func (s *instrumented) Org(ctx context.Context, idOrName string) (_ state.Org, err error) {
	defer s.done("Org", time.Now(), &err)
	return s.s.Org(ctx, idOrName)
}

func (s *instrumented) ListOrgs(ctx context.Context) (_ []state.Org, err error) {
	defer s.done("ListOrgs", time.Now(), &err)
	return s.s.ListOrgs(ctx)
}

func (s *instrumented) CreateEnvironment(ctx context.Context, e state.Environment) (err error) {
	defer s.done("CreateEnvironment", time.Now(), &err)
	return s.s.CreateEnvironment(ctx, e)
}

func (s *instrumented) Environment(ctx context.Context, orgID, idOrName string) (_ state.Environment, err error) {
	defer s.done("Environment", time.Now(), &err)
	return s.s.Environment(ctx, orgID, idOrName)
}

func (s *instrumented) ListEnvironments(ctx context.Context, orgID string) (_ []state.Environment, err error) {
	defer s.done("ListEnvironments", time.Now(), &err)
	return s.s.ListEnvironments(ctx, orgID)
}

func (s *instrumented) CreateLinkToken(ctx context.Context, t state.LinkToken) (err error) {
	defer s.done("CreateLinkToken", time.Now(), &err)
	return s.s.CreateLinkToken(ctx, t)
}

func (s *instrumented) ConsumeLinkToken(ctx context.Context, hash string, now time.Time) (_ state.LinkToken, err error) {
	defer s.done("ConsumeLinkToken", time.Now(), &err)
	return s.s.ConsumeLinkToken(ctx, hash, now)
}

func (s *instrumented) CreateInstallation(ctx context.Context, i state.Installation) (err error) {
	defer s.done("CreateInstallation", time.Now(), &err)
	return s.s.CreateInstallation(ctx, i)
}

func (s *instrumented) InstallationByCredential(ctx context.Context, hash string) (_ state.Installation, err error) {
	defer s.done("InstallationByCredential", time.Now(), &err)
	return s.s.InstallationByCredential(ctx, hash)
}

func (s *instrumented) SetInstallationCredential(ctx context.Context, id string, from, to state.InstallationCredential) (_ state.Installation, err error) {
	defer s.done("SetInstallationCredential", time.Now(), &err)
	return s.s.SetInstallationCredential(ctx, id, from, to)
}

func (s *instrumented) Installation(ctx context.Context, id string) (_ state.Installation, err error) {
	defer s.done("Installation", time.Now(), &err)
	return s.s.Installation(ctx, id)
}

func (s *instrumented) DeleteInstallation(ctx context.Context, id string) (err error) {
	defer s.done("DeleteInstallation", time.Now(), &err)
	return s.s.DeleteInstallation(ctx, id)
}

func (s *instrumented) ListInstallations(ctx context.Context, orgID string) (_ []state.Installation, err error) {
	defer s.done("ListInstallations", time.Now(), &err)
	return s.s.ListInstallations(ctx, orgID)
}

func (s *instrumented) UpdateInstallationSeen(ctx context.Context, id string, online bool, at time.Time, agentVersion, hostname string) (err error) {
	defer s.done("UpdateInstallationSeen", time.Now(), &err)
	return s.s.UpdateInstallationSeen(ctx, id, online, at, agentVersion, hostname)
}

func (s *instrumented) MarkAllOffline(ctx context.Context) (err error) {
	defer s.done("MarkAllOffline", time.Now(), &err)
	return s.s.MarkAllOffline(ctx)
}

func (s *instrumented) RecordConnection(ctx context.Context, e state.ConnectionEvent) (err error) {
	defer s.done("RecordConnection", time.Now(), &err)
	return s.s.RecordConnection(ctx, e)
}

func (s *instrumented) ListConnections(ctx context.Context, installationID string, limit int) (_ []state.ConnectionEvent, err error) {
	defer s.done("ListConnections", time.Now(), &err)
	return s.s.ListConnections(ctx, installationID, limit)
}

func (s *instrumented) CreateAPIToken(ctx context.Context, t state.APIToken) (err error) {
	defer s.done("CreateAPIToken", time.Now(), &err)
	return s.s.CreateAPIToken(ctx, t)
}

func (s *instrumented) APITokenByHash(ctx context.Context, hash string) (_ state.APIToken, err error) {
	defer s.done("APITokenByHash", time.Now(), &err)
	return s.s.APITokenByHash(ctx, hash)
}

func (s *instrumented) CreatePromotion(ctx context.Context, p state.Promotion) (activeID string, err error) {
	defer s.done("CreatePromotion", time.Now(), &err)
	return s.s.CreatePromotion(ctx, p)
}

func (s *instrumented) Promotion(ctx context.Context, id string) (_ state.Promotion, err error) {
	defer s.done("Promotion", time.Now(), &err)
	return s.s.Promotion(ctx, id)
}

func (s *instrumented) PromotionByIdempotencyKey(ctx context.Context, orgID, key string) (_ state.Promotion, err error) {
	defer s.done("PromotionByIdempotencyKey", time.Now(), &err)
	return s.s.PromotionByIdempotencyKey(ctx, orgID, key)
}

func (s *instrumented) ListPromotions(ctx context.Context, f state.PromotionFilter) (_ []state.Promotion, err error) {
	defer s.done("ListPromotions", time.Now(), &err)
	return s.s.ListPromotions(ctx, f)
}

func (s *instrumented) CountUndelivered(ctx context.Context, targetEnvID string) (_ int, err error) {
	defer s.done("CountUndelivered", time.Now(), &err)
	return s.s.CountUndelivered(ctx, targetEnvID)
}

func (s *instrumented) UpdatePromotion(ctx context.Context, id string, u state.PromotionUpdate) (_ state.Promotion, err error) {
	defer s.done("UpdatePromotion", time.Now(), &err)
	return s.s.UpdatePromotion(ctx, id, u)
}

func (s *instrumented) AppendAudit(ctx context.Context, e state.AuditEntry) (err error) {
	defer s.done("AppendAudit", time.Now(), &err)
	return s.s.AppendAudit(ctx, e)
}

func (s *instrumented) LastAudit(ctx context.Context, orgID string) (_ state.AuditEntry, err error) {
	defer s.done("LastAudit", time.Now(), &err)
	return s.s.LastAudit(ctx, orgID)
}

func (s *instrumented) ListAudit(ctx context.Context, f state.AuditFilter) (_ []state.AuditEntry, err error) {
	defer s.done("ListAudit", time.Now(), &err)
	return s.s.ListAudit(ctx, f)
}

func (s *instrumented) ListAPITokens(ctx context.Context, orgID, userID string) (_ []state.APIToken, err error) {
	defer s.done("ListAPITokens", time.Now(), &err)
	return s.s.ListAPITokens(ctx, orgID, userID)
}

func (s *instrumented) RevokeAPIToken(ctx context.Context, orgID, id string, at time.Time) (_ state.APIToken, err error) {
	defer s.done("RevokeAPIToken", time.Now(), &err)
	return s.s.RevokeAPIToken(ctx, orgID, id, at)
}

func (s *instrumented) TouchAPIToken(ctx context.Context, id string, at, ifBefore time.Time) (err error) {
	defer s.done("TouchAPIToken", time.Now(), &err)
	return s.s.TouchAPIToken(ctx, id, at, ifBefore)
}

func (s *instrumented) CreateUser(ctx context.Context, u state.User) (err error) {
	defer s.done("CreateUser", time.Now(), &err)
	return s.s.CreateUser(ctx, u)
}

func (s *instrumented) User(ctx context.Context, orgID, idOrUsername string) (_ state.User, err error) {
	defer s.done("User", time.Now(), &err)
	return s.s.User(ctx, orgID, idOrUsername)
}

func (s *instrumented) ListUsers(ctx context.Context, orgID string) (_ []state.User, err error) {
	defer s.done("ListUsers", time.Now(), &err)
	return s.s.ListUsers(ctx, orgID)
}

func (s *instrumented) UpdateUser(ctx context.Context, orgID, id string, u state.UserUpdate) (_ state.User, err error) {
	defer s.done("UpdateUser", time.Now(), &err)
	return s.s.UpdateUser(ctx, orgID, id, u)
}

func (s *instrumented) DeleteUser(ctx context.Context, orgID, id string) (err error) {
	defer s.done("DeleteUser", time.Now(), &err)
	return s.s.DeleteUser(ctx, orgID, id)
}

func (s *instrumented) CreateRoleBinding(ctx context.Context, b state.RoleBinding) (err error) {
	defer s.done("CreateRoleBinding", time.Now(), &err)
	return s.s.CreateRoleBinding(ctx, b)
}

func (s *instrumented) ListRoleBindings(ctx context.Context, f state.RoleBindingFilter) (_ []state.RoleBinding, err error) {
	defer s.done("ListRoleBindings", time.Now(), &err)
	return s.s.ListRoleBindings(ctx, f)
}

func (s *instrumented) DeleteRoleBinding(ctx context.Context, orgID, id string) (err error) {
	defer s.done("DeleteRoleBinding", time.Now(), &err)
	return s.s.DeleteRoleBinding(ctx, orgID, id)
}

func (s *instrumented) CreateRole(ctx context.Context, r state.Role) (err error) {
	defer s.done("CreateRole", time.Now(), &err)
	return s.s.CreateRole(ctx, r)
}

func (s *instrumented) ListRoles(ctx context.Context, orgID string) (_ []state.Role, err error) {
	defer s.done("ListRoles", time.Now(), &err)
	return s.s.ListRoles(ctx, orgID)
}

func (s *instrumented) DeleteRole(ctx context.Context, orgID string, scope state.Scope, name string) (err error) {
	defer s.done("DeleteRole", time.Now(), &err)
	return s.s.DeleteRole(ctx, orgID, scope, name)
}

func (s *instrumented) InitSetting(ctx context.Context, st state.Setting) (_ state.Setting, err error) {
	defer s.done("InitSetting", time.Now(), &err)
	return s.s.InitSetting(ctx, st)
}

func (s *instrumented) AppendAuditAnchor(ctx context.Context, a state.AuditAnchor) (err error) {
	defer s.done("AppendAuditAnchor", time.Now(), &err)
	return s.s.AppendAuditAnchor(ctx, a)
}

func (s *instrumented) ListAuditAnchors(ctx context.Context, orgID string, afterSeq int64, limit int) (_ []state.AuditAnchor, err error) {
	defer s.done("ListAuditAnchors", time.Now(), &err)
	return s.s.ListAuditAnchors(ctx, orgID, afterSeq, limit)
}

func (s *instrumented) LastAuditAnchor(ctx context.Context, orgID string) (_ state.AuditAnchor, err error) {
	defer s.done("LastAuditAnchor", time.Now(), &err)
	return s.s.LastAuditAnchor(ctx, orgID)
}
