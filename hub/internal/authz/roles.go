package authz

import (
	"slices"
	"strings"

	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/session"
)

// Built-in role names. An organization ADMIN holds every permission in every
// environment of the organization and manages its users, roles and tokens.
const (
	RoleAdmin        = "ADMIN"
	RoleUser         = "USER"
	RoleAPIPublisher = "API_PUBLISHER"
	RoleOwner        = "OWNER"
	RoleReviewer     = "REVIEWER"
)

// Role is a role as consoles list it: built in or custom.
type Role struct {
	Scope       state.Scope
	Name        string
	Permissions []session.Permission
	// OrgAdmin is true for the organization ADMIN, whose power is not a
	// permission list.
	OrgAdmin bool
	BuiltIn  bool
}

var (
	envAPIAll = []session.Permission{session.EnvAPICreate, session.EnvAPIRead, session.EnvAPIUpdate, session.EnvAPIDelete}
	apiDefAll = []session.Permission{session.APIDefCreate, session.APIDefRead, session.APIDefUpdate, session.APIDefDelete}
)

// builtIn is the role → permission table. Environment roles that carry
// API_DEFINITION permissions grant them on every API of the environment.
var builtIn = []Role{
	{Scope: state.ScopeOrganization, Name: RoleAdmin, BuiltIn: true, OrgAdmin: true},
	{Scope: state.ScopeOrganization, Name: RoleUser, BuiltIn: true},
	{Scope: state.ScopeEnvironment, Name: RoleAdmin, BuiltIn: true, Permissions: slices.Concat(envAPIAll, apiDefAll)},
	{Scope: state.ScopeEnvironment, Name: RoleAPIPublisher, BuiltIn: true, Permissions: []session.Permission{session.EnvAPICreate, session.EnvAPIRead, session.EnvAPIUpdate}},
	{Scope: state.ScopeEnvironment, Name: RoleUser, BuiltIn: true, Permissions: []session.Permission{session.EnvAPIRead}},
	{Scope: state.ScopeAPI, Name: RoleOwner, BuiltIn: true, Permissions: apiDefAll},
	{Scope: state.ScopeAPI, Name: RoleReviewer, BuiltIn: true, Permissions: []session.Permission{session.APIDefRead}},
	{Scope: state.ScopeAPI, Name: RoleUser, BuiltIn: true, Permissions: []session.Permission{session.APIDefRead}},
}

// BuiltInRoles returns the built-in roles, by scope then name.
func BuiltInRoles() []Role {
	out := make([]Role, len(builtIn))
	for i, r := range builtIn {
		r.Permissions = slices.Clone(r.Permissions)
		out[i] = r
	}
	return out
}

// BuiltIn returns the built-in role name of scope.
func BuiltIn(scope state.Scope, name string) (Role, bool) {
	for _, r := range builtIn {
		if r.Scope == scope && r.Name == name {
			r.Permissions = slices.Clone(r.Permissions)
			return r, true
		}
	}
	return Role{}, false
}

// Scopes lists the scopes a role may have.
var Scopes = []state.Scope{state.ScopeOrganization, state.ScopeEnvironment, state.ScopeAPI}

// CustomScopes lists the scopes of custom roles. Organization roles are
// ADMIN and USER only: the permission vocabulary has no organization
// permissions besides "is an admin".
var CustomScopes = []state.Scope{state.ScopeEnvironment, state.ScopeAPI}

// ScopePermissions lists the permissions a custom role of scope may carry:
// environment roles carry ENVIRONMENT_API and API_DEFINITION permissions (the
// latter then apply to every API of the environment), API roles carry
// API_DEFINITION permissions.
func ScopePermissions(scope state.Scope) []session.Permission {
	switch scope {
	case state.ScopeEnvironment:
		return slices.Concat(envAPIAll, apiDefAll)
	case state.ScopeAPI:
		return slices.Clone(apiDefAll)
	}
	return nil
}

// Label writes a permission as Gravitee's consoles do:
// "API_DEFINITION:UPDATE" becomes "API_DEFINITION[UPDATE]".
func Label(p session.Permission) string {
	res, act, ok := strings.Cut(string(p), ":")
	if !ok {
		return string(p)
	}
	return res + "[" + act + "]"
}
