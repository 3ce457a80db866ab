package daemon

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"ferry.dev/agent/internal/config"
	"ferry.dev/agent/internal/hubtest"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// hubKeys is the fake hub's session signing key.
type hubKeys struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newHubKeys(t *testing.T) hubKeys {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return hubKeys{pub, priv}
}

// hello answers the agent's hello for Prod, with the session key.
func (k hubKeys) hello(*hubtest.Conn, *protocol.Hello) (*protocol.HelloReply, error) {
	r := hubtest.DefaultHelloReply()
	r.Environments = []protocol.Environment{{ID: "env_prod", Name: "Prod"}}
	r.SessionKeys = []string{session.EncodeKey(k.pub)}
	return r, nil
}

// sign issues a session of the hubtest organization until exp, with the
// permissions to decide in env; no env gives no permission.
func (k hubKeys) sign(t *testing.T, sub, name string, exp time.Time, env string, ps ...session.Permission) string {
	t.Helper()
	if len(ps) == 0 {
		ps = []session.Permission{session.EnvAPIRead, session.EnvAPICreate, session.EnvAPIUpdate}
	}
	c := session.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: sub, IssuedAt: jwt.NewNumericDate(exp.Add(-time.Hour)), ExpiresAt: jwt.NewNumericDate(exp)},
		Org:              hubtest.DefaultHelloReply().OrgID, Name: name,
	}
	if env != "" {
		c.Env = map[string][]session.Permission{env: ps}
	}
	tok, err := session.Sign(c, k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// startDaemon runs an agent until the returned stop is called, once its
// HTTP surface answers.
func startDaemon(t *testing.T, cfg config.Config) (stop func()) {
	t.Helper()
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := call(t, http.MethodGet, "http://"+cfg.Listen+"/healthz", ""); code == http.StatusOK {
			return stop
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatal("the agent never served /healthz")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// call sends a request with a bearer session (none when tok is empty) and
// a JSON content type, and returns the status and body; 0 when the request
// did not get through.
func call(t *testing.T, method, url, tok string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitKeys waits until the agent verifies sessions: it learned (and
// persisted) the hub's keys from the hello.
func waitKeys(t *testing.T, base, tok string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := call(t, http.MethodGet, base+"/api/v1/session", tok)
		if code == http.StatusOK {
			return
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("GET /api/v1/session = %d %s", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
