package browsertest

import (
	"net/http"
	"testing"
)

// createUsers creates the seed's users through the hub's REST API with the
// platform admin token: alice administers Dev, bob administers Prod, carol
// administers the organization (the hub console's user).
func createUsers(t *testing.T, w *world) {
	t.Helper()
	for _, u := range []struct{ name, display, scope, env string }{
		{devUser, "Alice (Dev admin)", "ENVIRONMENT", "Dev"},
		{prodUser, "Bob (Prod admin)", "ENVIRONMENT", "Prod"},
		{orgAdmin, "Carol (organization admin)", "ORGANIZATION", ""},
	} {
		w.hub.mustCall(t, http.StatusCreated, "POST", "/api/v1/orgs/"+orgName+"/users",
			map[string]any{"username": u.name, "displayName": u.display, "password": userPassword}, nil)
		w.hub.mustCall(t, http.StatusCreated, "POST", "/api/v1/orgs/"+orgName+"/role-bindings",
			map[string]any{"userId": u.name, "scope": u.scope, "env": u.env, "role": "ADMIN"}, nil)
	}
}
