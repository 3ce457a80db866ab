package server

import (
	"net/http"
	"strings"
	"testing"

	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// TestBOLA: an admin of organization A, with a session or a personal access
// token, gets 404 on every id route of organization B, exactly as for an id
// that does not exist, whether the route names B or A; B is unchanged.
func TestBOLA(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	a, b := h.newOrg("acme"), h.newOrg("globex")
	attacker := h.newUser(a, "mallory", binding{Scope: "ORGANIZATION", Role: "ADMIN"})
	victim := h.newUser(b, "victor", binding{Scope: "ORGANIZATION", Role: "ADMIN"})
	h.must(http.StatusCreated, testAdminToken, "POST", "/api/v1/orgs/globex/roles",
		map[string]any{"scope": "API", "name": "SHIPPER", "permissions": []string{"API_DEFINITION:UPDATE"}}, nil)
	var bindings struct{ Items []struct{ ID string } }
	h.must(http.StatusOK, testAdminToken, "GET", "/api/v1/orgs/globex/role-bindings?userId="+victim.ID, nil, &bindings)
	var toks struct{ Items []struct{ ID string } }
	h.must(http.StatusOK, testAdminToken, "GET", "/api/v1/orgs/globex/tokens?userId=victor", nil, &toks)
	if len(bindings.Items) != 1 || len(toks.Items) != 1 {
		t.Fatalf("globex fixtures: %+v %+v", bindings, toks)
	}
	bindingID, tokenID := bindings.Items[0].ID, toks.Items[0].ID
	prom := h.fixture(b, "Prod", "bx", victim.ID, "user:victor")
	bProd := b.Env["Prod"].ID
	bInst := state.Installation{ID: "ins_globex_prod", OrgID: b.ID, EnvIDs: []string{bProd}, CredentialHash: "hash-of-globex-credential", CreatedAt: h.clock.now().UTC()}
	if err := h.store.CreateInstallation(t.Context(), bInst); err != nil {
		t.Fatal(err)
	}

	routes := []struct {
		method, path string
		body         any
	}{
		// Routes that name organization B, by name and by id.
		{"GET", "/api/v1/orgs/globex", nil},
		{"GET", "/api/v1/orgs/" + b.ID, nil},
		{"GET", "/api/v1/orgs/globex/environments", nil},
		{"POST", "/api/v1/orgs/globex/environments", map[string]string{"name": "Evil"}},
		{"POST", "/api/v1/orgs/globex/environments/Prod/link-tokens", nil},
		{"GET", "/api/v1/orgs/globex/installations", nil},
		{"DELETE", "/api/v1/orgs/globex/installations/" + bInst.ID, nil},
		{"POST", "/api/v1/orgs/globex/installations/" + bInst.ID + "/_rotate-credential", nil},
		{"POST", "/api/v1/orgs/globex/promotions", map[string]string{"apiId": "api-bx", "sourceEnv": "Dev", "targetEnv": "Prod"}},
		{"GET", "/api/v1/orgs/globex/promotions", nil},
		{"GET", "/api/v1/orgs/globex/promotions/" + prom.ID, nil},
		{"POST", "/api/v1/orgs/globex/promotions/" + prom.ID + "/_cancel", nil},
		{"GET", "/api/v1/orgs/globex/audit", nil},
		{"GET", "/api/v1/orgs/globex/audit/_verify", nil},
		{"POST", "/api/v1/orgs/globex/users", map[string]string{"username": "evil", "password": "a-long-password"}},
		{"GET", "/api/v1/orgs/globex/users", nil},
		{"GET", "/api/v1/orgs/globex/users/" + victim.ID, nil},
		{"PATCH", "/api/v1/orgs/globex/users/" + victim.ID, map[string]bool{"disabled": true}},
		{"DELETE", "/api/v1/orgs/globex/users/" + victim.ID, nil},
		{"POST", "/api/v1/orgs/globex/role-bindings", map[string]string{"userId": attacker.ID, "scope": "ORGANIZATION", "role": "ADMIN"}},
		{"GET", "/api/v1/orgs/globex/role-bindings", nil},
		{"DELETE", "/api/v1/orgs/globex/role-bindings/" + bindingID, nil},
		{"POST", "/api/v1/orgs/globex/roles", map[string]any{"scope": "API", "name": "EVIL", "permissions": []string{"API_DEFINITION:READ"}}},
		{"GET", "/api/v1/orgs/globex/roles", nil},
		{"DELETE", "/api/v1/orgs/globex/roles/API/SHIPPER", nil},
		{"POST", "/api/v1/orgs/globex/tokens", map[string]string{"userId": victim.ID, "name": "stolen"}},
		{"GET", "/api/v1/orgs/globex/tokens", nil},
		{"DELETE", "/api/v1/orgs/globex/tokens/" + tokenID, nil},
		// Routes of organization A that carry B's ids.
		{"GET", "/api/v1/orgs/acme/promotions/" + prom.ID, nil},
		{"POST", "/api/v1/orgs/acme/promotions/" + prom.ID + "/_cancel", nil},
		{"GET", "/api/v1/orgs/acme/promotions?env=" + bProd, nil},
		{"GET", "/api/v1/orgs/acme/promotions?sourceEnv=" + b.Env["Dev"].ID, nil},
		{"GET", "/api/v1/orgs/acme/audit?env=" + bProd, nil},
		{"POST", "/api/v1/orgs/acme/environments/" + bProd + "/link-tokens", nil},
		{"DELETE", "/api/v1/orgs/acme/installations/" + bInst.ID, nil},
		{"POST", "/api/v1/orgs/acme/installations/" + bInst.ID + "/_rotate-credential", nil},
		{"POST", "/api/v1/orgs/acme/promotions", map[string]string{"apiId": "api-bx", "sourceEnv": b.Env["Dev"].ID, "targetEnv": "Prod"}},
		{"POST", "/api/v1/orgs/acme/promotions", map[string]string{"apiId": "api-ax", "sourceEnv": "Dev", "targetEnv": bProd}},
		{"GET", "/api/v1/orgs/acme/users/" + victim.ID, nil},
		{"PATCH", "/api/v1/orgs/acme/users/" + victim.ID, map[string]bool{"disabled": true}},
		{"DELETE", "/api/v1/orgs/acme/users/" + victim.ID, nil},
		{"POST", "/api/v1/orgs/acme/role-bindings", map[string]string{"userId": victim.ID, "scope": "ORGANIZATION", "role": "USER"}},
		{"POST", "/api/v1/orgs/acme/role-bindings", map[string]string{"userId": attacker.ID, "scope": "ENVIRONMENT", "env": bProd, "role": "ADMIN"}},
		{"GET", "/api/v1/orgs/acme/role-bindings?userId=" + victim.ID, nil},
		{"GET", "/api/v1/orgs/acme/role-bindings?env=" + bProd, nil},
		{"DELETE", "/api/v1/orgs/acme/role-bindings/" + bindingID, nil},
		{"DELETE", "/api/v1/orgs/acme/roles/API/SHIPPER", nil},
		{"POST", "/api/v1/orgs/acme/tokens", map[string]string{"userId": victim.ID, "name": "stolen"}},
		{"GET", "/api/v1/orgs/acme/tokens?userId=" + victim.ID, nil},
		{"DELETE", "/api/v1/orgs/acme/tokens/" + tokenID, nil},
	}
	before := h.snapshot(b)
	// A missing id answers the same bytes as another organization's.
	_, missing := h.do(attacker.Session, "GET", "/api/v1/orgs/acme/promotions/prm_nope", nil, nil)
	for _, cred := range []struct{ kind, token string }{{"session", attacker.Session}, {"pat", attacker.PAT}} {
		for _, r := range routes {
			st, body := h.do(cred.token, r.method, r.path, r.body, nil)
			if st != http.StatusNotFound || !strings.Contains(body, `"code":"not_found"`) {
				t.Errorf("%s %s %s: %d %s, want 404", cred.kind, r.method, r.path, st, body)
			}
			if strings.Contains(r.path, "/promotions/") && body != missing {
				t.Errorf("%s %s %s answers %s; a missing promotion answers %s", cred.kind, r.method, r.path, body, missing)
			}
		}
	}
	after := h.snapshot(b)
	// The trail of B only gained nothing (refusals for B's name are
	// recorded in A's trail, the caller's).
	if after != before {
		t.Errorf("globex changed: before %+v, after %+v", before, after)
	}
	if got := h.promotionStatus(prom.ID); got != protocol.PromotionCreated {
		t.Errorf("globex's promotion is %s", got)
	}
	// The victim still works.
	h.must(http.StatusOK, victim.PAT, "GET", "/api/v1/orgs/globex/users/victor", nil, nil)
	// The attacker's refusals naming globex are in acme's trail.
	n := 0
	for _, e := range h.audits(a, 0) {
		if e.Event == "ACCESS_DENIED" && e.Actor == "user:mallory" && strings.Contains(e.Detail, "not visible") {
			n++
		}
	}
	if n != 2*28 {
		t.Errorf("%d ACCESS_DENIED entries for routes naming globex in acme's trail, want %d", n, 2*28)
	}
	for _, e := range h.audits(a, 0) {
		if e.Event == "CREDENTIAL_ROTATED" || (e.Event == "ACTION_NOT_DONE" && strings.HasPrefix(e.Detail, "CREDENTIAL_ROTATED")) {
			t.Errorf("acme's trail has %s %q: a refused rotation is not audited as one", e.Event, e.Detail)
		}
	}
	if got, err := h.store.Installation(t.Context(), bInst.ID); err != nil || got.CredentialHash != bInst.CredentialHash || got.PreviousCredentialHash != "" {
		t.Errorf("globex's installation after the attempts: %+v, %v", got, err)
	}
}
