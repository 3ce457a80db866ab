package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"ferry.dev/hub/internal/api"
	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/state"
)

// raw makes a REST call with full control of body, content type and extra
// headers (pairs); it returns the response and its body.
func (h *testHub) raw(token, method, path, ctype string, body []byte, headers ...string) (*http.Response, string) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// problemCode is the code of a problem document, or "" when b is not one.
func problemCode(t *testing.T, resp *http.Response, b string) string {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type %q, want application/problem+json (%s)", ct, b)
	}
	var p api.Problem
	if err := json.Unmarshal([]byte(b), &p); err != nil {
		t.Errorf("not a problem document: %s", b)
	}
	return p.Code
}

func withLimits(l api.Limits) func(*api.Deps) { return func(d *api.Deps) { d.Limits = l } }

// TestRateLimits checks the per-caller and per-peer limits answer 429 with
// Retry-After, and that one caller's bucket does not drain another's.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, withLimits(api.Limits{
		Token:  api.Limit{Rate: 0.5, Burst: 3},
		SignIn: api.Limit{Rate: 0.5, Burst: 2},
		Link:   api.Limit{Rate: 0.5, Burst: 1},
	}))
	const other = "test-second-admin-token-0123"
	if err := h.store.CreateAPIToken(t.Context(), state.APIToken{ID: "tok_other", Hash: auth.Hash(other), Name: "other admin"}); err != nil {
		t.Fatal(err)
	}
	want429 := func(t *testing.T, resp *http.Response, b string) {
		t.Helper()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("status %d, want 429: %s", resp.StatusCode, b)
		}
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("Retry-After %q, want whole seconds ≥ 1", resp.Header.Get("Retry-After"))
		}
		if code := problemCode(t, resp, b); code != "rate_limited" {
			t.Errorf("code %q, want rate_limited", code)
		}
	}
	t.Run("token", func(t *testing.T) {
		for i := range 3 {
			if resp, b := h.raw(testAdminToken, "GET", "/api/v1/orgs", "", nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d: status %d: %s", i, resp.StatusCode, b)
			}
		}
		resp, b := h.raw(testAdminToken, "GET", "/api/v1/orgs", "", nil)
		want429(t, resp, b)
		if resp, b := h.raw(other, "GET", "/api/v1/orgs", "", nil); resp.StatusCode != http.StatusOK {
			t.Errorf("another token: status %d: %s", resp.StatusCode, b)
		}
	})
	t.Run("sign-in and enroll share the peer's bucket", func(t *testing.T) {
		body := []byte(`{"org":"acme","username":"nobody","password":"wrong-password"}`)
		if resp, b := h.raw("", "POST", "/api/v1/auth/session", "application/json", body); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401: %s", resp.StatusCode, b)
		}
		if resp, b := h.raw("lnk_bogus", "POST", "/api/v1/link/enroll", "application/json", []byte(`{"agentVersion":"1"}`)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("enroll: status %d, want 401: %s", resp.StatusCode, b)
		}
		resp, b := h.raw("", "POST", "/api/v1/auth/session", "application/json", body, "X-Forwarded-For", "203.0.113.7")
		want429(t, resp, b) // X-Forwarded-For does not buy a new bucket
	})
	t.Run("link upgrade", func(t *testing.T) {
		h.raw("", "GET", "/api/v1/link", "", nil)
		resp, b := h.raw("", "GET", "/api/v1/link", "", nil)
		want429(t, resp, b)
	})
}

// TestIdempotencyKeys checks that a creating request retried with the same
// Idempotency-Key gets the original answer and creates nothing more, and
// that the key cannot be reused for a different request.
func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme := h.newOrg("acme")
	ctx := t.Context()
	count := func() (orgs, envs, promos int) {
		os, _ := h.store.ListOrgs(ctx)
		es, _ := h.store.ListEnvironments(ctx, acme.ID)
		ps, _ := h.store.ListPromotions(ctx, state.PromotionFilter{Limit: 1000})
		return len(os), len(es), len(ps)
	}
	post := func(token, path, body, key string) (*http.Response, string) {
		return h.raw(token, "POST", path, "application/json", []byte(body), "Idempotency-Key", key)
	}
	for _, tc := range []struct {
		name, path, body, other string
	}{
		{"org", "/api/v1/orgs", `{"name":"globex"}`, `{"name":"initech"}`},
		{"environment", "/api/v1/orgs/acme/environments", `{"name":"Staging"}`, `{"name":"Perf"}`},
		{"promotion", "/api/v1/orgs/acme/promotions", `{"apiId":"api-x","sourceEnv":"Dev","targetEnv":"Prod"}`, `{"apiId":"api-y","sourceEnv":"Dev","targetEnv":"Prod"}`},
		{"user", "/api/v1/orgs/acme/users", `{"username":"ada"}`, `{"username":"bob"}`},
		{"link token", "/api/v1/orgs/acme/environments/Dev/link-tokens", `{}`, `{"expiresInSeconds":60}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "key-" + tc.name
			first, fb := post(testAdminToken, tc.path, tc.body, key)
			if first.StatusCode != http.StatusCreated {
				t.Fatalf("first: status %d: %s", first.StatusCode, fb)
			}
			o, e, p := count()
			exports := h.disp.exports()
			again, ab := post(testAdminToken, tc.path, tc.body, key)
			if again.StatusCode != first.StatusCode || ab != fb || again.Header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("replay: status %d %q, body %s; want %d and the original %s", again.StatusCode, again.Header.Get("Idempotent-Replayed"), ab, first.StatusCode, fb)
			}
			if o2, e2, p2 := count(); o2 != o || e2 != e || p2 != p || h.disp.exports() != exports {
				t.Errorf("replay changed state: orgs %d→%d, envs %d→%d, promotions %d→%d", o, o2, e, e2, p, p2)
			}
			resp, b := post(testAdminToken, tc.path, tc.other, key)
			if resp.StatusCode != http.StatusUnprocessableEntity || problemCode(t, resp, b) != "idempotency_key_mismatch" {
				t.Errorf("other body, same key: status %d: %s; want 422 idempotency_key_mismatch", resp.StatusCode, b)
			}
			if o2, e2, p2 := count(); o2 != o || e2 != e || p2 != p {
				t.Errorf("refused reuse changed state: orgs %d→%d, envs %d→%d, promotions %d→%d", o, o2, e, e2, p, p2)
			}
		})
	}
	t.Run("keys are per caller", func(t *testing.T) {
		ada := h.newUser(acme, "carol", binding{Scope: "ORGANIZATION", Role: "ADMIN"})
		body := `{"name":"Shared"}`
		if resp, b := post(testAdminToken, "/api/v1/orgs/acme/environments", body, "same"); resp.StatusCode != http.StatusCreated {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		// Another caller's key is another key: this one runs, and is a
		// plain conflict, not a replay of the admin's answer.
		resp, b := post(ada.PAT, "/api/v1/orgs/acme/environments", body, "same")
		if resp.StatusCode != http.StatusConflict || resp.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("other caller: status %d replayed=%q: %s; want a fresh 409", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), b)
		}
	})
	t.Run("bad keys", func(t *testing.T) {
		for _, k := range []string{strings.Repeat("k", 129), "tab\there", "é"} {
			resp, b := post(testAdminToken, "/api/v1/orgs", `{"name":"badkey"}`, k)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("key %q: status %d: %s", k, resp.StatusCode, b)
			}
		}
		if _, err := h.store.Org(ctx, "badkey"); err == nil {
			t.Error("an org was created under a bad key")
		}
	})
}

// TestStrictBodies sends every POST and PATCH route each kind of bad body
// and checks the exact refusal and that nothing changed.
func TestStrictBodies(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme := h.newOrg("acme")
	h.newUser(acme, "ada")
	p := h.fixture(acme, "Prod", "x", "", "someone")
	ctx := t.Context()
	lt, err := h.fleet.IssueLinkToken(ctx, acme.Env["Dev"], time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	enrolled, err := h.fleet.Enroll(ctx, string(lt.Secret), "1.0.0", "apim-dev", "")
	if err != nil {
		t.Fatal(err)
	}
	inst := enrolled.Installation.ID

	type state struct {
		snap              snapshot
		orgs, envs, roles int
		status            string
		credential        string
	}
	observe := func() state {
		s := state{snap: h.snapshot(acme)}
		os, _ := h.store.ListOrgs(ctx)
		es, _ := h.store.ListEnvironments(ctx, acme.ID)
		rs, _ := h.store.ListRoles(ctx, acme.ID)
		got, _ := h.store.Promotion(ctx, p.ID)
		i, _ := h.store.Installation(ctx, inst)
		s.orgs, s.envs, s.roles, s.status, s.credential = len(os), len(es), len(rs), string(got.Status), i.CredentialHash
		return s
	}
	routes := []struct {
		method, path, token string
		valid               string // fields of a valid body, without braces
		owned               string // a server-owned field of the answer
	}{
		{"POST", "/api/v1/orgs", testAdminToken, `"name":"globex"`, `"id":"org_1"`},
		{"POST", "/api/v1/orgs/acme/environments", testAdminToken, `"name":"Staging"`, `"createdAt":"2026-01-01T00:00:00Z"`},
		{"POST", "/api/v1/orgs/acme/environments/Dev/link-tokens", testAdminToken, `"expiresInSeconds":60`, `"token":"lnk_x"`},
		{"POST", "/api/v1/orgs/acme/promotions", testAdminToken, `"apiId":"api-y","sourceEnv":"Dev","targetEnv":"Prod"`, `"status":"ACCEPTED"`},
		{"POST", "/api/v1/orgs/acme/promotions/" + p.ID + "/_cancel", testAdminToken, ``, `"status":"CANCELLED"`},
		{"POST", "/api/v1/orgs/acme/installations/" + inst + "/_rotate-credential", testAdminToken, ``, `"agentNotified":true`},
		{"POST", "/api/v1/orgs/acme/users", testAdminToken, `"username":"bob"`, `"id":"usr_1"`},
		{"PATCH", "/api/v1/orgs/acme/users/ada", testAdminToken, `"displayName":"Ada"`, `"orgId":"org_1"`},
		{"POST", "/api/v1/orgs/acme/role-bindings", testAdminToken, `"userId":"ada","scope":"ENVIRONMENT","env":"Dev","role":"USER"`, `"id":"rb_1"`},
		{"POST", "/api/v1/orgs/acme/roles", testAdminToken, `"scope":"API","name":"READER","permissions":["API_DEFINITION:READ"]`, `"builtIn":true`},
		{"POST", "/api/v1/orgs/acme/tokens", testAdminToken, `"userId":"ada","name":"pat"`, `"token":"fpat_x"`},
		{"POST", "/api/v1/auth/session", "", `"org":"acme","username":"ada","password":"pw-ada-0123456789"`, `"expiresAt":"2030-01-01T00:00:00Z"`},
		{"POST", "/api/v1/link/enroll", "lnk_bogus", `"agentVersion":"1"`, `"installationId":"ins_1"`},
	}
	comma := func(s string) string {
		if s == "" {
			return ""
		}
		return s + ","
	}
	big := []byte(`{"name":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`)
	bigPromotion := []byte(`{"apiId":"` + strings.Repeat("x", api.MaxPromotionBodyBytes) + `"}`)
	deep := []byte(strings.Repeat("[", api.MaxJSONDepth+1) + strings.Repeat("]", api.MaxJSONDepth+1))
	for _, r := range routes {
		oversized := big
		if r.path == "/api/v1/orgs/acme/promotions" {
			oversized = bigPromotion
		}
		cases := []struct {
			name, ctype string
			body        []byte
			status      int
			code        string
		}{
			{"malformed JSON", "application/json", []byte(`{` + r.valid), 400, "malformed_json"},
			{"trailing value", "application/json", []byte(`{` + r.valid + `} {}`), 400, "malformed_json"},
			{"invalid UTF-8 in a string", "application/json", []byte(`{` + comma(r.valid) + `"x":"` + "\xff\xfe" + `"}`), 400, "malformed_json"},
			{"invalid UTF-8 in a key", "application/json", []byte(`{"` + "\xc3\x28" + `":1}`), 400, "malformed_json"},
			{"nested too deep", "application/json", []byte(`{` + comma(r.valid) + `"x":` + string(deep) + `}`), 400, "too_deep"},
			{"unknown field", "application/json", []byte(`{` + comma(r.valid) + `"bogus":1}`), 400, "unknown_field"},
			{"server-owned field", "application/json", []byte(`{` + comma(r.valid) + r.owned + `}`), 400, "unknown_field"},
			{"oversized", "application/json", oversized, 413, "too_large"},
			{"text/plain", "text/plain", []byte(`{` + r.valid + `}`), 415, "unsupported_media_type"},
			{"no content type", "", []byte(`{` + r.valid + `}`), 415, "unsupported_media_type"},
		}
		for _, tc := range cases {
			t.Run(r.method+" "+r.path+"/"+tc.name, func(t *testing.T) {
				before := observe()
				resp, b := h.raw(r.token, r.method, r.path, tc.ctype, tc.body, "Idempotency-Key", newIdempotencyKey())
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tc.status, b)
				}
				if code := problemCode(t, resp, b); code != tc.code {
					t.Errorf("code %q, want %q: %.300s", code, tc.code, b)
				}
				if after := observe(); after != before {
					t.Errorf("refused, yet state changed:\nbefore %+v\nafter  %+v", before, after)
				}
			})
		}
	}
}

// TestPaging checks the bounds of limit and offset on every list route
// (D7, R16): limit is 1-100, anything else is 400 invalid_parameter, and
// no list answers more than 100 items.
func TestPaging(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme := h.newOrg("acme")
	lists := []string{
		"/api/v1/orgs", "/api/v1/orgs/acme/environments", "/api/v1/orgs/acme/installations",
		"/api/v1/orgs/acme/promotions", "/api/v1/orgs/acme/audit", "/api/v1/orgs/acme/users",
		"/api/v1/orgs/acme/role-bindings", "/api/v1/orgs/acme/roles", "/api/v1/orgs/acme/tokens",
	}
	for _, path := range lists {
		for q, want := range map[string]int{
			"limit=0": 400, "limit=-1": 400, "limit=abc": 400, "limit=101": 400, "limit=1000": 400, "limit=1000000": 400,
			"limit=": 400, "limit=1e2": 400, "limit=%2B5": 400,
			"offset=-1": 400, "offset=abc": 400, "offset=1000001": 400,
			"limit=1": 200, "limit=100": 200, "offset=0": 200,
		} {
			if strings.HasSuffix(path, "audit") && strings.HasPrefix(q, "offset") {
				continue // the audit list pages by sequence, not offset
			}
			resp, b := h.raw(testAdminToken, "GET", path+"?"+q, "", nil)
			if resp.StatusCode != want {
				t.Errorf("GET %s?%s: status %d, want %d: %.200s", path, q, resp.StatusCode, want, b)
				continue
			}
			if want == 400 {
				if code := problemCode(t, resp, b); code != "invalid_parameter" {
					t.Errorf("GET %s?%s: code %q, want invalid_parameter", path, q, code)
				}
			}
		}
	}

	// More than a page of each: 130 promotions (and so 130+ audit
	// entries) and 130 users with a token each.
	ctx := t.Context()
	for i := range 130 {
		h.fixture(acme, "Prod", fmt.Sprintf("paged%d", i), "", "someone")
		u := state.User{ID: fmt.Sprintf("usr_paged%d", i), OrgID: acme.ID, Username: fmt.Sprintf("paged%d", i)}
		if err := h.store.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		tok := state.APIToken{ID: fmt.Sprintf("tok_paged%d", i), OrgID: acme.ID, UserID: u.ID, Hash: auth.Hash(u.ID), Name: "pat"}
		if err := h.store.CreateAPIToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{"/api/v1/orgs/acme/promotions", "/api/v1/orgs/acme/audit", "/api/v1/orgs/acme/users", "/api/v1/orgs/acme/tokens"} {
		t.Run("page through "+path, func(t *testing.T) {
			seen := map[string]bool{}
			next := ""
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatal("more than 10 pages")
				}
				var page struct {
					Items []struct {
						ID  string `json:"id"`
						Seq int64  `json:"seq"`
					} `json:"items"`
					NextOffset   int   `json:"nextOffset"`
					NextAfterSeq int64 `json:"nextAfterSeq"`
				}
				h.must(http.StatusOK, testAdminToken, "GET", path+next, nil, &page)
				if len(page.Items) > api.MaxPageSize {
					t.Fatalf("a page of %d items, want at most %d", len(page.Items), api.MaxPageSize)
				}
				for _, it := range page.Items {
					k := it.ID + "/" + strconv.FormatInt(it.Seq, 10)
					if seen[k] {
						t.Errorf("%s listed twice", k)
					}
					seen[k] = true
				}
				switch {
				case page.NextOffset > 0:
					next = "?offset=" + strconv.Itoa(page.NextOffset)
				case page.NextAfterSeq > 0:
					next = "?afterSeq=" + strconv.FormatInt(page.NextAfterSeq, 10)
				default:
					if len(seen) < 130 {
						t.Errorf("%d items over all pages, want at least 130", len(seen))
					}
					return
				}
			}
		})
	}
}
