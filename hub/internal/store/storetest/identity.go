package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
)

// userTokens returns tokens of o1: t1 and t2 of user u1, t3 of user u2.
func userTokens() []state.APIToken {
	return []state.APIToken{
		{ID: "t1", Hash: "h-t1", OrgID: "o1", UserID: "u1", Name: "ci", CreatedAt: at(time.Minute)},
		{ID: "t2", Hash: "h-t2", OrgID: "o1", UserID: "u1", Name: "laptop", CreatedAt: at(2 * time.Minute), ExpiresAt: at(time.Hour)},
		{ID: "t3", Hash: "h-t3", OrgID: "o1", UserID: "u2", Name: "ci", CreatedAt: at(time.Minute)},
		{ID: "t4", Hash: "h-t4", OrgID: "o2", UserID: "u9", Name: "other org", CreatedAt: at(time.Minute)},
	}
}

func testAPITokenLifecycle(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	toks := userTokens()
	for _, tok := range toks {
		must(t, "CreateAPIToken("+tok.ID+")", s.CreateAPIToken(ctx, tok))
	}
	t1, t2, t3 := toks[0], toks[1], toks[2]

	for _, tc := range []struct {
		name        string
		org, userID string
		want        []state.APIToken
	}{
		{"org", "o1", "", []state.APIToken{t1, t3, t2}}, // by creation time, then id
		{"user", "o1", "u1", []state.APIToken{t1, t2}},
		{"user of another org", "o2", "u1", nil},
		{"no such org", "o9", "", nil},
	} {
		t.Run("list "+tc.name, func(t *testing.T) {
			got, err := s.ListAPITokens(ctx, tc.org, tc.userID)
			must(t, "ListAPITokens", err)
			diff(t, "ListAPITokens", tc.want, got)
		})
	}

	// Revoke: once; a second revoke keeps the first time.
	got, err := s.RevokeAPIToken(ctx, "o1", "t1", at(time.Hour+1500*time.Microsecond))
	must(t, "RevokeAPIToken", err)
	t1.RevokedAt = at(time.Hour + time.Millisecond)
	diff(t, "revoked token", t1, got)
	got, err = s.RevokeAPIToken(ctx, "o1", "t1", at(2*time.Hour))
	must(t, "RevokeAPIToken again", err)
	diff(t, "revoked twice", t1, got)
	byHash, err := s.APITokenByHash(ctx, "h-t1")
	must(t, "APITokenByHash", err)
	diff(t, "revoked token by hash", t1, byHash)
	_, err = s.RevokeAPIToken(ctx, "o2", "t2", at(time.Hour))
	checkErr(t, "RevokeAPIToken(other org)", err, state.ErrNotFound)
	_, err = s.RevokeAPIToken(ctx, "o1", "nope", at(time.Hour))
	checkErr(t, "RevokeAPIToken(unknown)", err, state.ErrNotFound)
	if got, err := s.APITokenByHash(ctx, "h-t2"); err != nil || !got.RevokedAt.IsZero() {
		t.Errorf("t2 after a revoke from another org: %+v, %v; want unrevoked", got, err)
	}

	// Touch: only when the last use is older than ifBefore.
	for _, tc := range []struct {
		name         string
		id           string
		now, before  time.Time
		wantLastUsed time.Time
		wantErr      error
	}{
		{"first use", "t3", at(10 * time.Minute), at(9 * time.Minute), at(10 * time.Minute), nil},
		{"again too soon", "t3", at(10*time.Minute + 30*time.Second), at(9*time.Minute + 30*time.Second), at(10 * time.Minute), nil},
		{"exactly a minute later", "t3", at(11 * time.Minute), at(10 * time.Minute), at(10 * time.Minute), nil},
		{"over a minute later", "t3", at(11*time.Minute + time.Second), at(10*time.Minute + time.Second), at(11*time.Minute + time.Second), nil},
		{"unknown", "nope", at(time.Hour), at(time.Hour), time.Time{}, state.ErrNotFound},
	} {
		t.Run("touch "+tc.name, func(t *testing.T) {
			checkErr(t, "TouchAPIToken", s.TouchAPIToken(ctx, tc.id, tc.now, tc.before), tc.wantErr)
			if tc.wantErr != nil {
				return
			}
			got, err := s.APITokenByHash(ctx, "h-"+tc.id)
			must(t, "APITokenByHash", err)
			if !got.LastUsedAt.Equal(tc.wantLastUsed) {
				t.Errorf("LastUsedAt = %v, want %v", got.LastUsedAt, tc.wantLastUsed)
			}
			checkUTC(t, "LastUsedAt", got.LastUsedAt)
		})
	}
}

func testTouchAPITokenConcurrent(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	tok := userTokens()[0]
	must(t, "CreateAPIToken", s.CreateAPIToken(ctx, tok))
	// Every caller saw the token unused and tries to record a use; the
	// latest time wins whatever the order, since a later touch only
	// replaces an older one.
	errs := race(racers, func(i int) error {
		return s.TouchAPIToken(ctx, tok.ID, at(time.Duration(i)*time.Second), at(time.Hour))
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("TouchAPIToken %d: %v", i, err)
		}
	}
	got, err := s.APITokenByHash(ctx, tok.Hash)
	must(t, "APITokenByHash", err)
	if got.LastUsedAt.IsZero() {
		t.Error("LastUsedAt is zero after concurrent touches")
	}
}

// user returns user id of org named username.
func user(id, org, username string) state.User {
	return state.User{
		ID: id, OrgID: org, Username: username, DisplayName: "User " + username,
		PasswordHash: "$argon2id$hash-of-" + username, CreatedAt: base,
	}
}

func testUsers(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	seedOrg(t, s, "o1", "acme")
	seedOrg(t, s, "o2", "globex")
	ada := user("u1", "o1", "ada")
	ada.CreatedAt = at(1500 * time.Microsecond)
	bob := user("u2", "o1", "bob")
	bob.Disabled = true
	// A username equal to another user's id: lookups by id win.
	tricky := user("u3", "o1", "u1")
	otherAda := user("u4", "o2", "ada")
	for _, u := range []state.User{ada, bob, tricky, otherAda} {
		must(t, "CreateUser("+u.ID+")", s.CreateUser(ctx, u))
	}
	ada.CreatedAt = at(time.Millisecond)

	for _, tc := range []struct {
		name, org, lookup string
		want              state.User
		wantErr           error
	}{
		{"by id", "o1", "u1", ada, nil},
		{"by username", "o1", "ada", ada, nil},
		{"disabled", "o1", "bob", bob, nil},
		{"same username other org", "o2", "ada", otherAda, nil},
		{"id of another org", "o2", "u1", state.User{}, state.ErrNotFound},
		{"username of another org", "o1", "u4", state.User{}, state.ErrNotFound},
		{"unknown", "o1", "carol", state.User{}, state.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.User(ctx, tc.org, tc.lookup)
			checkErr(t, "User", err, tc.wantErr)
			diff(t, "User", tc.want, got)
			checkUTC(t, "User", got.CreatedAt)
		})
	}

	for _, tc := range []struct {
		name    string
		u       state.User
		wantErr error
	}{
		{"duplicate username in org", user("u9", "o1", "ada"), state.ErrConflict},
		{"duplicate id", user("u1", "o2", "zed"), state.ErrConflict},
		{"unknown org", user("u8", "o9", "zed"), state.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateUser", s.CreateUser(ctx, tc.u), tc.wantErr)
		})
	}

	got, err := s.ListUsers(ctx, "o1")
	must(t, "ListUsers", err)
	diff(t, "ListUsers(o1) (by username)", []state.User{ada, bob, tricky}, got)
	got, err = s.ListUsers(ctx, "o9")
	must(t, "ListUsers(o9)", err)
	diff(t, "ListUsers(o9)", []state.User(nil), got)
}

func testUpdateUser(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	seedOrg(t, s, "o1", "acme")
	seedOrg(t, s, "o2", "globex")
	want := user("u1", "o1", "ada")
	must(t, "CreateUser", s.CreateUser(ctx, want))
	name, yes, no := "Ada Lovelace", true, false
	for _, tc := range []struct {
		name   string
		u      state.UserUpdate
		change func(*state.User)
	}{
		{"nothing", state.UserUpdate{}, func(*state.User) {}},
		{"display name", state.UserUpdate{DisplayName: &name}, func(u *state.User) { u.DisplayName = name }},
		{"disable", state.UserUpdate{Disabled: &yes}, func(u *state.User) { u.Disabled = true }},
		{"password", state.UserUpdate{PasswordHash: "new-hash"}, func(u *state.User) { u.PasswordHash = "new-hash" }},
		{"enable and rename", state.UserUpdate{Disabled: &no, DisplayName: new(string)}, func(u *state.User) { u.Disabled, u.DisplayName = false, "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.change(&want)
			got, err := s.UpdateUser(ctx, "o1", "u1", tc.u)
			must(t, "UpdateUser", err)
			diff(t, "UpdateUser", want, got)
			stored, err := s.User(ctx, "o1", "u1")
			must(t, "User", err)
			diff(t, "stored user", want, stored)
		})
	}
	_, err := s.UpdateUser(ctx, "o2", "u1", state.UserUpdate{Disabled: &yes})
	checkErr(t, "UpdateUser(other org)", err, state.ErrNotFound)
	_, err = s.UpdateUser(ctx, "o1", "nope", state.UserUpdate{Disabled: &yes})
	checkErr(t, "UpdateUser(unknown)", err, state.ErrNotFound)
	_, err = s.UpdateUser(ctx, "o1", "nope", state.UserUpdate{})
	checkErr(t, "UpdateUser(unknown, no change)", err, state.ErrNotFound)
}

func testDeleteUser(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	seedOrg(t, s, "o1", "acme")
	seedOrg(t, s, "o2", "globex")
	for _, u := range []state.User{user("u1", "o1", "ada"), user("u2", "o1", "bob")} {
		must(t, "CreateUser", s.CreateUser(ctx, u))
	}
	for _, tok := range userTokens()[:3] {
		must(t, "CreateAPIToken", s.CreateAPIToken(ctx, tok))
	}
	keep := binding("b3", "u2", state.ScopeOrganization, "", "", "ADMIN")
	for _, b := range []state.RoleBinding{
		binding("b1", "u1", state.ScopeOrganization, "", "", "ADMIN"),
		binding("b2", "u1", state.ScopeEnvironment, "e1", "", "USER"),
		keep,
	} {
		must(t, "CreateRoleBinding", s.CreateRoleBinding(ctx, b))
	}
	checkErr(t, "DeleteUser(other org)", s.DeleteUser(ctx, "o2", "u1"), state.ErrNotFound)
	must(t, "DeleteUser", s.DeleteUser(ctx, "o1", "u1"))
	checkErr(t, "DeleteUser(again)", s.DeleteUser(ctx, "o1", "u1"), state.ErrNotFound)
	_, err := s.User(ctx, "o1", "u1")
	checkErr(t, "User(deleted)", err, state.ErrNotFound)
	toks, err := s.ListAPITokens(ctx, "o1", "")
	must(t, "ListAPITokens", err)
	diff(t, "tokens left", []state.APIToken{userTokens()[2]}, toks)
	bs, err := s.ListRoleBindings(ctx, state.RoleBindingFilter{OrgID: "o1"})
	must(t, "ListRoleBindings", err)
	diff(t, "bindings left", []state.RoleBinding{keep}, bs)
}

// binding returns a role binding of o1.
func binding(id, userID string, scope state.Scope, env, cross, role string) state.RoleBinding {
	return state.RoleBinding{ID: id, OrgID: "o1", UserID: userID, Scope: scope, EnvID: env, CrossID: cross, Role: role, CreatedAt: base}
}

func testRoleBindings(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	orgAdmin := binding("b1", "u1", state.ScopeOrganization, "", "", "ADMIN")
	envPub := binding("b2", "u1", state.ScopeEnvironment, "e1", "", "API_PUBLISHER")
	envPub.CreatedAt = at(time.Second)
	owner := binding("b3", "u1", state.ScopeAPI, "e1", "c1", "OWNER")
	owner.CreatedAt = at(2 * time.Second)
	otherAPI := binding("b4", "u1", state.ScopeAPI, "e1", "c2", "REVIEWER")
	otherAPI.CreatedAt = at(2 * time.Second) // ties broken by id
	bob := binding("b5", "u2", state.ScopeEnvironment, "e2", "", "USER")
	foreign := state.RoleBinding{ID: "b6", OrgID: "o2", UserID: "u9", Scope: state.ScopeOrganization, Role: "ADMIN", CreatedAt: base}
	for _, b := range []state.RoleBinding{orgAdmin, envPub, owner, otherAPI, bob, foreign} {
		must(t, "CreateRoleBinding("+b.ID+")", s.CreateRoleBinding(ctx, b))
	}
	for _, tc := range []struct {
		name    string
		b       state.RoleBinding
		wantErr error
	}{
		{"second org role", binding("b9", "u1", state.ScopeOrganization, "", "", "USER"), state.ErrConflict},
		{"second env role", binding("b9", "u1", state.ScopeEnvironment, "e1", "", "USER"), state.ErrConflict},
		{"second API role", binding("b9", "u1", state.ScopeAPI, "e1", "c1", "USER"), state.ErrConflict},
		{"duplicate id", binding("b1", "u3", state.ScopeOrganization, "", "", "USER"), state.ErrConflict},
		{"same API in another env", binding("b7", "u1", state.ScopeAPI, "e2", "c1", "OWNER"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateRoleBinding", s.CreateRoleBinding(ctx, tc.b), tc.wantErr)
		})
	}
	sameAPI := binding("b7", "u1", state.ScopeAPI, "e2", "c1", "OWNER")

	for _, tc := range []struct {
		name string
		f    state.RoleBindingFilter
		want []state.RoleBinding
	}{
		{"org", state.RoleBindingFilter{OrgID: "o1"}, []state.RoleBinding{orgAdmin, bob, sameAPI, envPub, owner, otherAPI}},
		{"user", state.RoleBindingFilter{OrgID: "o1", UserID: "u1"}, []state.RoleBinding{orgAdmin, sameAPI, envPub, owner, otherAPI}},
		{"env", state.RoleBindingFilter{OrgID: "o1", EnvID: "e2"}, []state.RoleBinding{bob, sameAPI}},
		{"user of another org", state.RoleBindingFilter{OrgID: "o2", UserID: "u1"}, nil},
	} {
		t.Run("list "+tc.name, func(t *testing.T) {
			got, err := s.ListRoleBindings(ctx, tc.f)
			must(t, "ListRoleBindings", err)
			diff(t, "ListRoleBindings", tc.want, got)
		})
	}

	checkErr(t, "DeleteRoleBinding(other org)", s.DeleteRoleBinding(ctx, "o2", "b1"), state.ErrNotFound)
	must(t, "DeleteRoleBinding", s.DeleteRoleBinding(ctx, "o1", "b1"))
	checkErr(t, "DeleteRoleBinding(again)", s.DeleteRoleBinding(ctx, "o1", "b1"), state.ErrNotFound)
	// The key is free again.
	must(t, "CreateRoleBinding after delete", s.CreateRoleBinding(ctx, binding("b8", "u1", state.ScopeOrganization, "", "", "USER")))
}

func testRoles(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	deployer := state.Role{OrgID: "o1", Scope: state.ScopeEnvironment, Name: "DEPLOYER",
		Permissions: []string{"ENVIRONMENT_API:CREATE", "ENVIRONMENT_API:UPDATE"}, CreatedAt: base}
	apiDeployer := deployer
	apiDeployer.Scope, apiDeployer.Permissions = state.ScopeAPI, []string{"API_DEFINITION:UPDATE"}
	auditor := state.Role{OrgID: "o1", Scope: state.ScopeEnvironment, Name: "AUDITOR", CreatedAt: at(time.Second)} // no permissions
	foreign := deployer
	foreign.OrgID = "o2"
	for _, r := range []state.Role{deployer, apiDeployer, auditor, foreign} {
		must(t, fmt.Sprintf("CreateRole(%s %s %s)", r.OrgID, r.Scope, r.Name), s.CreateRole(ctx, r))
	}
	checkErr(t, "CreateRole(duplicate)", s.CreateRole(ctx, deployer), state.ErrConflict)
	got, err := s.ListRoles(ctx, "o1")
	must(t, "ListRoles", err)
	diff(t, "ListRoles (by scope, name)", []state.Role{apiDeployer, auditor, deployer}, got)

	checkErr(t, "DeleteRole(unknown)", s.DeleteRole(ctx, "o1", state.ScopeAPI, "AUDITOR"), state.ErrNotFound)
	must(t, "DeleteRole", s.DeleteRole(ctx, "o1", state.ScopeEnvironment, "DEPLOYER"))
	checkErr(t, "DeleteRole(again)", s.DeleteRole(ctx, "o1", state.ScopeEnvironment, "DEPLOYER"), state.ErrNotFound)
	got, err = s.ListRoles(ctx, "o1")
	must(t, "ListRoles", err)
	diff(t, "ListRoles after delete", []state.Role{apiDeployer, auditor}, got)
	got, err = s.ListRoles(ctx, "o2")
	must(t, "ListRoles(o2)", err)
	diff(t, "ListRoles(o2)", []state.Role{foreign}, got)
}

func testInitSetting(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	first := state.Setting{Name: "session_key", Value: []byte{0, 1, 2, 0xff}, CreatedAt: at(1500 * time.Microsecond)}
	got, err := s.InitSetting(ctx, first)
	must(t, "InitSetting", err)
	first.CreatedAt = at(time.Millisecond)
	diff(t, "first InitSetting", first, got)
	got, err = s.InitSetting(ctx, state.Setting{Name: "session_key", Value: []byte("second"), CreatedAt: at(time.Hour)})
	must(t, "InitSetting again", err)
	diff(t, "second InitSetting returns the first value", first, got)
	other := state.Setting{Name: "other", Value: []byte("x"), CreatedAt: base}
	got, err = s.InitSetting(ctx, other)
	must(t, "InitSetting(other)", err)
	diff(t, "another name", other, got)
	if _, err := s.InitSetting(ctx, state.Setting{Name: "empty"}); err == nil || errors.Is(err, state.ErrNotFound) {
		t.Errorf("InitSetting without a value = %v, want an invalid-request error", err)
	}
}

func testInitSettingConcurrent(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	const n = racers
	got := make([]state.Setting, n)
	errs := race(n, func(i int) error {
		var err error
		got[i], err = s.InitSetting(ctx, state.Setting{Name: "k", Value: []byte{byte(i + 1)}, CreatedAt: base})
		return err
	})
	for i, err := range errs {
		must(t, fmt.Sprintf("InitSetting %d", i), err)
	}
	for i := range got {
		if !bytes.Equal(got[i].Value, got[0].Value) {
			t.Errorf("caller %d got %v, caller 0 got %v: hubs would disagree", i, got[i].Value, got[0].Value)
		}
	}
}
