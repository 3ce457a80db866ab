package daemon

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"ferry.dev/agent/apimsim"
	"ferry.dev/agent/internal/config"
	"ferry.dev/agent/internal/enroll"
	"ferry.dev/agent/internal/hubtest"
	"ferry.dev/shared/protocol"
)

// TestRotatedCredentialKept: the hub sends the agent a new credential; by
// the time the agent acknowledges it, it is in the credential file (0600);
// the agent presents it on its next link, and again after a restart.
func TestRotatedCredentialKept(t *testing.T) {
	apimTS := httptest.NewServer(apimsim.New(apimsim.Options{}))
	defer apimTS.Close()
	var mu sync.Mutex
	var presented []string
	hub := &hubtest.Hub{
		Authorize: func(cred string) int {
			mu.Lock()
			defer mu.Unlock()
			presented = append(presented, cred)
			return 0
		},
		// A hub of one agent: it comes back at once after a dropped link.
		OnHello: func(*hubtest.Conn, *protocol.Hello) (*protocol.HelloReply, error) {
			r := hubtest.DefaultHelloReply()
			r.ReconnectSpreadMs = 1
			return r, nil
		},
		OnCommand: func(*hubtest.Conn, *protocol.Command) *protocol.Reply {
			return protocol.ErrorReply(protocol.CodeUnavailable, "not in this test")
		},
	}
	hub.Start(t)
	last := func() string {
		mu.Lock()
		defer mu.Unlock()
		return presented[len(presented)-1]
	}

	dataDir := t.TempDir()
	file := filepath.Join(dataDir, enroll.CredentialFile)
	if err := os.WriteFile(file, []byte("cred-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{HubURL: hub.URL(), APIMURL: apimTS.URL + "/management/v2", APIMEnv: "DEFAULT", Listen: freeAddr(t), DataDir: dataDir, LogFormat: "text"}
	stop := startDaemon(t, cfg)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := hub.WaitConn(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := last(); got != "cred-test" {
		t.Fatalf("first link presented %q, want cred-test", got)
	}

	const rotated = "ferry_ic_rotatedRotatedRotatedRotatedRotated0000abcdef"
	rep, err := conn.Call(ctx, protocol.OpRotateCredential, protocol.CredentialRotation{Credential: rotated})
	if err != nil || rep.Status != protocol.StatusOK {
		t.Fatalf("rotate = %+v, %v", rep, err)
	}
	b, err := os.ReadFile(file)
	if err != nil || string(b) != rotated+"\n" {
		t.Fatalf("credential file when the agent acknowledged = %q, %v; want the new credential", b, err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("credential file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dataDir, ".credential-*")); len(tmp) != 0 {
		t.Errorf("temporary files left behind: %v", tmp)
	}

	// The next link presents the new credential.
	conn.Drop()
	if _, err := hub.WaitConn(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if got := last(); got != rotated {
		t.Errorf("the link after the rotation presented %q, want the new credential", got)
	}

	// So does the agent after a restart.
	stop()
	cfg.Listen = freeAddr(t)
	defer startDaemon(t, cfg)()
	if _, err := hub.WaitConn(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if got := last(); got != rotated {
		t.Errorf("the restarted agent presented %q, want the new credential", got)
	}
}
