package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry.dev/hub/internal/testbed"
)

// bins holds the paths of the binaries built for this test run.
var bins testbed.Binaries

func TestMain(m *testing.M) { testbed.Main(m, "ferry-e2e-bin-", &bins) }

// stopGrace is how long a process stopped by a test may take to exit
// after SIGTERM; taking longer fails the test.
const stopGrace = 20 * time.Second

// hub is a running ferry-hub.
type hub struct {
	*testbed.Proc
	addr, url, dir, token string
}

const adminToken = "e2e-admin-token-0123456789abcdef"

func startHub(t *testing.T, addr, dir string, env ...string) *hub {
	t.Helper()
	env = append([]string{"FERRY_ADMIN_TOKEN=" + adminToken, "FERRY_REDELIVERY_INTERVAL=500ms"}, env...)
	p := testbed.Start(t, "hub", bins.Hub, env, "--listen", addr, "--data-dir", dir, "--log-level", "debug")
	h := &hub{Proc: p, addr: addr, url: "http://" + addr, dir: dir, token: adminToken}
	testbed.WaitFor(t, 15*time.Second, "hub /readyz", func() bool { return testbed.Get(h.url+"/readyz") == http.StatusOK })
	return h
}

// call makes a REST call with the admin token and decodes a 2xx answer
// into out (when not nil); it returns the status code.
func (h *hub) call(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	return doJSON(t, method, h.url+path, h.token, body, out)
}

// auditEntry is one entry of an organization's audit trail.
type auditEntry struct {
	Seq                                      int64
	Event, Actor, Detail, PromotionID, EnvID string
}

// audit reads org's whole audit trail, page by page (the hub answers at
// most 100 entries a page).
func (h *hub) audit(t *testing.T, org string) []auditEntry {
	t.Helper()
	var all []auditEntry
	var after int64
	for pages := 0; pages < 10000; pages++ {
		var page struct {
			Items        []auditEntry
			NextAfterSeq int64
		}
		path := fmt.Sprintf("/api/v1/orgs/%s/audit?limit=100&afterSeq=%d", org, after)
		if st := h.call(t, "GET", path, nil, &page); st != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, st)
		}
		all = append(all, page.Items...)
		if page.NextAfterSeq == 0 {
			return all
		}
		after = page.NextAfterSeq
	}
	t.Fatal("the audit trail did not end")
	return nil
}

// doJSON is testbed.DoJSON that returns the status only.
func doJSON(t *testing.T, method, url, token string, body, out any) int {
	t.Helper()
	st, _ := testbed.DoJSON(t, method, url, token, body, out)
	return st
}

// setupOrg creates an organization with the named environments and returns
// their ids by name.
func (h *hub) setupOrg(t *testing.T, org string, envs ...string) map[string]string {
	t.Helper()
	if st := h.call(t, "POST", "/api/v1/orgs", map[string]string{"name": org}, nil); st != http.StatusCreated {
		t.Fatalf("create org %s: status %d", org, st)
	}
	ids := map[string]string{}
	for _, e := range envs {
		var out struct{ ID string }
		if st := h.call(t, "POST", "/api/v1/orgs/"+org+"/environments", map[string]string{"name": e}, &out); st != http.StatusCreated {
			t.Fatalf("create env %s: status %d", e, st)
		}
		ids[e] = out.ID
	}
	return ids
}

// user makes a user of org with a password and the given role bindings
// (each {"scope", "env", "crossId", "role"}), as the platform admin, and
// returns its id.
func (h *hub) user(t *testing.T, org, username, password string, bindings ...map[string]string) string {
	t.Helper()
	var u struct{ ID string }
	if st := h.call(t, "POST", "/api/v1/orgs/"+org+"/users", map[string]string{"username": username, "password": password}, &u); st != http.StatusCreated {
		t.Fatalf("create user %s: status %d", username, st)
	}
	for _, b := range bindings {
		b["userId"] = u.ID
		if st := h.call(t, "POST", "/api/v1/orgs/"+org+"/role-bindings", b, nil); st != http.StatusCreated {
			t.Fatalf("bind %v: status %d", b, st)
		}
	}
	return u.ID
}

// signIn returns a session of the user, signed by the hub.
func (h *hub) signIn(t *testing.T, org, username, password string) string {
	t.Helper()
	var s struct{ Token string }
	st := doJSON(t, "POST", h.url+"/api/v1/auth/session", "", map[string]string{"org": org, "username": username, "password": password}, &s)
	if st != http.StatusOK || s.Token == "" {
		t.Fatalf("sign in %s/%s: status %d", org, username, st)
	}
	return s.Token
}

// adminSession makes an organization admin of org and returns a session.
func (h *hub) adminSession(t *testing.T, org string) string {
	t.Helper()
	h.user(t, org, "e2e-admin", "e2e-admin-password", map[string]string{"scope": "ORGANIZATION", "role": "ADMIN"})
	return h.signIn(t, org, "e2e-admin", "e2e-admin-password")
}

func (h *hub) linkToken(t *testing.T, org, env string) string {
	t.Helper()
	var out struct{ Token string }
	if st := h.call(t, "POST", "/api/v1/orgs/"+org+"/environments/"+env+"/link-tokens", nil, &out); st != http.StatusCreated {
		t.Fatalf("link token for %s/%s: status %d", org, env, st)
	}
	return out.Token
}

type installation struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	AgentVersion string `json:"agentVersion"`
	Environments []struct {
		ID, Name string
	} `json:"environments"`
}

func (h *hub) installations(t *testing.T, org string) []installation {
	t.Helper()
	var out struct{ Items []installation }
	if st := h.call(t, "GET", "/api/v1/orgs/"+org+"/installations", nil, &out); st != http.StatusOK {
		t.Fatalf("installations: status %d", st)
	}
	return out.Items
}

func (h *hub) online(t *testing.T, org string) int {
	n := 0
	for _, i := range h.installations(t, org) {
		if i.Status == "online" {
			n++
		}
	}
	return n
}

// metric returns the value of an unlabelled metric line, or -1.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") {
			var v float64
			fmt.Sscanf(strings.TrimPrefix(line, name+" "), "%g", &v)
			return v
		}
	}
	return -1
}

// apim is a running apim-sim.
type apim struct {
	*testbed.Proc
	url string // management API v2 base
}

func startAPIM(t *testing.T, seed string) *apim {
	t.Helper()
	addr := testbed.FreeAddr(t)
	args := []string{"--listen", addr}
	if seed != "" {
		args = append(args, "--seed", seed)
	}
	p := testbed.Start(t, "apim-sim "+addr, bins.APIMSim, nil, args...)
	a := &apim{Proc: p, url: "http://" + addr + "/management/v2"}
	testbed.WaitFor(t, 10*time.Second, "apim-sim", func() bool { return testbed.Get(a.url+"/environments/DEFAULT/apis") == http.StatusOK })
	return a
}

// agent is a running ferry-agent.
type agent struct {
	*testbed.Proc
	url, dir string
	args     []string
	// session is the hub-signed session sent to the agent's REST API,
	// which accepts only sessions; empty until the test sets one.
	session string
}

func startAgent(t *testing.T, h *hub, a *apim, dir, linkToken string) *agent {
	t.Helper()
	addr := testbed.FreeAddr(t)
	args := []string{"--hub", h.url, "--apim-url", a.url, "--listen", addr, "--data-dir", dir, "--log-level", "debug"}
	if linkToken != "" {
		args = append(args, "--link-token", linkToken)
	}
	ag := &agent{url: "http://" + addr, dir: dir, args: args}
	ag.Proc = testbed.Start(t, "agent "+filepath.Base(dir), bins.Agent, nil, args...)
	testbed.WaitFor(t, 15*time.Second, "agent /healthz", func() bool { return testbed.Get(ag.url+"/healthz") == http.StatusOK })
	return ag
}

// restart starts the agent again with its data dir (and no link token).
func (ag *agent) restart(t *testing.T) {
	t.Helper()
	args := []string{}
	for i := 0; i < len(ag.args); i++ {
		if ag.args[i] == "--link-token" {
			i++
			continue
		}
		args = append(args, ag.args[i])
	}
	ag.Proc = testbed.Start(t, "agent (restarted) "+filepath.Base(ag.dir), bins.Agent, nil, args...)
	testbed.WaitFor(t, 15*time.Second, "agent /healthz after restart", func() bool { return testbed.Get(ag.url+"/healthz") == http.StatusOK })
}

func io_Copy(dst io.Writer, resp *http.Response) (int64, error) { return io.Copy(dst, resp.Body) }
