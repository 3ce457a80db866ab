package server

import (
	"net/http"
	"strings"
	"testing"
)

// Route policies, as TestRoutePolicies declares them.
const (
	policyPublic        = "public"         // anyone: probes and metrics
	policyOwnCredential = "own credential" // the request proves itself: a password, a link token, an installation credential
	policyAuthenticated = "authenticated"  // any valid token or session
	policyMember        = "member"         // authenticated; other organizations are hidden, each object checks a permission
	policyOrgAdmin      = "org admin"      // the organization's ADMIN role, or the platform admin
	policyPlatform      = "platform admin" // the platform admin token only
)

// routePolicies is the REST API's route table with each route's policy.
// A route added to the API without a line here fails TestRoutePolicies.
var routePolicies = map[string]string{
	"GET /healthz":                                                policyPublic,
	"GET /readyz":                                                 policyPublic,
	"GET /metrics":                                                policyPublic,
	"GET /api/v1/link":                                            policyOwnCredential,
	"POST /api/v1/link/enroll":                                    policyOwnCredential,
	"POST /api/v1/auth/session":                                   policyOwnCredential,
	"GET /api/v1/auth/me":                                         policyAuthenticated,
	"GET /api/v1/orgs":                                            policyAuthenticated,
	"POST /api/v1/orgs":                                           policyPlatform,
	"GET /api/v1/orgs/:org":                                       policyMember,
	"GET /api/v1/orgs/:org/environments":                          policyMember,
	"GET /api/v1/orgs/:org/installations":                         policyMember,
	"POST /api/v1/orgs/:org/promotions":                           policyMember,
	"GET /api/v1/orgs/:org/promotions":                            policyMember,
	"GET /api/v1/orgs/:org/promotions/:id":                        policyMember,
	"POST /api/v1/orgs/:org/promotions/:id/_cancel":               policyMember,
	"POST /api/v1/orgs/:org/environments":                         policyOrgAdmin,
	"POST /api/v1/orgs/:org/environments/:env/link-tokens":        policyOrgAdmin,
	"DELETE /api/v1/orgs/:org/installations/:id":                  policyOrgAdmin,
	"POST /api/v1/orgs/:org/installations/:id/_rotate-credential": policyOrgAdmin,
	"GET /api/v1/orgs/:org/installations/:id/connections":         policyOrgAdmin,
	"GET /api/v1/orgs/:org/audit":                                 policyOrgAdmin,
	"GET /api/v1/orgs/:org/audit/_verify":                         policyOrgAdmin,
	"POST /api/v1/orgs/:org/users":                                policyOrgAdmin,
	"GET /api/v1/orgs/:org/users":                                 policyOrgAdmin,
	"GET /api/v1/orgs/:org/users/:user":                           policyOrgAdmin,
	"PATCH /api/v1/orgs/:org/users/:user":                         policyOrgAdmin,
	"DELETE /api/v1/orgs/:org/users/:user":                        policyOrgAdmin,
	"POST /api/v1/orgs/:org/role-bindings":                        policyOrgAdmin,
	"GET /api/v1/orgs/:org/role-bindings":                         policyOrgAdmin,
	"DELETE /api/v1/orgs/:org/role-bindings/:id":                  policyOrgAdmin,
	"POST /api/v1/orgs/:org/roles":                                policyOrgAdmin,
	"GET /api/v1/orgs/:org/roles":                                 policyOrgAdmin,
	"DELETE /api/v1/orgs/:org/roles/:scope/:name":                 policyOrgAdmin,
	"POST /api/v1/orgs/:org/tokens":                               policyOrgAdmin,
	"GET /api/v1/orgs/:org/tokens":                                policyOrgAdmin,
	"DELETE /api/v1/orgs/:org/tokens/:id":                         policyOrgAdmin,
}

// TestRoutePolicies is catalogue row C4 (default deny): every route the
// REST API registers has a policy declared in routePolicies (and every
// declared policy a route), and the policies hold: without credentials
// every route that is not public or self-proving answers 401; one
// without its own credential is never 2xx; a member of the organization
// with the read-only USER role gets 403 on every organization-admin and
// platform route, with a session and with a personal access token.
// Per-object permissions of member routes are TestPermissionMatrix's.
func TestRoutePolicies(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme := h.newOrg("acme")
	viewer := h.newUser(acme, "viewer", binding{Scope: "ORGANIZATION", Role: "USER"})
	fill := strings.NewReplacer(":org", acme.Name, ":env", "Dev", ":id", "x_1", ":user", "viewer", ":scope", "ENVIRONMENT", ":name", "X")

	routes := h.api.Routes()
	if len(routes) < len(routePolicies)/2 {
		t.Fatalf("only %d routes registered; the walk sees too little", len(routes))
	}
	seen := map[string]bool{}
	for _, r := range routes {
		key := r.Method + " " + r.Path
		seen[key] = true
		policy, ok := routePolicies[key]
		if !ok {
			t.Errorf("%s has no declared policy: add it to routePolicies, and enforce it", key)
			continue
		}
		path := fill.Replace(r.Path)
		var body any
		if r.Method == http.MethodPost || r.Method == http.MethodPatch {
			body = map[string]any{}
		}
		switch policy {
		case policyPublic:
			continue
		case policyOwnCredential:
			if st, b := h.do("", r.Method, path, body, nil); st < 300 {
				t.Errorf("%s without its credential: %d %.200s, want a refusal", key, st, b)
			}
			continue
		}
		if st, b := h.do("", r.Method, path, body, nil); st != http.StatusUnauthorized {
			t.Errorf("%s (%s) without credentials: %d %.200s, want 401", key, policy, st, b)
		}
		if policy == policyOrgAdmin || policy == policyPlatform {
			for name, token := range map[string]string{"session": viewer.Session, "token": viewer.PAT} {
				if st, b := h.do(token, r.Method, path, body, nil); st != http.StatusForbidden {
					t.Errorf("%s (%s) by a USER-role viewer's %s: %d %.200s, want 403", key, policy, name, st, b)
				}
			}
		}
	}
	for key := range routePolicies {
		if !seen[key] {
			t.Errorf("routePolicies declares %s, which is not a route", key)
		}
	}
}

// TestNoCORSForForeignOrigins is R31 at the hub: its console and API are
// same-origin and send bearer tokens, never cookies, so no route answers a
// CORS preflight from another origin with an Access-Control-Allow-*
// header, and none answers it 2xx.
func TestNoCORSForForeignOrigins(t *testing.T) {
	t.Parallel()
	s := startRESTHub(t, nil) // the whole listener: API, link and console
	base := "http://" + s.Addr()
	for _, path := range []string{"/api/v1/orgs", "/api/v1/orgs/acme/promotions", "/api/v1/orgs/acme/tokens", "/api/v1/auth/session", "/api/v1/link", "/console/", "/console/promotions"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodOptions, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for name := range resp.Header {
			if strings.HasPrefix(strings.ToLower(name), "access-control-") {
				t.Errorf("preflight of %s from a foreign origin answered %d with %s: %q", path, resp.StatusCode, name, resp.Header.Get(name))
			}
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			t.Errorf("preflight of %s from a foreign origin answered %d, want a refusal", path, resp.StatusCode)
		}
	}
}
