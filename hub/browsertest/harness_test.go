package browsertest

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"ferry.dev/hub/internal/testbed"
)

// bins holds the paths of the binaries built for this test run.
var bins testbed.Binaries

func TestMain(m *testing.M) { testbed.Main(m, "ferry-browser-bin-", &bins) }

// stopGrace is how long a process may take to exit after SIGTERM before
// it is killed, at the end of a test or when a test stops it.
const stopGrace = 10 * time.Second

// start starts a binary that is stopped gracefully, within stopGrace, at
// the end of the test.
func start(t *testing.T, name, bin string, env []string, args ...string) *testbed.Proc {
	t.Helper()
	p := testbed.Start(t, name, bin, env, args...)
	t.Cleanup(func() { p.Terminate(stopGrace) }) // runs before testbed's own cleanup
	return p
}

// hub is a running ferry-hub.
type hub struct {
	*testbed.Proc
	url, token string
}

const adminToken = "browser-admin-token-0123456789abcdef"

func startHub(t *testing.T, dir string) *hub {
	t.Helper()
	addr := testbed.FreeAddr(t)
	p := start(t, "hub", bins.Hub, []string{"FERRY_ADMIN_TOKEN=" + adminToken, "FERRY_REDELIVERY_INTERVAL=500ms"},
		"--listen", addr, "--data-dir", dir, "--log-level", "debug")
	h := &hub{Proc: p, url: "http://" + addr, token: adminToken}
	testbed.WaitFor(t, 15*time.Second, "hub /readyz", func() bool { return testbed.Get(h.url+"/readyz") == http.StatusOK })
	return h
}

// call makes a REST call with the admin token, decodes a 2xx answer into
// out (when not nil) and returns the status and the raw body.
func (h *hub) call(t *testing.T, method, path string, body, out any) (int, string) {
	t.Helper()
	return testbed.DoJSON(t, method, h.url+path, h.token, body, out)
}

// mustCall is call that fails the test unless the status is want.
func (h *hub) mustCall(t *testing.T, want int, method, path string, body, out any) {
	t.Helper()
	if st, raw := h.call(t, method, path, body, out); st != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, want, raw)
	}
}

func (h *hub) linkToken(t *testing.T, org, env string) string {
	t.Helper()
	var out struct{ Token string }
	h.mustCall(t, http.StatusCreated, "POST", "/api/v1/orgs/"+org+"/environments/"+env+"/link-tokens", nil, &out)
	return out.Token
}

func (h *hub) online(t *testing.T, org string) int {
	t.Helper()
	var out struct {
		Items []struct{ Status string }
	}
	h.mustCall(t, http.StatusOK, "GET", "/api/v1/orgs/"+org+"/installations", nil, &out)
	n := 0
	for _, i := range out.Items {
		if i.Status == "online" {
			n++
		}
	}
	return n
}

// apim is a running apim-sim.
type apim struct {
	*testbed.Proc
	url string // management API v2 base
}

func startAPIM(t *testing.T) *apim {
	t.Helper()
	addr := testbed.FreeAddr(t)
	p := start(t, "apim-sim "+addr, bins.APIMSim, nil, "--listen", addr)
	a := &apim{Proc: p, url: "http://" + addr + "/management/v2"}
	testbed.WaitFor(t, 10*time.Second, "apim-sim", func() bool { return testbed.Get(a.url+"/environments/DEFAULT/apis") == http.StatusOK })
	return a
}

// importAPI creates an API in an APIM stand-in and returns its id.
func (a *apim) importAPI(t *testing.T, def []byte) string {
	t.Helper()
	var out struct{ ID string }
	if st, raw := testbed.DoJSON(t, "POST", a.url+"/environments/DEFAULT/apis/_import/definition", "", json.RawMessage(def), &out); st != http.StatusCreated || out.ID == "" {
		t.Fatalf("import into APIM: status %d: %s", st, raw)
	}
	return out.ID
}

// updateAPI changes an API of an APIM stand-in: its export, edited by
// edit, imported over it.
func (a *apim) updateAPI(t *testing.T, id string, edit func(api map[string]any)) {
	t.Helper()
	var doc map[string]any
	if st, raw := testbed.DoJSON(t, "GET", a.url+"/environments/DEFAULT/apis/"+id+"/_export/definition", "", nil, &doc); st != http.StatusOK {
		t.Fatalf("export %s: %d %s", id, st, raw)
	}
	api, ok := doc["api"].(map[string]any)
	if !ok {
		t.Fatalf("export %s has no api object", id)
	}
	edit(api)
	if st, raw := testbed.DoJSON(t, "PUT", a.url+"/environments/DEFAULT/apis/"+id+"/_import/definition", "", doc, nil); st != http.StatusOK {
		t.Fatalf("update %s: %d %s", id, st, raw)
	}
}

// apiNames lists the names of the APIs in an APIM stand-in.
func (a *apim) apiNames(t *testing.T) []string {
	t.Helper()
	var out struct {
		Data []struct{ Name string }
	}
	if st, raw := testbed.DoJSON(t, "GET", a.url+"/environments/DEFAULT/apis?perPage=100", "", nil, &out); st != http.StatusOK {
		t.Fatalf("list APIs: %d: %s", st, raw)
	}
	var names []string
	for _, d := range out.Data {
		names = append(names, d.Name)
	}
	return names
}

// agent is a running ferry-agent.
type agent struct {
	*testbed.Proc
	url string
}

func startAgent(t *testing.T, h *hub, a *apim, dir, linkToken string) *agent {
	t.Helper()
	addr := testbed.FreeAddr(t)
	args := []string{"--hub", h.url, "--apim-url", a.url, "--listen", addr, "--data-dir", dir, "--log-level", "debug", "--link-token", linkToken}
	ag := &agent{url: "http://" + addr}
	ag.Proc = start(t, "agent "+filepath.Base(dir), bins.Agent, nil, args...)
	testbed.WaitFor(t, 15*time.Second, "agent /healthz", func() bool { return testbed.Get(ag.url+"/healthz") == http.StatusOK })
	return ag
}

// world is the seed's setup: organization "demo" with Dev and Prod, each
// with an APIM stand-in and a linked agent, an API in Dev, and users.
type world struct {
	hub                *hub
	envs               map[string]string // name -> id
	devAPIM, prodAPIM  *apim
	devAgent, prodAgnt *agent
	apiID, apiName     string
}

// Users of the seed's organization, created through the hub's REST API.
const (
	orgName      = "demo"
	devUser      = "alice" // Dev admin who requests the promotion
	prodUser     = "bob"   // Prod admin who decides
	orgAdmin     = "carol" // organization admin, in the hub console
	userPassword = "correct horse battery staple"
)

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{envs: map[string]string{}}
	w.hub = startHub(t, filepath.Join(dir, "hub"))
	w.hub.mustCall(t, http.StatusCreated, "POST", "/api/v1/orgs", map[string]string{"name": orgName}, nil)
	for _, e := range []string{"Dev", "Prod"} {
		var out struct{ ID string }
		w.hub.mustCall(t, http.StatusCreated, "POST", "/api/v1/orgs/"+orgName+"/environments", map[string]string{"name": e}, &out)
		w.envs[e] = out.ID
	}
	createUsers(t, w)
	w.devAPIM, w.prodAPIM = startAPIM(t), startAPIM(t)
	w.devAgent = startAgent(t, w.hub, w.devAPIM, filepath.Join(dir, "dev"), w.hub.linkToken(t, orgName, "Dev"))
	w.prodAgnt = startAgent(t, w.hub, w.prodAPIM, filepath.Join(dir, "prod"), w.hub.linkToken(t, orgName, "Prod"))
	testbed.WaitFor(t, 15*time.Second, "both agents online", func() bool { return w.hub.online(t, orgName) == 2 })
	w.apiID = w.devAPIM.importAPI(t, testbed.Sample(t, "v4-http-proxy-with-members-groups-plans-pages-media.json"))
	var api struct{ Name string }
	if st, raw := testbed.DoJSON(t, "GET", w.devAPIM.url+"/environments/DEFAULT/apis/"+w.apiID, "", nil, &api); st != http.StatusOK {
		t.Fatalf("read the Dev API: %d %s", st, raw)
	}
	w.apiName = api.Name
	return w
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
