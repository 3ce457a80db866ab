package server

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"ferry.dev/hub/internal/api"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// TestConnectionHistory: the hub records each link of an installation
// opening and closing, with why it closed and where it came from, and
// answers them newest first to the organization's admins; another
// organization's installation is not found.
func TestConnectionHistory(t *testing.T) {
	t.Parallel()
	s := startRESTHub(t, nil)
	h := &rotationHub{refusalsHub: &refusalsHub{t: t, base: "http://" + s.Addr()}}
	h.must(http.StatusCreated, "POST", "/api/v1/orgs", "org-acme", `{"name":"acme"}`, nil)
	h.must(http.StatusCreated, "POST", "/api/v1/orgs/acme/environments", "env-Dev", `{"name":"Dev"}`, nil)
	h.must(http.StatusCreated, "POST", "/api/v1/orgs", "org-globex", `{"name":"globex"}`, nil)
	id, cred := h.enroll("Dev")
	agent := newRotationAgent()

	first := agent.mustDial(h, "the first link", cred)
	second := agent.mustDial(h, "the second link", cred) // supersedes the first
	if code, _ := first.Wait(t.Context()); code != protocol.CloseSuperseded {
		t.Errorf("first link closed with %d, want superseded", code)
	}
	if err := second.Goodbye("agent shutting down"); err != nil {
		t.Fatal(err)
	}
	second.Wait(t.Context())

	var got struct{ Items []api.ConnectionDTO }
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.must(http.StatusOK, "GET", "/api/v1/orgs/acme/installations/"+id+"/connections", "", "", &got)
		if len(got.Items) >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var events []string
	for _, e := range got.Items {
		events = append(events, e.Event+" "+e.Reason)
		if e.Remote == "" || e.At.IsZero() {
			t.Errorf("event %+v lacks its remote address or time", e)
		}
	}
	// Newest first. The first link's close and the second's opening are
	// recorded in the order the hub saw them, which may be either.
	if len(events) != 4 || events[0] != "DISCONNECTED goodbye" || events[3] != "CONNECTED " ||
		!(events[1] == "CONNECTED " && events[2] == "DISCONNECTED superseded" || events[1] == "DISCONNECTED superseded" && events[2] == "CONNECTED ") {
		t.Errorf("history = %q; want the goodbye, the second link, the first superseded, the first link", events)
	}
	if st, _, b := h.call("GET", "/api/v1/orgs/globex/installations/"+id+"/connections", "", ""); st != http.StatusNotFound {
		t.Errorf("another organization's installation history: %d %s, want 404", st, b)
	}
}

// slowStore is a store whose RecordConnection takes a while.
type slowStore struct {
	state.Store
	delay time.Duration
	n     atomic.Int32
}

func (s *slowStore) RecordConnection(ctx context.Context, e state.ConnectionEvent) error {
	s.n.Add(1)
	time.Sleep(s.delay)
	return nil
}

// TestConnLogCloseIsBounded: at shutdown the history writes what it can
// in the time given and drops the rest, so a hub closing many links over a
// slow store still stops in time; events after close are dropped.
func TestConnLogCloseIsBounded(t *testing.T) {
	st := &slowStore{delay: 50 * time.Millisecond}
	l := newConnLog(st, slog.New(slog.DiscardHandler))
	for range 100 {
		l.add(state.ConnectionEvent{InstallationID: "ins_1", Event: state.ConnectionClosed})
	}
	start := time.Now()
	l.close(300 * time.Millisecond)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("close took %v with 100 events of 50 ms queued and 300 ms given", d)
	}
	if n := st.n.Load(); n == 0 || n == 100 {
		t.Errorf("%d of 100 events written, want some and not all", n)
	}
	l.add(state.ConnectionEvent{InstallationID: "ins_1", Event: state.ConnectionOpened}) // must not panic or block
}
