package link_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"ferry.dev/agent/internal/hubtest"
	"ferry.dev/agent/internal/link"
	"ferry.dev/shared/protocol"
)

// credentials records the credential of every link upgrade a fake hub sees.
type credentials struct {
	mu   sync.Mutex
	seen []string
}

func (c *credentials) authorize(cred string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, cred)
	return 0
}

func (c *credentials) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[len(c.seen)-1]
}

// rotate sends the agent a new credential over conn and returns the reply.
func rotate(t *testing.T, conn *hubtest.Conn, cred string) *protocol.Reply {
	t.Helper()
	r, err := conn.Call(ctxTimeout(t, 5*time.Second), protocol.OpRotateCredential, protocol.CredentialRotation{Credential: cred})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	return r
}

// TestRotateCredential: the credential the hub sends is kept before the
// agent acknowledges it and is presented from the next dial on; the link
// it came on stays up, and the same credential sent again is answered ok
// without being kept again.
func TestRotateCredential(t *testing.T) {
	creds := &credentials{}
	hub := startHub(t, &hubtest.Hub{Authorize: creds.authorize})
	entered, release := make(chan string, 4), make(chan struct{})
	var mu sync.Mutex
	var kept []string
	c := newClient(t, hub, func(cfg *link.Config) {
		cfg.KeepCredential = func(_ context.Context, cred string) error {
			entered <- cred
			<-release
			mu.Lock()
			kept = append(kept, cred)
			mu.Unlock()
			return nil
		}
	})
	c.run(t)
	conn := waitConn(t, hub, 1)

	replied := make(chan *protocol.Reply, 1)
	go func() {
		r, err := conn.Call(context.Background(), protocol.OpRotateCredential, protocol.CredentialRotation{Credential: "cred-new"})
		if err != nil {
			t.Errorf("rotate: %v", err)
		}
		replied <- r
	}()
	if got := <-entered; got != "cred-new" {
		t.Fatalf("kept %q, want cred-new", got)
	}
	// The agent is writing the credential: it has not answered.
	select {
	case r := <-replied:
		t.Fatalf("the agent answered %+v before the new credential was kept", r)
	default:
	}
	close(release)
	if r := <-replied; r == nil || r.Status != protocol.StatusOK {
		t.Fatalf("rotate = %+v, want ok", r)
	}
	if c.State() != link.StateConnected || len(hub.Conns()) != 1 {
		t.Errorf("state %v with %d connections after the rotation; the link must stay up", c.State(), len(hub.Conns()))
	}

	// Sent again: ok, and nothing is written.
	if r := rotate(t, conn, "cred-new"); r.Status != protocol.StatusOK {
		t.Errorf("the same credential again = %+v, want ok", r)
	}

	// The next dial presents it.
	conn.Drop()
	conn2 := waitConn(t, hub, 2)
	if got := creds.last(); got != "cred-new" {
		t.Errorf("the dial after the rotation presented %q, want cred-new", got)
	}
	if r := rotate(t, conn2, "cred-new"); r.Status != protocol.StatusOK {
		t.Errorf("the credential in use again = %+v, want ok", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(kept) != 1 {
		t.Errorf("kept %q, want cred-new once", kept)
	}
}

// TestRotateCredentialRefused: a credential the agent could not keep is
// refused with unavailable, and the agent goes on dialling with its old
// one; a malformed one is refused as invalid without being kept; an agent
// that cannot keep credentials answers unsupported.
func TestRotateCredentialRefused(t *testing.T) {
	creds := &credentials{}
	hub := startHub(t, &hubtest.Hub{Authorize: creds.authorize})
	var mu sync.Mutex
	var tried []string
	c := newClient(t, hub, func(cfg *link.Config) {
		cfg.KeepCredential = func(_ context.Context, cred string) error {
			mu.Lock()
			tried = append(tried, cred)
			mu.Unlock()
			return errors.New("disk full")
		}
	})
	c.run(t)
	conn := waitConn(t, hub, 1)
	if r := rotate(t, conn, "cred-new"); r.Status != protocol.StatusError || r.Error.Code != protocol.CodeUnavailable {
		t.Errorf("rotate with a failing disk = %+v, want unavailable", r)
	}
	for _, bad := range []string{"with space", "", "new\nline"} {
		if r := rotate(t, conn, bad); r.Status != protocol.StatusError || r.Error.Code != protocol.CodeInvalid {
			t.Errorf("rotate to %q = %+v, want invalid", bad, r)
		}
	}
	conn.Drop()
	waitConn(t, hub, 2)
	if got := creds.last(); got != "cred-test" {
		t.Errorf("the dial after a failed rotation presented %q, want the old cred-test", got)
	}
	mu.Lock()
	if len(tried) != 1 || tried[0] != "cred-new" {
		t.Errorf("tried to keep %q, want cred-new only", tried)
	}
	mu.Unlock()

	plain := startHub(t, &hubtest.Hub{})
	old := newClient(t, plain, nil)
	old.run(t)
	if r := rotate(t, waitConn(t, plain, 1), "cred-new"); r.Status != protocol.StatusError || r.Error.Code != protocol.CodeUnsupported {
		t.Errorf("rotate without KeepCredential = %+v, want unsupported", r)
	}
}
