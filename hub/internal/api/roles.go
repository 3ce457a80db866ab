package api

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/authz"
	"ferry.dev/hub/internal/ids"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// RoleBindingDTO gives a user a role on the organization, an environment
// or an API (crossId) of an environment.
type RoleBindingDTO struct {
	ID        string    `json:"id"`
	UserID    string    `json:"userId"`
	Scope     string    `json:"scope"` // ORGANIZATION | ENVIRONMENT | API
	EnvID     string    `json:"envId,omitempty"`
	CrossID   string    `json:"crossId,omitempty"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
}

// CreateRoleBindingRequest is the body of POST /orgs/{org}/role-bindings.
// A user holds one role per scope target: change it by deleting the binding
// and creating another.
type CreateRoleBindingRequest struct {
	UserID  string `json:"userId"` // id or username
	Scope   string `json:"scope"`
	Env     string `json:"env,omitempty"`     // id or name; ENVIRONMENT and API scopes
	CrossID string `json:"crossId,omitempty"` // API scope
	Role    string `json:"role"`              // built-in or custom role of the scope
}

// RoleDTO is a role: built in (Gravitee's) or custom.
type RoleDTO struct {
	Scope       string     `json:"scope"`
	Name        string     `json:"name"`
	Permissions []string   `json:"permissions"`
	BuiltIn     bool       `json:"builtIn"`
	OrgAdmin    bool       `json:"orgAdmin,omitempty"` // organization ADMIN: everything in the organization
	CreatedAt   *time.Time `json:"createdAt,omitempty"`
}

// CreateRoleRequest is the body of POST /orgs/{org}/roles: a custom role of
// the ENVIRONMENT or API scope.
type CreateRoleRequest struct {
	Scope       string   `json:"scope"`
	Name        string   `json:"name"`
	Permissions []string `json:"permissions"` // e.g. "ENVIRONMENT_API:READ"
}

var (
	roleNameRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)
	crossIDRE  = regexp.MustCompile(`^[\x21-\x7e]{1,256}$`)
)

func bindingDTO(b state.RoleBinding) RoleBindingDTO {
	return RoleBindingDTO{ID: b.ID, UserID: b.UserID, Scope: string(b.Scope), EnvID: b.EnvID, CrossID: b.CrossID, Role: b.Role, CreatedAt: b.CreatedAt}
}

func builtInDTO(r authz.Role) RoleDTO {
	d := RoleDTO{Scope: string(r.Scope), Name: r.Name, Permissions: []string{}, BuiltIn: true, OrgAdmin: r.OrgAdmin}
	for _, p := range r.Permissions {
		d.Permissions = append(d.Permissions, string(p))
	}
	return d
}

func customDTO(r state.Role) RoleDTO {
	perms := r.Permissions
	if perms == nil {
		perms = []string{}
	}
	return RoleDTO{Scope: string(r.Scope), Name: r.Name, Permissions: perms, CreatedAt: optTime(r.CreatedAt)}
}

// parseScope checks a scope name.
func parseScope(s string, allowed []state.Scope) (state.Scope, error) {
	sc := state.Scope(s)
	if !slices.Contains(allowed, sc) {
		names := make([]string, len(allowed))
		for i, a := range allowed {
			names[i] = string(a)
		}
		return "", protocol.Errorf(protocol.CodeInvalid, "scope must be one of "+strings.Join(names, ", "))
	}
	return sc, nil
}

func (a *API) createRoleBinding(c *gin.Context) {
	var req CreateRoleBindingRequest
	if err := decode(c, &req); err != nil {
		a.fail(c, err)
		return
	}
	scope, err := parseScope(req.Scope, authz.Scopes)
	if err != nil {
		a.fail(c, err)
		return
	}
	switch {
	case req.UserID == "" || req.Role == "":
		err = protocol.Errorf(protocol.CodeInvalid, "userId and role are required")
	case scope == state.ScopeOrganization && (req.Env != "" || req.CrossID != ""):
		err = protocol.Errorf(protocol.CodeInvalid, "an ORGANIZATION role takes neither env nor crossId")
	case scope == state.ScopeEnvironment && (req.Env == "" || req.CrossID != ""):
		err = protocol.Errorf(protocol.CodeInvalid, "an ENVIRONMENT role takes env and no crossId")
	case scope == state.ScopeAPI && (req.Env == "" || !crossIDRE.MatchString(req.CrossID)):
		err = protocol.Errorf(protocol.CodeInvalid, "an API role takes env and crossId (1-256 printable characters, no spaces)")
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	o := orgOf(c)
	if _, ok := authz.BuiltIn(scope, req.Role); !ok {
		custom, err := a.store.ListRoles(ctx, o.ID)
		if err != nil {
			a.fail(c, err)
			return
		}
		if !slices.ContainsFunc(custom, func(r state.Role) bool { return r.Scope == scope && r.Name == req.Role }) {
			a.problem(c, protocol.CodeInvalid, fmt.Sprintf("no role %s of scope %s; see GET /api/v1/orgs/{org}/roles", req.Role, scope))
			return
		}
	}
	u, err := a.userParam(c, req.UserID)
	if err != nil {
		a.fail(c, err)
		return
	}
	b := state.RoleBinding{ID: ids.New("rb"), OrgID: o.ID, UserID: u.ID, Scope: scope, CrossID: req.CrossID, Role: req.Role,
		CreatedAt: a.authority.Now().UTC().Truncate(time.Millisecond)}
	where := "the organization"
	if req.Env != "" {
		env, err := a.store.Environment(ctx, o.ID, req.Env)
		if err != nil {
			a.fail(c, err)
			return
		}
		b.EnvID, where = env.ID, "environment "+env.Name
		if scope == state.ScopeAPI {
			where = "API " + b.CrossID + " in " + env.Name
		}
	}
	done, err := a.auditFirst(c, audit.Event{OrgID: o.ID, Event: audit.RoleBound, Actor: principal(c).Actor(), EnvID: b.EnvID,
		Detail: fmt.Sprintf("user %s is %s %s on %s (%s)", u.Username, scope, b.Role, where, b.ID)})
	if err != nil {
		a.fail(c, err)
		return
	}
	err = a.store.CreateRoleBinding(ctx, b)
	if errors.Is(err, state.ErrConflict) {
		err = protocol.Errorf(protocol.CodeConflict, "the user already has a role on "+where+"; delete that binding first")
	}
	if done(err); err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, bindingDTO(b))
}

func (a *API) listRoleBindings(c *gin.Context) {
	ctx := c.Request.Context()
	f := state.RoleBindingFilter{OrgID: orgOf(c).ID}
	if v := c.Query("userId"); v != "" {
		u, err := a.userParam(c, v)
		if err != nil {
			a.fail(c, err)
			return
		}
		f.UserID = u.ID
	}
	if v := c.Query("env"); v != "" {
		env, err := a.store.Environment(ctx, f.OrgID, v)
		if err != nil {
			a.fail(c, err)
			return
		}
		f.EnvID = env.ID
	}
	bs, err := a.store.ListRoleBindings(ctx, f)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := List[RoleBindingDTO]{Items: []RoleBindingDTO{}}
	for _, b := range bs {
		out.Items = append(out.Items, bindingDTO(b))
	}
	sendPage(a, c, out.Items)
}

func (a *API) deleteRoleBinding(c *gin.Context) {
	o := orgOf(c)
	done, err := a.auditFirst(c, audit.Event{OrgID: o.ID, Event: audit.RoleUnbound, Actor: principal(c).Actor(), Detail: "binding " + c.Param("id")})
	if err != nil {
		a.fail(c, err)
		return
	}
	if err := a.store.DeleteRoleBinding(c.Request.Context(), o.ID, c.Param("id")); err != nil {
		done(err)
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (a *API) createRole(c *gin.Context) {
	var req CreateRoleRequest
	if err := decode(c, &req); err != nil {
		a.fail(c, err)
		return
	}
	scope, err := parseScope(req.Scope, authz.CustomScopes)
	if err != nil {
		a.fail(c, err)
		return
	}
	if !roleNameRE.MatchString(req.Name) {
		a.problem(c, protocol.CodeInvalid, "name must be 1-64 upper-case letters, digits or '_', starting with a letter")
		return
	}
	if _, ok := authz.BuiltIn(scope, req.Name); ok {
		a.problem(c, protocol.CodeConflict, req.Name+" is a built-in role of scope "+string(scope))
		return
	}
	allowed := authz.ScopePermissions(scope)
	var perms []string
	for _, p := range req.Permissions {
		if !slices.Contains(allowed, session.Permission(p)) {
			a.problem(c, protocol.CodeInvalid, fmt.Sprintf("permission %q is not one a %s role may carry", p, scope))
			return
		}
		if !slices.Contains(perms, p) {
			perms = append(perms, p)
		}
	}
	if len(perms) == 0 {
		a.problem(c, protocol.CodeInvalid, "permissions must list at least one permission")
		return
	}
	slices.Sort(perms)
	o := orgOf(c)
	r := state.Role{OrgID: o.ID, Scope: scope, Name: req.Name, Permissions: perms, CreatedAt: a.authority.Now().UTC().Truncate(time.Millisecond)}
	done, err := a.auditFirst(c, audit.Event{OrgID: o.ID, Event: audit.RoleCreated, Actor: principal(c).Actor(),
		Detail: fmt.Sprintf("%s role %s: %s", scope, r.Name, strings.Join(perms, ", "))})
	if err != nil {
		a.fail(c, err)
		return
	}
	if err := a.store.CreateRole(c.Request.Context(), r); err != nil {
		done(err)
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, customDTO(r))
}

func (a *API) listRoles(c *gin.Context) {
	custom, err := a.store.ListRoles(c.Request.Context(), orgOf(c).ID)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := List[RoleDTO]{Items: []RoleDTO{}}
	for _, r := range authz.BuiltInRoles() {
		out.Items = append(out.Items, builtInDTO(r))
	}
	for _, r := range custom {
		out.Items = append(out.Items, customDTO(r))
	}
	sendPage(a, c, out.Items)
}

// deleteRole deletes a custom role that no binding uses. (A binding made at
// the same moment as the delete would grant nothing: a binding to a missing
// role is inert.)
func (a *API) deleteRole(c *gin.Context) {
	ctx := c.Request.Context()
	o := orgOf(c)
	scope, name := state.Scope(c.Param("scope")), c.Param("name")
	bs, err := a.store.ListRoleBindings(ctx, state.RoleBindingFilter{OrgID: o.ID})
	if err != nil {
		a.fail(c, err)
		return
	}
	if n := len(slices.DeleteFunc(bs, func(b state.RoleBinding) bool { return b.Scope != scope || b.Role != name })); n > 0 {
		a.problem(c, protocol.CodeConflict, fmt.Sprintf("role %s is bound %d times; delete those bindings first", name, n))
		return
	}
	done, err := a.auditFirst(c, audit.Event{OrgID: o.ID, Event: audit.RoleDeleted, Actor: principal(c).Actor(), Detail: fmt.Sprintf("%s role %s", scope, name)})
	if err != nil {
		a.fail(c, err)
		return
	}
	if err := a.store.DeleteRole(ctx, o.ID, scope, name); err != nil {
		done(err)
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
