package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry.dev/hub/internal/testbed"
)

// upgradeStatus sends a link upgrade with credential and returns the hub's
// status. It never says hello, so a 101 registers no link: the hub drops
// the connection when the hello does not come, and the agent's own link is
// not superseded.
func upgradeStatus(t *testing.T, hubURL, credential string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", hubURL+"/api/v1/link", nil)
	for k, v := range map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "ferry.v1", "Authorization": "Bearer " + credential} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRotatedCredentialEndToEnd is catalogue row C7's rotation with the real
// binaries: the connected agent gets the new credential and keeps it in its
// data directory while its link stays up; the old credential still opens
// links within the overlap; the agent, restarted, links with the new one.
// (The end of the overlap is covered with a moved clock in the hub's server
// tests.)
func TestRotatedCredentialEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := startHub(t, testbed.FreeAddr(t), filepath.Join(dir, "hub"))
	h.setupOrg(t, "acme", "Dev")
	ag := startAgent(t, h, startAPIM(t, ""), filepath.Join(dir, "a1"), h.linkToken(t, "acme", "Dev"))
	testbed.WaitFor(t, 15*time.Second, "agent online", func() bool { return h.online(t, "acme") == 1 })
	id := h.installations(t, "acme")[0].ID
	file := filepath.Join(ag.dir, "credential")
	read := func() string {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	old := read()

	var r struct {
		AgentNotified               bool
		Detail                      string
		PreviousCredentialExpiresAt time.Time
	}
	if st := h.call(t, "POST", "/api/v1/orgs/acme/installations/"+id+"/_rotate-credential", map[string]any{}, &r); st != http.StatusAccepted {
		t.Fatalf("rotate: status %d", st)
	}
	if !r.AgentNotified || time.Until(r.PreviousCredentialExpiresAt) < 59*time.Minute {
		t.Errorf("rotation = %+v, want the agent notified and the old credential good for an hour", r)
	}
	rotated := read()
	if rotated == old || !strings.HasPrefix(rotated, "ferry_ic_") {
		t.Fatalf("credential file after the rotation holds %.12s…, want a new installation credential", rotated)
	}
	if n := metric(t, h.url, "ferry_hub_agents_connected"); n != 1 || h.online(t, "acme") != 1 {
		t.Errorf("after the rotation: %v agents connected, %d online; the agent's link must stay up", n, h.online(t, "acme"))
	}
	for what, cred := range map[string]string{"old credential within the overlap": old, "new credential": rotated} {
		if st := upgradeStatus(t, h.url, cred); st != http.StatusSwitchingProtocols {
			t.Errorf("link upgrade with the %s: %d, want 101", what, st)
		}
	}

	ag.Stop(t, stopGrace)
	testbed.WaitFor(t, 15*time.Second, "agent offline", func() bool { return h.online(t, "acme") == 0 })
	ag.restart(t)
	testbed.WaitFor(t, 15*time.Second, "restarted agent online with its new credential", func() bool { return h.online(t, "acme") == 1 })
	if got := read(); got != rotated {
		t.Errorf("the restarted agent's credential file changed again")
	}
	n := 0
	for _, e := range h.audit(t, "acme") {
		if e.Event == "CREDENTIAL_ROTATED" && strings.Contains(e.Detail, id) {
			n++
		}
		if strings.Contains(e.Detail, "ferry_ic_") {
			t.Errorf("audit entry %d shows a credential", e.Seq)
		}
	}
	if n != 1 {
		t.Errorf("%d CREDENTIAL_ROTATED entries, want 1", n)
	}
}
