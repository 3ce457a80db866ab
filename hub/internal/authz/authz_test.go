package authz

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// TestRoleTable pins every built-in role's permissions: one row per role,
// one column per permission.
func TestRoleTable(t *testing.T) {
	all := []session.Permission{
		session.EnvAPICreate, session.EnvAPIRead, session.EnvAPIUpdate, session.EnvAPIDelete,
		session.APIDefCreate, session.APIDefRead, session.APIDefUpdate, session.APIDefDelete,
	}
	const (
		y = true
		n = false
	)
	for _, tc := range []struct {
		scope    state.Scope
		name     string
		orgAdmin bool
		// ENVIRONMENT_API C R U D, API_DEFINITION C R U D
		has [8]bool
	}{
		{state.ScopeOrganization, RoleAdmin, y, [8]bool{n, n, n, n, n, n, n, n}},
		{state.ScopeOrganization, RoleUser, n, [8]bool{n, n, n, n, n, n, n, n}},
		{state.ScopeEnvironment, RoleAdmin, n, [8]bool{y, y, y, y, y, y, y, y}},
		{state.ScopeEnvironment, RoleAPIPublisher, n, [8]bool{y, y, y, n, n, n, n, n}},
		{state.ScopeEnvironment, RoleUser, n, [8]bool{n, y, n, n, n, n, n, n}},
		{state.ScopeAPI, RoleOwner, n, [8]bool{n, n, n, n, y, y, y, y}},
		{state.ScopeAPI, RoleReviewer, n, [8]bool{n, n, n, n, n, y, n, n}},
		{state.ScopeAPI, RoleUser, n, [8]bool{n, n, n, n, n, y, n, n}},
	} {
		t.Run(string(tc.scope)+" "+tc.name, func(t *testing.T) {
			r, ok := BuiltIn(tc.scope, tc.name)
			if !ok || !r.BuiltIn {
				t.Fatalf("BuiltIn(%s, %s) = %+v, %v", tc.scope, tc.name, r, ok)
			}
			if r.OrgAdmin != tc.orgAdmin {
				t.Errorf("OrgAdmin = %v, want %v", r.OrgAdmin, tc.orgAdmin)
			}
			for i, p := range all {
				got := false
				for _, q := range r.Permissions {
					got = got || q == p
				}
				if got != tc.has[i] {
					t.Errorf("%s: has %v, want %v", p, got, tc.has[i])
				}
			}
		})
	}
	if n := len(BuiltInRoles()); n != 8 {
		t.Errorf("%d built-in roles, want 8 (the table above must cover every one)", n)
	}
	for _, bad := range []struct {
		scope state.Scope
		name  string
	}{{state.ScopeOrganization, RoleOwner}, {state.ScopeAPI, RoleAdmin}, {state.ScopeEnvironment, "admin"}} {
		if _, ok := BuiltIn(bad.scope, bad.name); ok {
			t.Errorf("BuiltIn(%s, %s) exists", bad.scope, bad.name)
		}
	}
}

func TestGrants(t *testing.T) {
	b := func(scope state.Scope, env, cross, role string) state.RoleBinding {
		return state.RoleBinding{Scope: scope, EnvID: env, CrossID: cross, Role: role}
	}
	custom := []state.Role{
		{Scope: state.ScopeEnvironment, Name: "DEPLOYER", Permissions: []string{"ENVIRONMENT_API:UPDATE", "ENVIRONMENT_API:CREATE"}},
		// A stored permission the scope does not allow is ignored.
		{Scope: state.ScopeAPI, Name: "SNEAKY", Permissions: []string{"ENVIRONMENT_API:DELETE", "API_DEFINITION:UPDATE"}},
	}
	got := Grants([]state.RoleBinding{
		b(state.ScopeOrganization, "", "", RoleUser),
		b(state.ScopeEnvironment, "prod", "", RoleUser),
		b(state.ScopeEnvironment, "qa", "", "DEPLOYER"),
		b(state.ScopeAPI, "dev", "x1", RoleOwner),
		b(state.ScopeAPI, "dev", "x2", "SNEAKY"),
		b(state.ScopeAPI, "dev", "x3", "DELETED_ROLE"),
		b(state.ScopeEnvironment, "dev", "", "DEPLOYER_IN_OTHER_SCOPE"),
	}, custom)
	want := session.Claims{
		Env: map[string][]session.Permission{
			"prod": {session.EnvAPIRead},
			"qa":   {session.EnvAPICreate, session.EnvAPIUpdate},
		},
		API: map[string][]session.Permission{
			"dev/x1": {session.APIDefCreate, session.APIDefDelete, session.APIDefRead, session.APIDefUpdate},
			"dev/x2": {session.APIDefUpdate},
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Grants (-want +got):\n%s", d)
	}
	if admin := Grants([]state.RoleBinding{b(state.ScopeOrganization, "", "", RoleAdmin)}, nil); !admin.OrgAdmin {
		t.Error("organization ADMIN is not OrgAdmin")
	}
}

func TestNeed(t *testing.T) {
	dev := state.Environment{ID: "dev", Name: "Dev"}
	prod := state.Environment{ID: "prod", Name: "Prod"}
	c := &session.Claims{
		Env: map[string][]session.Permission{"prod": {session.EnvAPICreate}},
		API: map[string][]session.Permission{"dev/x1": {session.APIDefUpdate}},
	}
	for _, tc := range []struct {
		name string
		err  error
		want string // "" means allowed
	}{
		{"API role", NeedAPI(c, dev, "x1", session.APIDefUpdate), ""},
		{"other API", NeedAPI(c, dev, "x2", session.APIDefUpdate), "needs API_DEFINITION[UPDATE] on API x2 in Dev"},
		{"env partly", NeedEnv(c, prod, session.EnvAPICreate, session.EnvAPIUpdate), "needs ENVIRONMENT_API[UPDATE] on environment Prod"},
		{"env none", NeedEnv(c, dev, session.EnvAPICreate, session.EnvAPIUpdate), "needs ENVIRONMENT_API[CREATE] and ENVIRONMENT_API[UPDATE] on environment Dev"},
		{"any env", NeedEnvAny(c, session.EnvAPIRead, dev, prod), "needs ENVIRONMENT_API[READ] on environment Dev or Prod"},
		{"org admin", NeedOrgAdmin(c), "needs organization ADMIN"},
		{"nil claims", NeedEnv(nil, dev, session.EnvAPIRead), "needs ENVIRONMENT_API[READ] on environment Dev"},
		{"admin", NeedEnv(&session.Claims{OrgAdmin: true}, dev, session.EnvAPIDelete), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "" {
				if tc.err != nil {
					t.Errorf("refused: %v", tc.err)
				}
				return
			}
			var pe *protocol.Error
			if !errors.As(tc.err, &pe) || pe.Code != protocol.CodeForbidden || pe.Message != tc.want {
				t.Errorf("err = %v, want forbidden %q", tc.err, tc.want)
			}
		})
	}
	if !HoldsAnywhere(c, "dev", session.APIDefUpdate) || HoldsAnywhere(c, "prod", session.APIDefUpdate) || HoldsAnywhere(c, "de", session.APIDefUpdate) {
		t.Error("HoldsAnywhere wrong")
	}
}

// memStore is an in-memory Store.
type memStore struct {
	mu       sync.Mutex
	settings map[string]state.Setting
	bindings []state.RoleBinding
	roles    []state.Role
}

func (m *memStore) ListRoleBindings(_ context.Context, f state.RoleBindingFilter) ([]state.RoleBinding, error) {
	var out []state.RoleBinding
	for _, b := range m.bindings {
		if b.OrgID == f.OrgID && (f.UserID == "" || b.UserID == f.UserID) {
			out = append(out, b)
		}
	}
	return out, nil
}

func (m *memStore) ListRoles(_ context.Context, org string) ([]state.Role, error) {
	return m.roles, nil
}

func (m *memStore) InitSetting(_ context.Context, s state.Setting) (state.Setting, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.settings == nil {
		m.settings = map[string]state.Setting{}
	}
	if got, ok := m.settings[s.Name]; ok {
		return got, nil
	}
	m.settings[s.Name] = s
	return s, nil
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestAuthority(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	st := &memStore{
		bindings: []state.RoleBinding{
			{OrgID: "o1", UserID: "u1", Scope: state.ScopeAPI, EnvID: "dev", CrossID: "x1", Role: RoleOwner},
			{OrgID: "o1", UserID: "u1", Scope: state.ScopeEnvironment, EnvID: "prod", Role: "DEPLOYER"},
			{OrgID: "o1", UserID: "u2", Scope: state.ScopeOrganization, Role: RoleAdmin},
		},
		roles: []state.Role{{OrgID: "o1", Scope: state.ScopeEnvironment, Name: "DEPLOYER", Permissions: []string{"ENVIRONMENT_API:CREATE"}}},
	}
	a, err := Open(ctx, st, discard(), Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	// A second hub on the same store signs with the same key.
	b, err := Open(ctx, st, discard(), Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(a.PublicKeys(), b.PublicKeys()); d != "" || len(a.PublicKeys()) != 1 {
		t.Fatalf("two hubs on one store have different keys: %s", d)
	}

	ada := state.User{ID: "u1", OrgID: "o1", Username: "ada", DisplayName: "Ada Lovelace"}
	tok, exp, err := a.Issue(ctx, ada)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(15 * time.Minute)) {
		t.Errorf("expires %v, want %v", exp, now.Add(15*time.Minute))
	}
	c, err := b.Verify(tok, "o1", now.Add(time.Minute))
	if err != nil {
		t.Fatalf("Verify on the second hub: %v", err)
	}
	if c.UserID() != "u1" || c.Org != "o1" || c.Name != "Ada Lovelace" || c.OrgAdmin ||
		!c.CanAPI("dev", "x1", session.APIDefUpdate) || !c.CanEnv("prod", session.EnvAPICreate) || c.CanEnv("prod", session.EnvAPIUpdate) {
		t.Errorf("claims = %+v", c)
	}
	// An agent verifies offline with the keys from the hello.
	var pubs []ed25519.PublicKey
	for _, k := range a.PublicKeys() {
		p, err := session.DecodeKey(k)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, p)
	}
	if _, err := session.Verify(tok, pubs, "o1", now); err != nil {
		t.Errorf("offline verify: %v", err)
	}
	for name, at := range map[string]time.Time{
		"expired":         now.Add(15*time.Minute + session.Leeway + time.Second),
		"not yet (nbf)":   now.Add(-session.Leeway - time.Second),
		"well before iat": now.Add(-time.Hour),
	} {
		if _, err := a.Verify(tok, "o1", at); !errors.Is(err, session.ErrInvalid) {
			t.Errorf("%s: Verify = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := a.Verify(tok, "o2", now); !errors.Is(err, session.ErrInvalid) {
		t.Errorf("other org: Verify = %v, want ErrInvalid", err)
	}
	if _, err := a.Verify(tok, "", now); err != nil {
		t.Errorf("any org: Verify = %v", err)
	}

	admin, err := a.Claims(ctx, state.User{ID: "u2", OrgID: "o1", Username: "root"})
	if err != nil || !admin.OrgAdmin || admin.Name != "root" {
		t.Errorf("admin claims = %+v, %v", admin, err)
	}
	if _, _, err := a.Issue(ctx, state.User{ID: "u3", OrgID: "o1", Disabled: true}); err == nil {
		t.Error("Issue for a disabled user succeeded")
	}
}

func TestLabel(t *testing.T) {
	for in, want := range map[session.Permission]string{
		session.APIDefUpdate: "API_DEFINITION[UPDATE]",
		session.EnvAPIRead:   "ENVIRONMENT_API[READ]",
		"ODD":                "ODD",
	} {
		if got := Label(in); got != want {
			t.Errorf("Label(%s) = %s, want %s", in, got, want)
		}
	}
}
