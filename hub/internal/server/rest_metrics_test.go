package server

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/config"
)

// TestRESTMetricsListener checks where /metrics is served: on the main
// listener by default, and with --metrics-addr only on the operator
// listener (R35).
func TestRESTMetricsListener(t *testing.T) {
	t.Parallel()
	t.Run("default", func(t *testing.T) {
		t.Parallel()
		s := startRESTHub(t, nil)
		if st, _, b := send(t, "GET", "http://"+s.Addr()+"/metrics", "", ""); st != http.StatusOK || !strings.Contains(b, "ferry_hub_auth_rejected_total") {
			t.Errorf("main listener /metrics: %d %.200s, want 200 with the hub's metrics", st, b)
		}
		if s.MetricsAddr() != "" {
			t.Errorf("an operator listener %s without --metrics-addr", s.MetricsAddr())
		}
	})
	t.Run("operator listener", func(t *testing.T) {
		t.Parallel()
		s := startRESTHub(t, func(c *config.Config) { c.MetricsAddr = "127.0.0.1:0" })
		if st, ct, b := send(t, "GET", "http://"+s.Addr()+"/metrics", "", ""); st != http.StatusNotFound || ct != "application/problem+json" {
			t.Errorf("main listener /metrics: %d %s %.200s, want 404 problem+json", st, ct, b)
		}
		if st, _, b := send(t, "GET", "http://"+s.Addr()+"/metrics", restAdminToken, ""); st != http.StatusNotFound {
			t.Errorf("main listener /metrics with the admin token: %d %.200s, want 404", st, b)
		}
		op := "http://" + s.MetricsAddr()
		if st, _, b := send(t, "GET", op+"/metrics", "", ""); st != http.StatusOK || !strings.Contains(b, "ferry_hub_auth_rejected_total") {
			t.Errorf("operator /metrics: %d %.200s, want 200 with the hub's metrics", st, b)
		}
		for _, path := range []string{"/api/v1/orgs", "/healthz", "/console/"} {
			if st, _, _ := send(t, "GET", op+path, restAdminToken, ""); st != http.StatusNotFound {
				t.Errorf("operator listener serves %s: %d, want 404", path, st)
			}
		}
	})
}

// TestRESTMetricsHygiene exercises the API with every kind of secret, then
// scrapes /metrics and checks that no secret (nor its stored hash) appears,
// that no label carries an identifier, and that no environment label has
// more than 50 series (C9).
func TestRESTMetricsHygiene(t *testing.T) {
	t.Parallel()
	s := startRESTHub(t, func(c *config.Config) { c.MetricsAddr = "127.0.0.1:0" })
	base := "http://" + s.Addr()
	secrets := map[string]string{"admin token": restAdminToken}
	mustJSON := func(want int, method, path, token, body string, field string) string {
		t.Helper()
		st, _, b := send(t, method, base+path, token, body, "Idempotency-Key", auth.Hash(method + path + body)[:32])
		if st != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, st, b, want)
		}
		if field == "" {
			return ""
		}
		m := regexp.MustCompile(`"` + field + `":"([^"]+)"`).FindStringSubmatch(b)
		if m == nil {
			t.Fatalf("%s %s: no %s in %s", method, path, field, b)
		}
		return m[1]
	}
	mustJSON(201, "POST", "/api/v1/orgs", restAdminToken, `{"name":"acme"}`, "")
	for _, e := range []string{"Dev", "QA", "Prod"} {
		mustJSON(201, "POST", "/api/v1/orgs/acme/environments", restAdminToken, `{"name":"`+e+`"}`, "")
	}
	const password = "metrics-hygiene-password-0123"
	secrets["password"] = password
	user := mustJSON(201, "POST", "/api/v1/orgs/acme/users", restAdminToken, `{"username":"ada","password":"`+password+`"}`, "id")
	mustJSON(201, "POST", "/api/v1/orgs/acme/role-bindings", restAdminToken, `{"userId":"`+user+`","scope":"ORGANIZATION","role":"ADMIN"}`, "")
	secrets["personal access token"] = mustJSON(201, "POST", "/api/v1/orgs/acme/tokens", restAdminToken, `{"userId":"`+user+`","name":"ci"}`, "token")
	secrets["session"] = mustJSON(200, "POST", "/api/v1/auth/session", "", `{"org":"acme","username":"ada","password":"`+password+`"}`, "token")
	secrets["link token"] = mustJSON(201, "POST", "/api/v1/orgs/acme/environments/Dev/link-tokens", restAdminToken, `{}`, "token")
	secrets["installation credential"] = mustJSON(201, "POST", "/api/v1/link/enroll", secrets["link token"], `{"agentVersion":"test"}`, "credential")
	for _, tok := range []string{secrets["personal access token"], secrets["session"]} {
		mustJSON(200, "GET", "/api/v1/orgs/acme/audit", tok, "", "")
	}
	// Refusals of every kind.
	bad := secrets["personal access token"][:len(secrets["personal access token"])-1] + "0"
	secrets["bad-checksum token"] = bad
	for _, tok := range []string{bad, secrets["installation credential"], "not-a-token-but-long-enough-0123"} {
		send(t, "GET", base+"/api/v1/orgs/acme/audit", tok, "")
	}
	send(t, "POST", base+"/api/v1/link/enroll", secrets["link token"], `{"agentVersion":"test"}`) // used twice
	send(t, "GET", base+"/api/v1/link", secrets["installation credential"], "")
	send(t, "GET", base+"/api/v1/link", bad, "")
	send(t, "POST", base+"/api/v1/auth/session", "", `{"org":"acme","username":"ada","password":"wrong-`+password+`"}`)
	// Promotions: the Dev agent is not connected, so they fail; the
	// attempts still count.
	for _, api := range []string{"orders", "billing", "users"} {
		send(t, "POST", base+"/api/v1/orgs/acme/promotions", secrets["personal access token"],
			`{"apiId":"`+api+`","sourceEnv":"Dev","targetEnv":"Prod"}`, "Idempotency-Key", "p-"+api)
	}
	send(t, "GET", base+"/api/v1/orgs/acme/promotions?limit=1000", restAdminToken, "")

	st, _, scrape := send(t, "GET", "http://"+s.MetricsAddr()+"/metrics", "", "")
	if st != http.StatusOK {
		t.Fatalf("scrape: %d", st)
	}
	for name, v := range secrets {
		for form, needle := range map[string]string{"value": v, "hash": auth.Hash(v), "body": secretBody(v)} {
			if needle != "" && strings.Contains(scrape, needle) {
				t.Errorf("/metrics holds the %s's %s", name, form)
			}
		}
	}

	// Label hygiene: no identifier in any label, and at most 50 series per
	// environment label value.
	series := 0
	perEnv := map[string]int{}
	idRE := regexp.MustCompile(`\b(org|env|ins|usr|tok|prm|lt|rb)_[0-9a-f]{8,}`)
	labelRE := regexp.MustCompile(`([a-zA-Z_]+)="([^"]*)"`)
	for _, line := range strings.Split(scrape, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		series++
		if id := idRE.FindString(line); id != "" {
			t.Errorf("an identifier (%s) in a metric: %s", id, line)
		}
		for _, m := range labelRE.FindAllStringSubmatch(line, -1) {
			if strings.Contains(strings.ToLower(m[1]), "env") {
				perEnv[m[1]+"="+m[2]]++
			}
		}
	}
	for env, n := range perEnv {
		if n > 50 {
			t.Errorf("%d series for %s, want at most 50", n, env)
		}
	}
	if series == 0 {
		t.Fatal("the scrape held no series")
	}
	t.Logf("%d series; %d environment label values", series, len(perEnv))
}

// secretBody is the random part of a Ferry secret (after its prefix), or
// "" for other secrets.
func secretBody(s string) string {
	if i := strings.LastIndexByte(s, '_'); strings.HasPrefix(s, "ferry_") && i > 0 {
		return s[i+1:]
	}
	return ""
}
