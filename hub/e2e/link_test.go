package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry.dev/hub/internal/testbed"
)

// TestTwoInstallationsOnline is what `make run` promises: a hub with two
// linked installations online, visible on the installations endpoint and in
// the metrics.
func TestTwoInstallationsOnline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := startHub(t, testbed.FreeAddr(t), filepath.Join(dir, "hub"))
	h.setupOrg(t, "demo", "Dev", "Prod")
	dev, prod := startAPIM(t, ""), startAPIM(t, "")
	startAgent(t, h, dev, filepath.Join(dir, "dev"), h.linkToken(t, "demo", "Dev"))
	startAgent(t, h, prod, filepath.Join(dir, "prod"), h.linkToken(t, "demo", "Prod"))

	testbed.WaitFor(t, 15*time.Second, "two installations online", func() bool { return h.online(t, "demo") == 2 })
	if got := metric(t, h.url, "ferry_hub_agents_connected"); got != 2 {
		t.Errorf("ferry_hub_agents_connected = %v, want 2", got)
	}
	names := map[string]bool{}
	for _, i := range h.installations(t, "demo") {
		if i.AgentVersion == "" || len(i.Environments) != 1 {
			t.Errorf("installation %+v lacks version or environment", i)
			continue
		}
		names[i.Environments[0].Name] = true
	}
	if !names["Dev"] || !names["Prod"] {
		t.Errorf("installations serve %v, want Dev and Prod", names)
	}
}

// TestLinkTokenOnce: a link token links one agent; presenting it again is
// refused and creates nothing.
func TestLinkTokenOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := startHub(t, testbed.FreeAddr(t), filepath.Join(dir, "hub"))
	h.setupOrg(t, "acme", "Dev")
	tok := h.linkToken(t, "acme", "Dev")
	startAgent(t, h, startAPIM(t, ""), filepath.Join(dir, "a1"), tok)
	testbed.WaitFor(t, 15*time.Second, "first agent online", func() bool { return h.online(t, "acme") == 1 })

	st, body := testbed.DoJSON(t, "POST", h.url+"/api/v1/link/enroll", tok, map[string]string{"agentVersion": "x"}, nil)
	if st != http.StatusUnauthorized || !strings.Contains(body, `"code":"link_token_used"`) {
		t.Errorf("second use of a link token: %d %s; want 401 link_token_used", st, body)
	}
	if n := len(h.installations(t, "acme")); n != 1 {
		t.Errorf("%d installations after a refused reuse, want 1", n)
	}
	reused := 0
	for _, e := range h.audit(t, "acme") {
		if e.Event == "LINK_TOKEN_REUSED" {
			reused++
		}
	}
	if reused != 1 {
		t.Errorf("%d LINK_TOKEN_REUSED audit entries after the reuse, want 1", reused)
	}
}

// TestHubRestartAgentsReturn: after the hub is killed and started again, the
// agents reconnect on their own.
func TestHubRestartAgentsReturn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := testbed.FreeAddr(t)
	h := startHub(t, addr, filepath.Join(dir, "hub"))
	h.setupOrg(t, "demo", "Dev", "Prod")
	startAgent(t, h, startAPIM(t, ""), filepath.Join(dir, "dev"), h.linkToken(t, "demo", "Dev"))
	startAgent(t, h, startAPIM(t, ""), filepath.Join(dir, "prod"), h.linkToken(t, "demo", "Prod"))
	testbed.WaitFor(t, 15*time.Second, "two online", func() bool { return h.online(t, "demo") == 2 })

	h.Kill()
	h2 := startHub(t, addr, filepath.Join(dir, "hub"))
	if n := metric(t, h2.url, "ferry_hub_agents_connected"); n > 2 {
		t.Fatalf("agents_connected = %v", n)
	}
	testbed.WaitFor(t, 45*time.Second, "agents back online after hub restart", func() bool { return h2.online(t, "demo") == 2 })
}

// TestSilentAgentGoesOffline: an agent that stops answering (SIGSTOP) is
// shown offline within 40 s, with the default link timing.
func TestSilentAgentGoesOffline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := startHub(t, testbed.FreeAddr(t), filepath.Join(dir, "hub"))
	h.setupOrg(t, "demo", "Dev")
	ag := startAgent(t, h, startAPIM(t, ""), filepath.Join(dir, "dev"), h.linkToken(t, "demo", "Dev"))
	testbed.WaitFor(t, 15*time.Second, "online", func() bool { return h.online(t, "demo") == 1 })

	ag.Signal(syscall.SIGSTOP)
	defer ag.Signal(syscall.SIGCONT)
	took := testbed.WaitFor(t, 40*time.Second, "silent agent shown offline", func() bool { return h.online(t, "demo") == 0 })
	t.Logf("silent agent shown offline after %v", took.Round(time.Second))
	if got := metric(t, h.url, "ferry_hub_agents_connected"); got != 0 {
		t.Errorf("ferry_hub_agents_connected = %v after the agent went silent, want 0", got)
	}
	ag.Signal(syscall.SIGCONT)
	testbed.WaitFor(t, 70*time.Second, "agent back online after SIGCONT", func() bool { return h.online(t, "demo") == 1 })
}

// TestBrowserOriginRefused: a page in a browser cannot open an agent link
// even with a valid credential.
func TestBrowserOriginRefused(t *testing.T) {
	t.Parallel()
	h := startHub(t, testbed.FreeAddr(t), filepath.Join(t.TempDir(), "hub"))
	req, _ := http.NewRequest("GET", h.url+"/api/v1/link", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Authorization", "Bearer ferry_ic_whatever")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("browser origin: status %d, want 403", resp.StatusCode)
	}
	if !strings.Contains(resp.Header.Get("Content-Type"), "problem+json") {
		t.Errorf("refusal content type %q, want problem+json", resp.Header.Get("Content-Type"))
	}
}

// TestRevokedInstallationIsDisconnected is catalogue rows C7 and W26: an
// administrator revokes an installation; its open link is closed within
// 10 s, it is gone from the inventory, its credential is refused with 401
// at the link, and the revocation is audited.
func TestRevokedInstallationIsDisconnected(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := startHub(t, testbed.FreeAddr(t), filepath.Join(dir, "hub"))
	h.setupOrg(t, "acme", "Dev")
	ag := startAgent(t, h, startAPIM(t, ""), filepath.Join(dir, "a1"), h.linkToken(t, "acme", "Dev"))
	testbed.WaitFor(t, 15*time.Second, "agent online", func() bool { return h.online(t, "acme") == 1 })
	if n := metric(t, h.url, "ferry_hub_agents_connected"); n != 1 {
		t.Fatalf("ferry_hub_agents_connected = %v before the revocation, want 1", n)
	}
	id := h.installations(t, "acme")[0].ID
	cred, err := os.ReadFile(filepath.Join(ag.dir, "credential"))
	if err != nil {
		t.Fatal(err)
	}

	if st := h.call(t, "DELETE", "/api/v1/orgs/acme/installations/"+id, nil, nil); st != http.StatusOK {
		t.Fatalf("revoke: status %d", st)
	}
	revoked := time.Now()
	if n := len(h.installations(t, "acme")); n != 0 {
		t.Errorf("%d installations after the revocation, want 0", n)
	}
	testbed.WaitFor(t, 10*time.Second, "the revoked agent's link closed", func() bool {
		return metric(t, h.url, "ferry_hub_agents_connected") == 0
	})
	if d := time.Since(revoked); d > 10*time.Second {
		t.Errorf("the link closed %v after the revocation, want ≤ 10s", d)
	}
	// The agent keeps trying; each attempt is refused.
	req, _ := http.NewRequest("GET", h.url+"/api/v1/link", nil)
	for k, v := range map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "ferry.v1", "Authorization": "Bearer " + strings.TrimSpace(string(cred))} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("link upgrade with the revoked credential: %d, want 401", resp.StatusCode)
	}
	n := 0
	for _, e := range h.audit(t, "acme") {
		if e.Event == "INSTALLATION_REVOKED" && strings.Contains(e.Detail, id) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d INSTALLATION_REVOKED audit entries, want 1", n)
	}
	time.Sleep(2 * time.Second) // the agent's next attempts
	if n := metric(t, h.url, "ferry_hub_agents_connected"); n != 0 {
		t.Errorf("ferry_hub_agents_connected = %v after the revocation, want 0: the revoked agent got back in", n)
	}
}
