package faultstore_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/state"
)

// TestIdentityFailClosed is E3 for identity management: while audit appends
// fail (and nothing else does), creating a user, a role, a binding or a
// token answers 503 with Retry-After and changes nothing; once the trail
// can be written the same requests succeed, each with its entry. A change
// that is audited and then fails (a username taken) leaves an
// ACTION_NOT_DONE entry after its own, so the trail claims nothing false.
func TestIdentityFailClosed(t *testing.T) {
	st, srv := newAPI(t)
	createDemo(t, srv, "Prod")
	ctx := context.Background()
	org, err := st.Org(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	entries := func() []state.AuditEntry {
		t.Helper()
		es, err := st.ListAudit(ctx, state.AuditFilter{OrgID: org.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	changes := []call{
		{"create user", "POST", "/api/v1/orgs/demo/users", `{"username":"ada","displayName":"Ada"}`, http.StatusCreated},
		{"create role", "POST", "/api/v1/orgs/demo/roles", `{"scope":"ENVIRONMENT","name":"AUDITOR","permissions":["ENVIRONMENT_API:READ"]}`, http.StatusCreated},
	}

	before := len(entries())
	st.FailOnly(nil, "AppendAudit")
	for _, c := range changes {
		status, h, b := do(t, srv, c)
		if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(b, "nothing was changed") {
			t.Errorf("%s while the trail fails: %d (Retry-After %q) %s; want 503 saying nothing was changed", c.name, status, h.Get("Retry-After"), b)
		}
	}
	st.Recover()
	if users, err := st.ListUsers(ctx, org.ID); err != nil || len(users) != 0 {
		t.Errorf("users after the refused request: %d, %v; want none", len(users), err)
	}
	if roles, err := st.ListRoles(ctx, org.ID); err != nil || len(roles) != 0 {
		t.Errorf("roles after the refused request: %d, %v; want none", len(roles), err)
	}
	if n := len(entries()); n != before {
		t.Errorf("audit entries: %d before, %d after the refused requests", before, n)
	}

	for _, c := range changes {
		if status, _, b := do(t, srv, c); status != c.ok {
			t.Fatalf("%s with the trail back: %d %s", c.name, status, b)
		}
	}
	es := entries()[before:]
	if len(es) != 2 || es[0].Event != audit.UserCreated || es[1].Event != audit.RoleCreated {
		t.Fatalf("entries after the changes: %+v, want USER_CREATED then ROLE_CREATED", es)
	}

	// The same username again: audited, refused by the store, and the
	// trail says it was not done.
	dup := call{"create user again", "POST", "/api/v1/orgs/demo/users", `{"username":"ada","displayName":"Ada Again"}`, http.StatusConflict}
	if status, _, b := do(t, srv, dup); status != dup.ok {
		t.Fatalf("%s: %d %s, want 409", dup.name, status, b)
	}
	es = entries()[before+2:]
	if len(es) != 2 || es[0].Event != audit.UserCreated || es[1].Event != audit.ActionNotDone ||
		!strings.Contains(es[1].Detail, "USER_CREATED") || !strings.Contains(es[1].Detail, "taken") {
		t.Fatalf("entries after the refused duplicate: %+v, want USER_CREATED then ACTION_NOT_DONE naming it and why", es)
	}
	if status, _, b := do(t, srv, call{name: "verify", method: "GET", path: "/api/v1/orgs/demo/audit/_verify"}); status != http.StatusOK || !strings.Contains(b, `"ok":true`) {
		t.Errorf("audit verify: %d %s", status, b)
	}
}
