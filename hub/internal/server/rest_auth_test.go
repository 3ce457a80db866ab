package server

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ferry.dev/hub/internal/api"
	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/state"
)

// lookupCounter is the API's store with its token and credential lookups
// counted.
type lookupCounter struct {
	api.Store
	lookups atomic.Int64
}

func (s *lookupCounter) APITokenByHash(ctx context.Context, hash string) (state.APIToken, error) {
	s.lookups.Add(1)
	return s.Store.APITokenByHash(ctx, hash)
}

func (s *lookupCounter) InstallationByCredential(ctx context.Context, hash string) (state.Installation, error) {
	s.lookups.Add(1)
	return s.Store.InstallationByCredential(ctx, hash)
}

// TestRESTAuthentication checks the refusals of bad credentials (R1, R2,
// R3, R6): 401 unauthenticated with a Bearer challenge, a bad checksum
// refused before any store lookup and counted, and an agent's installation
// credential refused on admin routes with 403.
func TestRESTAuthentication(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	counted := &lookupCounter{}
	h := newTestHub(t, func(d *api.Deps) {
		d.Registerer = reg
		if d.Store != nil {
			counted.Store = d.Store
			d.Store = counted
		}
	})
	h.newOrg("acme")
	rejected := func(reason string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "ferry_hub_auth_rejected_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "reason" && l.GetValue() == reason {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		t.Fatalf("no ferry_hub_auth_rejected_total{reason=%q}", reason)
		return 0
	}
	want401 := func(t *testing.T, resp *http.Response, b string) {
		t.Helper()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401: %s", resp.StatusCode, b)
		}
		if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") {
			t.Errorf("WWW-Authenticate %q, want a Bearer challenge", ch)
		}
		if code := problemCode(t, resp, b); code != "unauthenticated" {
			t.Errorf("code %q, want unauthenticated", code)
		}
	}
	get := func(header string) (*http.Response, string) {
		if header == "" {
			return h.raw("", "GET", "/api/v1/orgs/acme/audit", "", nil)
		}
		return h.raw("", "GET", "/api/v1/orgs/acme/audit", "", nil, "Authorization", header)
	}

	t.Run("R1 no Authorization header", func(t *testing.T) {
		before := rejected("missing")
		resp, b := get("")
		want401(t, resp, b)
		if got := rejected("missing"); got != before+1 {
			t.Errorf("rejected{missing} went %v → %v, want +1", before, got)
		}
	})
	t.Run("R2 empty, padded or wrong-scheme bearer", func(t *testing.T) {
		for _, header := range []string{
			"Bearer", "Bearer ", "Bearer    ", "Bearer  " + testAdminToken, "Bearer \t" + testAdminToken,
			"Bearer " + testAdminToken + " x", "Basic " + testAdminToken, "Token " + testAdminToken, testAdminToken,
			"Bearer" + testAdminToken,
		} {
			resp, b := get(header)
			t.Run(header, func(t *testing.T) { want401(t, resp, b) })
		}
		// The one well-formed header gets through.
		if resp, b := get("Bearer " + testAdminToken); resp.StatusCode != http.StatusOK {
			t.Errorf("well-formed: status %d: %s", resp.StatusCode, b)
		}
	})
	t.Run("R3 bad checksum is refused without a lookup", func(t *testing.T) {
		good := mustSecret(t, "ferry_at_")
		bad := good[:len(good)-1] + flip(good[len(good)-1])
		before, lookups := rejected("checksum"), counted.lookups.Load()
		resp, b := get("Bearer " + bad)
		want401(t, resp, b)
		if n := counted.lookups.Load() - lookups; n != 0 {
			t.Errorf("%d store lookups for a token with a bad checksum, want 0", n)
		}
		if got := rejected("checksum"); got != before+1 {
			t.Errorf("rejected{checksum} went %v → %v, want +1", before, got)
		}
		// A well-formed but unknown token is looked up, and refused.
		resp, b = get("Bearer " + good)
		want401(t, resp, b)
		if counted.lookups.Load() == lookups {
			t.Error("a well-formed token was not looked up")
		}
	})
	t.Run("R6 installation credential on an admin route", func(t *testing.T) {
		var lt struct{ Token string }
		h.must(http.StatusCreated, testAdminToken, "POST", "/api/v1/orgs/acme/environments/Dev/link-tokens", nil, &lt)
		var enrolled struct{ Credential string }
		h.must(http.StatusCreated, lt.Token, "POST", "/api/v1/link/enroll", map[string]string{"agentVersion": "test"}, &enrolled)
		before := rejected("installation_credential")
		for _, path := range []string{"/api/v1/orgs/acme/audit", "/api/v1/orgs/acme/users", "/api/v1/orgs"} {
			resp, b := h.raw(enrolled.Credential, "GET", path, "", nil)
			if resp.StatusCode != http.StatusForbidden || problemCode(t, resp, b) != "forbidden" {
				t.Errorf("GET %s with an installation credential: status %d: %s; want 403 forbidden", path, resp.StatusCode, b)
			}
		}
		resp, b := h.raw(enrolled.Credential, "POST", "/api/v1/orgs/acme/tokens", "application/json", []byte(`{"name":"x"}`))
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST tokens with an installation credential: status %d: %s; want 403", resp.StatusCode, b)
		}
		if got := rejected("installation_credential"); got != before+4 {
			t.Errorf("rejected{installation_credential} went %v → %v, want +4", before, got)
		}
		// One the hub never issued is just unknown.
		resp, b = get("Bearer " + mustSecret(t, "ferry_ic_"))
		want401(t, resp, b)
	})
	t.Run("counter is exposed", func(t *testing.T) {
		if n := testutil.CollectAndCount(reg, "ferry_hub_auth_rejected_total"); n < 8 {
			t.Errorf("%d series of ferry_hub_auth_rejected_total, want one per reason (8)", n)
		}
	})
}

// mustSecret makes a well-formed Ferry secret of the kind with prefix.
func mustSecret(t *testing.T, prefix string) string {
	t.Helper()
	s, err := auth.New(auth.Kind(prefix))
	if err != nil {
		t.Fatal(err)
	}
	return string(s)
}

// flip changes a base62 character into another.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}
