package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// TestIdentityREST covers the management routes' shapes and validation.
func TestIdentityREST(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme := h.newOrg("acme")
	admin := h.newUser(acme, "root", binding{Scope: "ORGANIZATION", Role: "ADMIN"})
	tok := admin.Session
	const users = "/api/v1/orgs/acme/users"

	var u struct {
		ID, OrgID, Username, DisplayName string
		Disabled, HasPassword            bool
	}
	h.must(http.StatusCreated, tok, "POST", users, map[string]string{"username": "Ada.Lovelace@example.com", "displayName": "Ada Lovelace", "password": "0123456789"}, &u)
	if u.Username != "ada.lovelace@example.com" || u.OrgID != acme.ID || !u.HasPassword || u.Disabled || !strings.HasPrefix(u.ID, "usr_") {
		t.Errorf("created user %+v", u)
	}
	h.must(http.StatusCreated, tok, "POST", users, map[string]string{"username": "robot"}, nil) // no password: tokens only
	for name, tc := range map[string]struct {
		method, path string
		body         any
		want         int
	}{
		"duplicate username":   {"POST", users, map[string]string{"username": "ADA.LOVELACE@example.com"}, 409},
		"bad username":         {"POST", users, map[string]string{"username": "a b"}, 400},
		"short password":       {"POST", users, map[string]string{"username": "shorty", "password": "123"}, 400},
		"long password":        {"POST", users, map[string]string{"username": "longy", "password": strings.Repeat("x", 257)}, 400},
		"control in name":      {"POST", users, map[string]string{"username": "ctl", "displayName": "a\x00b"}, 400},
		"unknown field":        {"POST", users, map[string]any{"username": "x", "admin": true}, 400},
		"no body":              {"POST", users, nil, 400},
		"unknown user":         {"GET", users + "/nobody", nil, 404},
		"patch unknown field":  {"PATCH", users + "/robot", map[string]any{"username": "renamed"}, 400},
		"patch short password": {"PATCH", users + "/robot", map[string]any{"password": "x"}, 400},
		"bind unknown role":    {"POST", "/api/v1/orgs/acme/role-bindings", map[string]string{"userId": "robot", "scope": "ENVIRONMENT", "env": "Dev", "role": "GOD"}, 400},
		"bind org role to env": {"POST", "/api/v1/orgs/acme/role-bindings", map[string]string{"userId": "robot", "scope": "ORGANIZATION", "env": "Dev", "role": "ADMIN"}, 400},
		"bind API sans cross":  {"POST", "/api/v1/orgs/acme/role-bindings", map[string]string{"userId": "robot", "scope": "API", "env": "Dev", "role": "OWNER"}, 400},
		"bind bad scope":       {"POST", "/api/v1/orgs/acme/role-bindings", map[string]string{"userId": "robot", "scope": "GALAXY", "role": "OWNER"}, 400},
		"bind unknown env":     {"POST", "/api/v1/orgs/acme/role-bindings", map[string]string{"userId": "robot", "scope": "ENVIRONMENT", "env": "Staging", "role": "USER"}, 404},
		"bind unknown user":    {"POST", "/api/v1/orgs/acme/role-bindings", map[string]string{"userId": "ghost", "scope": "ENVIRONMENT", "env": "Dev", "role": "USER"}, 404},
		"role bad name":        {"POST", "/api/v1/orgs/acme/roles", map[string]any{"scope": "API", "name": "lower", "permissions": []string{"API_DEFINITION:READ"}}, 400},
		"role built-in name":   {"POST", "/api/v1/orgs/acme/roles", map[string]any{"scope": "API", "name": "OWNER", "permissions": []string{"API_DEFINITION:READ"}}, 409},
		"role org scope":       {"POST", "/api/v1/orgs/acme/roles", map[string]any{"scope": "ORGANIZATION", "name": "BOSS", "permissions": []string{"API_DEFINITION:READ"}}, 400},
		"role wrong perm":      {"POST", "/api/v1/orgs/acme/roles", map[string]any{"scope": "API", "name": "X", "permissions": []string{"ENVIRONMENT_API:READ"}}, 400},
		"role no perms":        {"POST", "/api/v1/orgs/acme/roles", map[string]any{"scope": "API", "name": "X", "permissions": []string{}}, 400},
		"token no user":        {"POST", "/api/v1/orgs/acme/tokens", map[string]any{"name": "x"}, 400},
		"token bad ttl":        {"POST", "/api/v1/orgs/acme/tokens", map[string]any{"userId": "robot", "name": "x", "expiresInSeconds": -1}, 400},
		"revoke unknown token": {"DELETE", "/api/v1/orgs/acme/tokens/tok_nope", nil, 404},
		"unbind unknown":       {"DELETE", "/api/v1/orgs/acme/role-bindings/rb_nope", nil, 404},
		"delete unknown role":  {"DELETE", "/api/v1/orgs/acme/roles/API/NOPE", nil, 404},
	} {
		if st, body := h.do(tok, tc.method, tc.path, tc.body, nil); st != tc.want {
			t.Errorf("%s: %d %s, want %d", name, st, body, tc.want)
		}
	}

	if st, _ := h.do("", "POST", "/api/v1/auth/session", map[string]string{"org": "acme", "username": "robot", "password": "anything-at-all"}, nil); st != 401 {
		t.Errorf("a user without a password signs in: %d, want 401", st)
	}

	// Custom role: created, listed after the built-ins, bound, refused for
	// delete while bound, then deleted.
	var role struct {
		Scope, Name string
		Permissions []string
		BuiltIn     bool
	}
	h.must(http.StatusCreated, tok, "POST", "/api/v1/orgs/acme/roles",
		map[string]any{"scope": "ENVIRONMENT", "name": "DEPLOYER", "permissions": []string{"ENVIRONMENT_API:UPDATE", "ENVIRONMENT_API:CREATE", "ENVIRONMENT_API:UPDATE"}}, &role)
	if d := cmp.Diff([]string{"ENVIRONMENT_API:CREATE", "ENVIRONMENT_API:UPDATE"}, role.Permissions); d != "" || role.BuiltIn {
		t.Errorf("role %+v: %s", role, d)
	}
	var roles struct {
		Items []struct{ Scope, Name string }
	}
	h.must(http.StatusOK, tok, "GET", "/api/v1/orgs/acme/roles", nil, &roles)
	var names []string
	for _, r := range roles.Items {
		names = append(names, r.Scope+"/"+r.Name)
	}
	want := []string{"ORGANIZATION/ADMIN", "ORGANIZATION/USER", "ENVIRONMENT/ADMIN", "ENVIRONMENT/API_PUBLISHER", "ENVIRONMENT/USER",
		"API/OWNER", "API/REVIEWER", "API/USER", "ENVIRONMENT/DEPLOYER"}
	if d := cmp.Diff(want, names); d != "" {
		t.Errorf("roles (-want +got):\n%s", d)
	}
	var b struct{ ID, UserID, Scope, EnvID, Role string }
	h.must(http.StatusCreated, tok, "POST", "/api/v1/orgs/acme/role-bindings", map[string]string{"userId": "robot", "scope": "ENVIRONMENT", "env": "Prod", "role": "DEPLOYER"}, &b)
	if b.EnvID != acme.Env["Prod"].ID || b.Role != "DEPLOYER" || b.Scope != "ENVIRONMENT" {
		t.Errorf("binding %+v", b)
	}
	if st, _ := h.do(tok, "POST", "/api/v1/orgs/acme/role-bindings", map[string]string{"userId": "robot", "scope": "ENVIRONMENT", "env": "Prod", "role": "USER"}, nil); st != 409 {
		t.Errorf("second role on one environment: %d, want 409", st)
	}
	if st, _ := h.do(tok, "DELETE", "/api/v1/orgs/acme/roles/ENVIRONMENT/DEPLOYER", nil, nil); st != 409 {
		t.Errorf("delete a bound role: %d, want 409", st)
	}
	h.must(http.StatusNoContent, tok, "DELETE", "/api/v1/orgs/acme/role-bindings/"+b.ID, nil, nil)
	h.must(http.StatusNoContent, tok, "DELETE", "/api/v1/orgs/acme/roles/ENVIRONMENT/DEPLOYER", nil, nil)

	// The caller's view of itself.
	var me struct {
		Kind, UserID, Username string
		OrgAdmin               bool
		Env                    map[string][]string
	}
	h.must(http.StatusOK, tok, "GET", "/api/v1/auth/me", nil, &me)
	if me.Kind != "session" || me.UserID != admin.ID || me.Username != "root" || !me.OrgAdmin {
		t.Errorf("me (session) = %+v", me)
	}
	h.must(http.StatusOK, testAdminToken, "GET", "/api/v1/auth/me", nil, &me)
	if me.Kind != "platform" || !me.OrgAdmin {
		t.Errorf("me (platform) = %+v", me)
	}
	dev := h.newUser(acme, "dev", binding{Scope: "ENVIRONMENT", Env: "Dev", Role: "USER"})
	h.must(http.StatusOK, dev.PAT, "GET", "/api/v1/auth/me", nil, &me)
	if me.Kind != "token" || me.OrgAdmin || cmp.Diff(map[string][]string{acme.Env["Dev"].ID: {"ENVIRONMENT_API:READ"}}, me.Env) != "" {
		t.Errorf("me (token) = %+v", me)
	}
	// A member lists only the organization's environments, not its users.
	h.must(http.StatusOK, dev.PAT, "GET", "/api/v1/orgs/acme/environments", nil, nil)
	if st, body := h.do(dev.PAT, "GET", users, nil, nil); st != 403 || !strings.Contains(body, "needs organization ADMIN") {
		t.Errorf("member lists users: %d %s", st, body)
	}
	var orgs struct{ Items []struct{ Name string } }
	h.must(http.StatusOK, dev.PAT, "GET", "/api/v1/orgs", nil, &orgs)
	if len(orgs.Items) != 1 || orgs.Items[0].Name != "acme" {
		t.Errorf("member's organizations: %+v", orgs)
	}

	// Every change is audited with its actor.
	seen := map[string]int{}
	for _, e := range h.audits(acme, 0) {
		if e.Actor == "user:root" {
			seen[e.Event]++
		}
	}
	for _, ev := range []string{"USER_CREATED", "ROLE_CREATED", "ROLE_BOUND", "ROLE_UNBOUND", "ROLE_DELETED"} {
		if seen[ev] == 0 {
			t.Errorf("no %s entry by user:root (seen %v)", ev, seen)
		}
	}
}

// TestHelloCarriesSessionKeys: the fleet hands the hub's public keys to
// every agent in the hello reply, and they verify the hub's sessions.
func TestHelloCarriesSessionKeys(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme := h.newOrg("acme")
	ada := h.newUser(acme, "ada", binding{Scope: "ORGANIZATION", Role: "ADMIN"})
	ctx := t.Context()
	inst := state.Installation{ID: "ins_1", OrgID: acme.ID, EnvIDs: []string{acme.Env["Prod"].ID}, CredentialHash: "c1", AgentVersion: "1"}
	if err := h.store.CreateInstallation(ctx, inst); err != nil {
		t.Fatal(err)
	}
	rep, err := h.fleet.Hello(ctx, inst.ID, inst.OrgID, inst.EnvIDs, &protocol.Hello{AgentVersion: "1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(h.auth.PublicKeys(), rep.SessionKeys); d != "" || len(rep.SessionKeys) != 1 {
		t.Fatalf("SessionKeys (-want +got):\n%s", d)
	}
	c, err := session.Verify(ada.Session, decodeKeys(t, rep.SessionKeys), acme.ID, h.clock.now())
	if err != nil || c.UserID() != ada.ID {
		t.Errorf("agent-side verification: %+v, %v", c, err)
	}
}
