package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bins holds the paths of the binaries built for this test run.
var bins struct{ hub, agent, apimSim string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-browser-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, b := range []struct {
		dst *string
		pkg string
	}{
		{&bins.hub, "ferry.dev/hub/cmd/ferry-hub"},
		{&bins.agent, "ferry.dev/agent/cmd/ferry-agent"},
		{&bins.apimSim, "ferry.dev/agent/cmd/apim-sim"},
	} {
		*b.dst = filepath.Join(dir, filepath.Base(b.pkg))
		cmd := exec.Command("go", "build", "-o", *b.dst, b.pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", b.pkg, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a running binary whose output is kept for failure reports.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func start(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, p.output())
		}
	})
	return p
}

// stop sends SIGTERM, then kills after 10 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
}

// hub is a running ferry-hub.
type hub struct {
	*proc
	url, token string
}

const adminToken = "browser-admin-token-0123456789abcdef"

func startHub(t *testing.T, dir string) *hub {
	t.Helper()
	addr := freeAddr(t)
	p := start(t, "hub", bins.hub, []string{"FERRY_ADMIN_TOKEN=" + adminToken, "FERRY_REDELIVERY_INTERVAL=500ms"},
		"--listen", addr, "--data-dir", dir, "--log-level", "debug")
	h := &hub{proc: p, url: "http://" + addr, token: adminToken}
	waitFor(t, 15*time.Second, "hub /readyz", func() bool { return get(h.url+"/readyz") == http.StatusOK })
	return h
}

func get(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// call makes a REST call with the admin token, decodes a 2xx answer into
// out (when not nil) and returns the status and the raw body.
func (h *hub) call(t *testing.T, method, path string, body, out any) (int, string) {
	t.Helper()
	return doJSON(t, method, h.url+path, h.token, body, out)
}

func doJSON(t *testing.T, method, url, token string, body, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, b, err)
		}
	}
	return resp.StatusCode, string(b)
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
	*proc
	url string // management API v2 base
}

func startAPIM(t *testing.T) *apim {
	t.Helper()
	addr := freeAddr(t)
	p := start(t, "apim-sim "+addr, bins.apimSim, nil, "--listen", addr)
	a := &apim{proc: p, url: "http://" + addr + "/management/v2"}
	waitFor(t, 10*time.Second, "apim-sim", func() bool { return get(a.url+"/environments/DEFAULT/apis") == http.StatusOK })
	return a
}

// importAPI creates an API in an APIM stand-in and returns its id.
func (a *apim) importAPI(t *testing.T, def []byte) string {
	t.Helper()
	var out struct{ ID string }
	if st, raw := doJSON(t, "POST", a.url+"/environments/DEFAULT/apis/_import/definition", "", json.RawMessage(def), &out); st != http.StatusCreated || out.ID == "" {
		t.Fatalf("import into APIM: status %d: %s", st, raw)
	}
	return out.ID
}

// updateAPI changes an API of an APIM stand-in: its export, edited by
// edit, imported over it.
func (a *apim) updateAPI(t *testing.T, id string, edit func(api map[string]any)) {
	t.Helper()
	var doc map[string]any
	if st, raw := doJSON(t, "GET", a.url+"/environments/DEFAULT/apis/"+id+"/_export/definition", "", nil, &doc); st != http.StatusOK {
		t.Fatalf("export %s: %d %s", id, st, raw)
	}
	api, ok := doc["api"].(map[string]any)
	if !ok {
		t.Fatalf("export %s has no api object", id)
	}
	edit(api)
	if st, raw := doJSON(t, "PUT", a.url+"/environments/DEFAULT/apis/"+id+"/_import/definition", "", doc, nil); st != http.StatusOK {
		t.Fatalf("update %s: %d %s", id, st, raw)
	}
}

// apiNames lists the names of the APIs in an APIM stand-in.
func (a *apim) apiNames(t *testing.T) []string {
	t.Helper()
	var out struct {
		Data []struct{ Name string }
	}
	if st, raw := doJSON(t, "GET", a.url+"/environments/DEFAULT/apis?perPage=100", "", nil, &out); st != http.StatusOK {
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
	*proc
	url string
}

func startAgent(t *testing.T, h *hub, a *apim, dir, linkToken string) *agent {
	t.Helper()
	addr := freeAddr(t)
	args := []string{"--hub", h.url, "--apim-url", a.url, "--listen", addr, "--data-dir", dir, "--log-level", "debug", "--link-token", linkToken}
	ag := &agent{url: "http://" + addr}
	ag.proc = start(t, "agent "+filepath.Base(dir), bins.agent, nil, args...)
	waitFor(t, 15*time.Second, "agent /healthz", func() bool { return get(ag.url+"/healthz") == http.StatusOK })
	return ag
}

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "reference", "gravitee", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
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
	waitFor(t, 15*time.Second, "both agents online", func() bool { return w.hub.online(t, orgName) == 2 })
	w.apiID = w.devAPIM.importAPI(t, sample(t, "v4-http-proxy-with-members-groups-plans-pages-media.json"))
	var api struct{ Name string }
	if st, raw := doJSON(t, "GET", w.devAPIM.url+"/environments/DEFAULT/apis/"+w.apiID, "", nil, &api); st != http.StatusOK {
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
