package authz

import (
	"slices"
	"strings"

	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// Grants computes the permission part of a user's session claims from the
// user's role bindings and the organization's custom roles: OrgAdmin, Env
// (environment id → permissions) and API ("<environment id>/<crossId>" →
// permissions). Permission lists are sorted. A binding to a role that does
// not exist (a custom role deleted meanwhile) grants nothing.
func Grants(bindings []state.RoleBinding, custom []state.Role) session.Claims {
	var c session.Claims
	add := func(m *map[string][]session.Permission, key string, perms []session.Permission) {
		if len(perms) == 0 {
			return
		}
		if *m == nil {
			*m = map[string][]session.Permission{}
		}
		(*m)[key] = append((*m)[key], perms...)
	}
	for _, b := range bindings {
		perms, orgAdmin, ok := rolePermissions(b.Scope, b.Role, custom)
		if !ok {
			continue
		}
		switch b.Scope {
		case state.ScopeOrganization:
			c.OrgAdmin = c.OrgAdmin || orgAdmin
		case state.ScopeEnvironment:
			add(&c.Env, b.EnvID, perms)
		case state.ScopeAPI:
			add(&c.API, session.APIKey(b.EnvID, b.CrossID), perms)
		}
	}
	for _, m := range []map[string][]session.Permission{c.Env, c.API} {
		for k, v := range m {
			slices.Sort(v)
			m[k] = slices.Compact(v)
		}
	}
	return c
}

// rolePermissions resolves a bound role name.
func rolePermissions(scope state.Scope, name string, custom []state.Role) (perms []session.Permission, orgAdmin, ok bool) {
	if r, ok := BuiltIn(scope, name); ok {
		return r.Permissions, r.OrgAdmin, true
	}
	for _, r := range custom {
		if r.Scope == scope && r.Name == name {
			allowed := ScopePermissions(scope)
			for _, p := range r.Permissions {
				// Only what the scope allows, whatever is stored.
				if slices.Contains(allowed, session.Permission(p)) {
					perms = append(perms, session.Permission(p))
				}
			}
			return perms, false, true
		}
	}
	return nil, false, false
}

// Forbidden is the refusal of an action; its message names what is
// missing, e.g. "needs API_DEFINITION[UPDATE] on API x1 in Dev".
func Forbidden(msg string) *protocol.Error { return protocol.Errorf(protocol.CodeForbidden, msg) }

// NeedOrgAdmin refuses anyone but an organization admin.
func NeedOrgAdmin(c *session.Claims) error {
	if c != nil && c.OrgAdmin {
		return nil
	}
	return Forbidden("needs organization ADMIN")
}

// NeedEnv refuses unless c holds every one of perms on env; the refusal
// lists the missing ones.
func NeedEnv(c *session.Claims, env state.Environment, perms ...session.Permission) error {
	var missing []string
	for _, p := range perms {
		if c == nil || !c.CanEnv(env.ID, p) {
			missing = append(missing, Label(p))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return Forbidden("needs " + strings.Join(missing, " and ") + " on environment " + env.Name)
}

// NeedAPI refuses unless c holds every one of perms on the API crossID in
// env (from an API role there, or an environment role of env).
func NeedAPI(c *session.Claims, env state.Environment, crossID string, perms ...session.Permission) error {
	var missing []string
	for _, p := range perms {
		if c == nil || !c.CanAPI(env.ID, crossID, p) {
			missing = append(missing, Label(p))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return Forbidden("needs " + strings.Join(missing, " and ") + " on API " + crossID + " in " + env.Name)
}

// NeedEnvAny refuses unless c holds p on at least one of envs.
func NeedEnvAny(c *session.Claims, p session.Permission, envs ...state.Environment) error {
	names := make([]string, 0, len(envs))
	for _, e := range envs {
		if c != nil && c.CanEnv(e.ID, p) {
			return nil
		}
		names = append(names, e.Name)
	}
	return Forbidden("needs " + Label(p) + " on environment " + strings.Join(names, " or "))
}

// HoldsAnywhere reports whether c holds p on some API of env: through an
// environment role or any API role there.
func HoldsAnywhere(c *session.Claims, envID string, p session.Permission) bool {
	if c == nil {
		return false
	}
	if c.CanEnv(envID, p) {
		return true
	}
	for k, perms := range c.API {
		if strings.HasPrefix(k, envID+"/") && slices.Contains(perms, p) {
			return true
		}
	}
	return false
}
