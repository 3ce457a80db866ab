package faultstore

import (
	"context"
	"time"

	"ferry.dev/hub/internal/state"
)

// The methods below implement state.Store: each asks fault whether to fail
// and otherwise calls the wrapped store.

func (s *Store) Ping(ctx context.Context) (err error) {
	if err = s.fault(ctx, "Ping"); err != nil {
		return
	}
	return s.s.Ping(ctx)
}

func (s *Store) CreateOrg(ctx context.Context, o state.Org) (err error) {
	if err = s.fault(ctx, "CreateOrg"); err != nil {
		return
	}
	return s.s.CreateOrg(ctx, o)
}

func (s *Store) Org(ctx context.Context, idOrName string) (_ state.Org, err error) {
	if err = s.fault(ctx, "Org"); err != nil {
		return
	}
	return s.s.Org(ctx, idOrName)
}

func (s *Store) ListOrgs(ctx context.Context) (_ []state.Org, err error) {
	if err = s.fault(ctx, "ListOrgs"); err != nil {
		return
	}
	return s.s.ListOrgs(ctx)
}

func (s *Store) CreateEnvironment(ctx context.Context, e state.Environment) (err error) {
	if err = s.fault(ctx, "CreateEnvironment"); err != nil {
		return
	}
	return s.s.CreateEnvironment(ctx, e)
}

func (s *Store) Environment(ctx context.Context, orgID, idOrName string) (_ state.Environment, err error) {
	if err = s.fault(ctx, "Environment"); err != nil {
		return
	}
	return s.s.Environment(ctx, orgID, idOrName)
}

func (s *Store) ListEnvironments(ctx context.Context, orgID string) (_ []state.Environment, err error) {
	if err = s.fault(ctx, "ListEnvironments"); err != nil {
		return
	}
	return s.s.ListEnvironments(ctx, orgID)
}

func (s *Store) CreateLinkToken(ctx context.Context, t state.LinkToken) (err error) {
	if err = s.fault(ctx, "CreateLinkToken"); err != nil {
		return
	}
	return s.s.CreateLinkToken(ctx, t)
}

func (s *Store) ConsumeLinkToken(ctx context.Context, hash string, now time.Time) (_ state.LinkToken, err error) {
	if err = s.fault(ctx, "ConsumeLinkToken"); err != nil {
		return
	}
	return s.s.ConsumeLinkToken(ctx, hash, now)
}

func (s *Store) CreateInstallation(ctx context.Context, i state.Installation) (err error) {
	if err = s.fault(ctx, "CreateInstallation"); err != nil {
		return
	}
	return s.s.CreateInstallation(ctx, i)
}

func (s *Store) InstallationByCredential(ctx context.Context, hash string) (_ state.Installation, err error) {
	if err = s.fault(ctx, "InstallationByCredential"); err != nil {
		return
	}
	return s.s.InstallationByCredential(ctx, hash)
}

func (s *Store) Installation(ctx context.Context, id string) (_ state.Installation, err error) {
	if err = s.fault(ctx, "Installation"); err != nil {
		return
	}
	return s.s.Installation(ctx, id)
}

func (s *Store) ListInstallations(ctx context.Context, orgID string) (_ []state.Installation, err error) {
	if err = s.fault(ctx, "ListInstallations"); err != nil {
		return
	}
	return s.s.ListInstallations(ctx, orgID)
}

func (s *Store) UpdateInstallationSeen(ctx context.Context, id string, online bool, at time.Time, agentVersion, hostname string) (err error) {
	if err = s.fault(ctx, "UpdateInstallationSeen"); err != nil {
		return
	}
	return s.s.UpdateInstallationSeen(ctx, id, online, at, agentVersion, hostname)
}

func (s *Store) MarkAllOffline(ctx context.Context) (err error) {
	if err = s.fault(ctx, "MarkAllOffline"); err != nil {
		return
	}
	return s.s.MarkAllOffline(ctx)
}

func (s *Store) CreateAPIToken(ctx context.Context, t state.APIToken) (err error) {
	if err = s.fault(ctx, "CreateAPIToken"); err != nil {
		return
	}
	return s.s.CreateAPIToken(ctx, t)
}

func (s *Store) APITokenByHash(ctx context.Context, hash string) (_ state.APIToken, err error) {
	if err = s.fault(ctx, "APITokenByHash"); err != nil {
		return
	}
	return s.s.APITokenByHash(ctx, hash)
}

func (s *Store) CreatePromotion(ctx context.Context, p state.Promotion) (activeID string, err error) {
	if err = s.fault(ctx, "CreatePromotion"); err != nil {
		return
	}
	return s.s.CreatePromotion(ctx, p)
}

func (s *Store) Promotion(ctx context.Context, id string) (_ state.Promotion, err error) {
	if err = s.fault(ctx, "Promotion"); err != nil {
		return
	}
	return s.s.Promotion(ctx, id)
}

func (s *Store) ListPromotions(ctx context.Context, f state.PromotionFilter) (_ []state.Promotion, err error) {
	if err = s.fault(ctx, "ListPromotions"); err != nil {
		return
	}
	return s.s.ListPromotions(ctx, f)
}

func (s *Store) UpdatePromotion(ctx context.Context, id string, u state.PromotionUpdate) (_ state.Promotion, err error) {
	if err = s.fault(ctx, "UpdatePromotion"); err != nil {
		return
	}
	return s.s.UpdatePromotion(ctx, id, u)
}

func (s *Store) AppendAudit(ctx context.Context, e state.AuditEntry) (err error) {
	if err = s.fault(ctx, "AppendAudit"); err != nil {
		return
	}
	return s.s.AppendAudit(ctx, e)
}

func (s *Store) LastAudit(ctx context.Context, orgID string) (_ state.AuditEntry, err error) {
	if err = s.fault(ctx, "LastAudit"); err != nil {
		return
	}
	return s.s.LastAudit(ctx, orgID)
}

func (s *Store) ListAudit(ctx context.Context, f state.AuditFilter) (_ []state.AuditEntry, err error) {
	if err = s.fault(ctx, "ListAudit"); err != nil {
		return
	}
	return s.s.ListAudit(ctx, f)
}

func (s *Store) ListAPITokens(ctx context.Context, orgID, userID string) (_ []state.APIToken, err error) {
	if err = s.fault(ctx, "ListAPITokens"); err != nil {
		return
	}
	return s.s.ListAPITokens(ctx, orgID, userID)
}

func (s *Store) RevokeAPIToken(ctx context.Context, orgID, id string, at time.Time) (_ state.APIToken, err error) {
	if err = s.fault(ctx, "RevokeAPIToken"); err != nil {
		return
	}
	return s.s.RevokeAPIToken(ctx, orgID, id, at)
}

func (s *Store) TouchAPIToken(ctx context.Context, id string, at, ifBefore time.Time) (err error) {
	if err = s.fault(ctx, "TouchAPIToken"); err != nil {
		return
	}
	return s.s.TouchAPIToken(ctx, id, at, ifBefore)
}

func (s *Store) CreateUser(ctx context.Context, u state.User) (err error) {
	if err = s.fault(ctx, "CreateUser"); err != nil {
		return
	}
	return s.s.CreateUser(ctx, u)
}

func (s *Store) User(ctx context.Context, orgID, idOrUsername string) (_ state.User, err error) {
	if err = s.fault(ctx, "User"); err != nil {
		return
	}
	return s.s.User(ctx, orgID, idOrUsername)
}

func (s *Store) ListUsers(ctx context.Context, orgID string) (_ []state.User, err error) {
	if err = s.fault(ctx, "ListUsers"); err != nil {
		return
	}
	return s.s.ListUsers(ctx, orgID)
}

func (s *Store) UpdateUser(ctx context.Context, orgID, id string, u state.UserUpdate) (_ state.User, err error) {
	if err = s.fault(ctx, "UpdateUser"); err != nil {
		return
	}
	return s.s.UpdateUser(ctx, orgID, id, u)
}

func (s *Store) DeleteUser(ctx context.Context, orgID, id string) (err error) {
	if err = s.fault(ctx, "DeleteUser"); err != nil {
		return
	}
	return s.s.DeleteUser(ctx, orgID, id)
}

func (s *Store) CreateRoleBinding(ctx context.Context, b state.RoleBinding) (err error) {
	if err = s.fault(ctx, "CreateRoleBinding"); err != nil {
		return
	}
	return s.s.CreateRoleBinding(ctx, b)
}

func (s *Store) ListRoleBindings(ctx context.Context, f state.RoleBindingFilter) (_ []state.RoleBinding, err error) {
	if err = s.fault(ctx, "ListRoleBindings"); err != nil {
		return
	}
	return s.s.ListRoleBindings(ctx, f)
}

func (s *Store) DeleteRoleBinding(ctx context.Context, orgID, id string) (err error) {
	if err = s.fault(ctx, "DeleteRoleBinding"); err != nil {
		return
	}
	return s.s.DeleteRoleBinding(ctx, orgID, id)
}

func (s *Store) CreateRole(ctx context.Context, r state.Role) (err error) {
	if err = s.fault(ctx, "CreateRole"); err != nil {
		return
	}
	return s.s.CreateRole(ctx, r)
}

func (s *Store) ListRoles(ctx context.Context, orgID string) (_ []state.Role, err error) {
	if err = s.fault(ctx, "ListRoles"); err != nil {
		return
	}
	return s.s.ListRoles(ctx, orgID)
}

func (s *Store) DeleteRole(ctx context.Context, orgID string, scope state.Scope, name string) (err error) {
	if err = s.fault(ctx, "DeleteRole"); err != nil {
		return
	}
	return s.s.DeleteRole(ctx, orgID, scope, name)
}

func (s *Store) InitSetting(ctx context.Context, st state.Setting) (_ state.Setting, err error) {
	if err = s.fault(ctx, "InitSetting"); err != nil {
		return
	}
	return s.s.InitSetting(ctx, st)
}
