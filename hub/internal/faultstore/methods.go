package faultstore

import (
	"context"
	"time"

	"ferry.dev/hub/internal/state"
)

// The methods below implement state.Store: each asks fault whether to fail
// and otherwise calls the wrapped store, then lets after turn a success
// into an ambiguous failure.

func (s *Store) Ping(ctx context.Context) (err error) {
	if err = s.fault(ctx, "Ping"); err != nil {
		return
	}
	defer s.after("Ping", &err)
	return s.s.Ping(ctx)
}

func (s *Store) CreateOrg(ctx context.Context, o state.Org) (err error) {
	if err = s.fault(ctx, "CreateOrg"); err != nil {
		return
	}
	defer s.after("CreateOrg", &err)
	return s.s.CreateOrg(ctx, o)
}

func (s *Store) Org(ctx context.Context, idOrName string) (_ state.Org, err error) {
	if err = s.fault(ctx, "Org"); err != nil {
		return
	}
	defer s.after("Org", &err)
	return s.s.Org(ctx, idOrName)
}

func (s *Store) ListOrgs(ctx context.Context) (_ []state.Org, err error) {
	if err = s.fault(ctx, "ListOrgs"); err != nil {
		return
	}
	defer s.after("ListOrgs", &err)
	return s.s.ListOrgs(ctx)
}

func (s *Store) CreateEnvironment(ctx context.Context, e state.Environment) (err error) {
	if err = s.fault(ctx, "CreateEnvironment"); err != nil {
		return
	}
	defer s.after("CreateEnvironment", &err)
	return s.s.CreateEnvironment(ctx, e)
}

func (s *Store) Environment(ctx context.Context, orgID, idOrName string) (_ state.Environment, err error) {
	if err = s.fault(ctx, "Environment"); err != nil {
		return
	}
	defer s.after("Environment", &err)
	return s.s.Environment(ctx, orgID, idOrName)
}

func (s *Store) ListEnvironments(ctx context.Context, orgID string) (_ []state.Environment, err error) {
	if err = s.fault(ctx, "ListEnvironments"); err != nil {
		return
	}
	defer s.after("ListEnvironments", &err)
	return s.s.ListEnvironments(ctx, orgID)
}

func (s *Store) CreateLinkToken(ctx context.Context, t state.LinkToken) (err error) {
	if err = s.fault(ctx, "CreateLinkToken"); err != nil {
		return
	}
	defer s.after("CreateLinkToken", &err)
	return s.s.CreateLinkToken(ctx, t)
}

func (s *Store) ConsumeLinkToken(ctx context.Context, hash string, now time.Time) (_ state.LinkToken, err error) {
	if err = s.fault(ctx, "ConsumeLinkToken"); err != nil {
		return
	}
	defer s.after("ConsumeLinkToken", &err)
	return s.s.ConsumeLinkToken(ctx, hash, now)
}

func (s *Store) CreateInstallation(ctx context.Context, i state.Installation) (err error) {
	if err = s.fault(ctx, "CreateInstallation"); err != nil {
		return
	}
	defer s.after("CreateInstallation", &err)
	return s.s.CreateInstallation(ctx, i)
}

func (s *Store) InstallationByCredential(ctx context.Context, hash string) (_ state.Installation, err error) {
	if err = s.fault(ctx, "InstallationByCredential"); err != nil {
		return
	}
	defer s.after("InstallationByCredential", &err)
	return s.s.InstallationByCredential(ctx, hash)
}

func (s *Store) SetInstallationCredential(ctx context.Context, id string, from, to state.InstallationCredential) (_ state.Installation, err error) {
	if err = s.fault(ctx, "SetInstallationCredential"); err != nil {
		return
	}
	defer s.after("SetInstallationCredential", &err)
	return s.s.SetInstallationCredential(ctx, id, from, to)
}

func (s *Store) Installation(ctx context.Context, id string) (_ state.Installation, err error) {
	if err = s.fault(ctx, "Installation"); err != nil {
		return
	}
	defer s.after("Installation", &err)
	return s.s.Installation(ctx, id)
}

func (s *Store) DeleteInstallation(ctx context.Context, id string) (err error) {
	if err = s.fault(ctx, "DeleteInstallation"); err != nil {
		return
	}
	defer s.after("DeleteInstallation", &err)
	return s.s.DeleteInstallation(ctx, id)
}

func (s *Store) ListInstallations(ctx context.Context, orgID string) (_ []state.Installation, err error) {
	if err = s.fault(ctx, "ListInstallations"); err != nil {
		return
	}
	defer s.after("ListInstallations", &err)
	return s.s.ListInstallations(ctx, orgID)
}

func (s *Store) UpdateInstallationSeen(ctx context.Context, id string, online bool, at time.Time, agentVersion, hostname string) (err error) {
	if err = s.fault(ctx, "UpdateInstallationSeen"); err != nil {
		return
	}
	defer s.after("UpdateInstallationSeen", &err)
	return s.s.UpdateInstallationSeen(ctx, id, online, at, agentVersion, hostname)
}

func (s *Store) MarkAllOffline(ctx context.Context) (err error) {
	if err = s.fault(ctx, "MarkAllOffline"); err != nil {
		return
	}
	defer s.after("MarkAllOffline", &err)
	return s.s.MarkAllOffline(ctx)
}

func (s *Store) CreateAPIToken(ctx context.Context, t state.APIToken) (err error) {
	if err = s.fault(ctx, "CreateAPIToken"); err != nil {
		return
	}
	defer s.after("CreateAPIToken", &err)
	return s.s.CreateAPIToken(ctx, t)
}

func (s *Store) APITokenByHash(ctx context.Context, hash string) (_ state.APIToken, err error) {
	if err = s.fault(ctx, "APITokenByHash"); err != nil {
		return
	}
	defer s.after("APITokenByHash", &err)
	return s.s.APITokenByHash(ctx, hash)
}

func (s *Store) CreatePromotion(ctx context.Context, p state.Promotion) (activeID string, err error) {
	if err = s.fault(ctx, "CreatePromotion"); err != nil {
		return
	}
	defer s.after("CreatePromotion", &err)
	return s.s.CreatePromotion(ctx, p)
}

func (s *Store) Promotion(ctx context.Context, id string) (_ state.Promotion, err error) {
	if err = s.fault(ctx, "Promotion"); err != nil {
		return
	}
	defer s.after("Promotion", &err)
	return s.s.Promotion(ctx, id)
}

func (s *Store) PromotionByIdempotencyKey(ctx context.Context, orgID, key string) (_ state.Promotion, err error) {
	if err = s.fault(ctx, "PromotionByIdempotencyKey"); err != nil {
		return
	}
	defer s.after("PromotionByIdempotencyKey", &err)
	return s.s.PromotionByIdempotencyKey(ctx, orgID, key)
}

func (s *Store) ListPromotions(ctx context.Context, f state.PromotionFilter) (_ []state.Promotion, err error) {
	if err = s.fault(ctx, "ListPromotions"); err != nil {
		return
	}
	defer s.after("ListPromotions", &err)
	return s.s.ListPromotions(ctx, f)
}

func (s *Store) RecordConnection(ctx context.Context, e state.ConnectionEvent) (err error) {
	if err = s.fault(ctx, "RecordConnection"); err != nil {
		return
	}
	defer s.after("RecordConnection", &err)
	return s.s.RecordConnection(ctx, e)
}

func (s *Store) ListConnections(ctx context.Context, installationID string, limit int) (_ []state.ConnectionEvent, err error) {
	if err = s.fault(ctx, "ListConnections"); err != nil {
		return
	}
	defer s.after("ListConnections", &err)
	return s.s.ListConnections(ctx, installationID, limit)
}

func (s *Store) CountUndelivered(ctx context.Context, targetEnvID string) (_ int, err error) {
	if err = s.fault(ctx, "CountUndelivered"); err != nil {
		return
	}
	defer s.after("CountUndelivered", &err)
	return s.s.CountUndelivered(ctx, targetEnvID)
}

func (s *Store) UpdatePromotion(ctx context.Context, id string, u state.PromotionUpdate) (_ state.Promotion, err error) {
	if err = s.fault(ctx, "UpdatePromotion"); err != nil {
		return
	}
	defer s.after("UpdatePromotion", &err)
	return s.s.UpdatePromotion(ctx, id, u)
}

func (s *Store) AppendAudit(ctx context.Context, e state.AuditEntry) (err error) {
	if err = s.fault(ctx, "AppendAudit"); err != nil {
		return
	}
	defer s.after("AppendAudit", &err)
	return s.s.AppendAudit(ctx, e)
}

func (s *Store) LastAudit(ctx context.Context, orgID string) (_ state.AuditEntry, err error) {
	if err = s.fault(ctx, "LastAudit"); err != nil {
		return
	}
	defer s.after("LastAudit", &err)
	return s.s.LastAudit(ctx, orgID)
}

func (s *Store) ListAudit(ctx context.Context, f state.AuditFilter) (_ []state.AuditEntry, err error) {
	if err = s.fault(ctx, "ListAudit"); err != nil {
		return
	}
	defer s.after("ListAudit", &err)
	return s.s.ListAudit(ctx, f)
}

func (s *Store) ListAPITokens(ctx context.Context, orgID, userID string) (_ []state.APIToken, err error) {
	if err = s.fault(ctx, "ListAPITokens"); err != nil {
		return
	}
	defer s.after("ListAPITokens", &err)
	return s.s.ListAPITokens(ctx, orgID, userID)
}

func (s *Store) RevokeAPIToken(ctx context.Context, orgID, id string, at time.Time) (_ state.APIToken, err error) {
	if err = s.fault(ctx, "RevokeAPIToken"); err != nil {
		return
	}
	defer s.after("RevokeAPIToken", &err)
	return s.s.RevokeAPIToken(ctx, orgID, id, at)
}

func (s *Store) TouchAPIToken(ctx context.Context, id string, at, ifBefore time.Time) (err error) {
	if err = s.fault(ctx, "TouchAPIToken"); err != nil {
		return
	}
	defer s.after("TouchAPIToken", &err)
	return s.s.TouchAPIToken(ctx, id, at, ifBefore)
}

func (s *Store) CreateUser(ctx context.Context, u state.User) (err error) {
	if err = s.fault(ctx, "CreateUser"); err != nil {
		return
	}
	defer s.after("CreateUser", &err)
	return s.s.CreateUser(ctx, u)
}

func (s *Store) User(ctx context.Context, orgID, idOrUsername string) (_ state.User, err error) {
	if err = s.fault(ctx, "User"); err != nil {
		return
	}
	defer s.after("User", &err)
	return s.s.User(ctx, orgID, idOrUsername)
}

func (s *Store) ListUsers(ctx context.Context, orgID string) (_ []state.User, err error) {
	if err = s.fault(ctx, "ListUsers"); err != nil {
		return
	}
	defer s.after("ListUsers", &err)
	return s.s.ListUsers(ctx, orgID)
}

func (s *Store) UpdateUser(ctx context.Context, orgID, id string, u state.UserUpdate) (_ state.User, err error) {
	if err = s.fault(ctx, "UpdateUser"); err != nil {
		return
	}
	defer s.after("UpdateUser", &err)
	return s.s.UpdateUser(ctx, orgID, id, u)
}

func (s *Store) DeleteUser(ctx context.Context, orgID, id string) (err error) {
	if err = s.fault(ctx, "DeleteUser"); err != nil {
		return
	}
	defer s.after("DeleteUser", &err)
	return s.s.DeleteUser(ctx, orgID, id)
}

func (s *Store) CreateRoleBinding(ctx context.Context, b state.RoleBinding) (err error) {
	if err = s.fault(ctx, "CreateRoleBinding"); err != nil {
		return
	}
	defer s.after("CreateRoleBinding", &err)
	return s.s.CreateRoleBinding(ctx, b)
}

func (s *Store) ListRoleBindings(ctx context.Context, f state.RoleBindingFilter) (_ []state.RoleBinding, err error) {
	if err = s.fault(ctx, "ListRoleBindings"); err != nil {
		return
	}
	defer s.after("ListRoleBindings", &err)
	return s.s.ListRoleBindings(ctx, f)
}

func (s *Store) DeleteRoleBinding(ctx context.Context, orgID, id string) (err error) {
	if err = s.fault(ctx, "DeleteRoleBinding"); err != nil {
		return
	}
	defer s.after("DeleteRoleBinding", &err)
	return s.s.DeleteRoleBinding(ctx, orgID, id)
}

func (s *Store) CreateRole(ctx context.Context, r state.Role) (err error) {
	if err = s.fault(ctx, "CreateRole"); err != nil {
		return
	}
	defer s.after("CreateRole", &err)
	return s.s.CreateRole(ctx, r)
}

func (s *Store) ListRoles(ctx context.Context, orgID string) (_ []state.Role, err error) {
	if err = s.fault(ctx, "ListRoles"); err != nil {
		return
	}
	defer s.after("ListRoles", &err)
	return s.s.ListRoles(ctx, orgID)
}

func (s *Store) DeleteRole(ctx context.Context, orgID string, scope state.Scope, name string) (err error) {
	if err = s.fault(ctx, "DeleteRole"); err != nil {
		return
	}
	defer s.after("DeleteRole", &err)
	return s.s.DeleteRole(ctx, orgID, scope, name)
}

func (s *Store) InitSetting(ctx context.Context, st state.Setting) (_ state.Setting, err error) {
	if err = s.fault(ctx, "InitSetting"); err != nil {
		return
	}
	defer s.after("InitSetting", &err)
	return s.s.InitSetting(ctx, st)
}

func (s *Store) AppendAuditAnchor(ctx context.Context, a state.AuditAnchor) (err error) {
	if err = s.fault(ctx, "AppendAuditAnchor"); err != nil {
		return
	}
	defer s.after("AppendAuditAnchor", &err)
	return s.s.AppendAuditAnchor(ctx, a)
}

func (s *Store) ListAuditAnchors(ctx context.Context, orgID string, afterSeq int64, limit int) (_ []state.AuditAnchor, err error) {
	if err = s.fault(ctx, "ListAuditAnchors"); err != nil {
		return
	}
	defer s.after("ListAuditAnchors", &err)
	return s.s.ListAuditAnchors(ctx, orgID, afterSeq, limit)
}

func (s *Store) LastAuditAnchor(ctx context.Context, orgID string) (_ state.AuditAnchor, err error) {
	if err = s.fault(ctx, "LastAuditAnchor"); err != nil {
		return
	}
	defer s.after("LastAuditAnchor", &err)
	return s.s.LastAuditAnchor(ctx, orgID)
}
