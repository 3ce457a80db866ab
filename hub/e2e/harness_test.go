package e2e

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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bins holds the paths of the binaries built for this test run.
var bins struct{ hub, agent, apimSim string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-e2e-bin-")
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
		p.kill()
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, p.output())
		}
	})
	return p
}

// stop sends SIGTERM and waits for a graceful exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop within 20s of SIGTERM", p.name)
		p.kill()
	}
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) signal(s syscall.Signal) { _ = p.cmd.Process.Signal(s) }

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
	return 0
}

// hub is a running ferry-hub.
type hub struct {
	*proc
	addr, url, dir, token string
}

const adminToken = "e2e-admin-token-0123456789abcdef"

func startHub(t *testing.T, addr, dir string, env ...string) *hub {
	t.Helper()
	env = append([]string{"FERRY_ADMIN_TOKEN=" + adminToken, "FERRY_REDELIVERY_INTERVAL=500ms"}, env...)
	p := start(t, "hub", bins.hub, env, "--listen", addr, "--data-dir", dir, "--log-level", "debug")
	h := &hub{proc: p, addr: addr, url: "http://" + addr, dir: dir, token: adminToken}
	waitFor(t, 15*time.Second, "hub /readyz", func() bool {
		resp, err := http.Get(h.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return h
}

// call makes a REST call with the admin token and decodes a 2xx answer
// into out (when not nil); it returns the status code.
func (h *hub) call(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	return doJSON(t, method, h.url+path, h.token, body, out)
}

func doJSON(t *testing.T, method, url, token string, body, out any) int {
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
	return resp.StatusCode
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
	*proc
	url string // management API v2 base
}

func startAPIM(t *testing.T, seed string) *apim {
	t.Helper()
	addr := freeAddr(t)
	args := []string{"--listen", addr}
	if seed != "" {
		args = append(args, "--seed", seed)
	}
	p := start(t, "apim-sim "+addr, bins.apimSim, nil, args...)
	a := &apim{proc: p, url: "http://" + addr + "/management/v2"}
	waitFor(t, 10*time.Second, "apim-sim", func() bool {
		resp, err := http.Get(a.url + "/environments/DEFAULT/apis")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return a
}

// agent is a running ferry-agent.
type agent struct {
	*proc
	url, dir string
	args     []string
	// session is the hub-signed session sent to the agent's REST API,
	// which accepts only sessions; empty until the test sets one.
	session string
}

func startAgent(t *testing.T, h *hub, a *apim, dir, linkToken string) *agent {
	t.Helper()
	addr := freeAddr(t)
	args := []string{"--hub", h.url, "--apim-url", a.url, "--listen", addr, "--data-dir", dir, "--log-level", "debug"}
	if linkToken != "" {
		args = append(args, "--link-token", linkToken)
	}
	ag := &agent{url: "http://" + addr, dir: dir, args: args}
	ag.proc = start(t, "agent "+filepath.Base(dir), bins.agent, nil, args...)
	waitFor(t, 15*time.Second, "agent /healthz", func() bool {
		resp, err := http.Get(ag.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
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
	ag.proc = start(t, "agent (restarted) "+filepath.Base(ag.dir), bins.agent, nil, args...)
	waitFor(t, 15*time.Second, "agent /healthz after restart", func() bool {
		resp, err := http.Get(ag.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func io_Copy(dst io.Writer, resp *http.Response) (int64, error) { return io.Copy(dst, resp.Body) }
