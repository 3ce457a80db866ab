package storetest

import (
	"fmt"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
)

// testConnections checks an installation's connection history: newest
// first (events of the same millisecond in the order recorded), kept per
// installation, limited by the caller, trimmed to MaxConnectionEvents, and
// refused without an installation or an event.
func testConnections(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	rec := func(ins string, minute int, event, reason string) {
		t.Helper()
		must(t, "RecordConnection", s.RecordConnection(ctx, state.ConnectionEvent{InstallationID: ins, OrgID: "o1",
			At: at(time.Duration(minute) * time.Minute), Event: event, Reason: reason, Remote: "192.0.2.7:40000"}))
	}
	rec("ins_a", 1, state.ConnectionOpened, "")
	rec("ins_b", 2, state.ConnectionOpened, "")
	rec("ins_a", 3, state.ConnectionClosed, "silent")
	rec("ins_a", 3, state.ConnectionOpened, "") // same millisecond: recorded after
	got, err := s.ListConnections(ctx, "ins_a", 0)
	must(t, "ListConnections", err)
	want := []state.ConnectionEvent{
		{InstallationID: "ins_a", OrgID: "o1", At: at(3 * time.Minute), Event: state.ConnectionOpened, Remote: "192.0.2.7:40000"},
		{InstallationID: "ins_a", OrgID: "o1", At: at(3 * time.Minute), Event: state.ConnectionClosed, Reason: "silent", Remote: "192.0.2.7:40000"},
		{InstallationID: "ins_a", OrgID: "o1", At: at(time.Minute), Event: state.ConnectionOpened, Remote: "192.0.2.7:40000"},
	}
	diff(t, "ListConnections(ins_a)", want, got)
	if got, err := s.ListConnections(ctx, "ins_a", 1); err != nil || len(got) != 1 || got[0].Event != state.ConnectionOpened {
		t.Errorf("ListConnections(ins_a, 1) = %+v, %v; want the newest only", got, err)
	}
	if got, err := s.ListConnections(ctx, "ins_none", 0); err != nil || len(got) != 0 {
		t.Errorf("ListConnections of an installation without events = %+v, %v", got, err)
	}

	for i := range state.MaxConnectionEvents + 5 {
		event := state.ConnectionOpened
		if i%2 == 1 {
			event = state.ConnectionClosed
		}
		rec("ins_c", 10+i, event, fmt.Sprint(i))
	}
	got, err = s.ListConnections(ctx, "ins_c", 1000)
	must(t, "ListConnections", err)
	if len(got) != state.MaxConnectionEvents || got[0].Reason != fmt.Sprint(state.MaxConnectionEvents+4) || got[len(got)-1].Reason != "5" {
		t.Errorf("after %d events: %d kept, newest %q, oldest %q; want the newest %d (104 … 5)", state.MaxConnectionEvents+5, len(got),
			got[0].Reason, got[len(got)-1].Reason, state.MaxConnectionEvents)
	}
	if got, err := s.ListConnections(ctx, "ins_b", 0); err != nil || len(got) != 1 {
		t.Errorf("another installation's history after the trim: %+v, %v", got, err)
	}
	for _, bad := range []state.ConnectionEvent{{Event: state.ConnectionOpened}, {InstallationID: "ins_a"}} {
		if err := s.RecordConnection(ctx, bad); err == nil {
			t.Errorf("RecordConnection(%+v) accepted", bad)
		}
	}
}
