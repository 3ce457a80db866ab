package taskstore

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func sampleTask(id string) Task {
	return Task{
		ID: id, OrgID: "org_1", SourceEnvID: "env_dev", SourceEnvName: "Dev", TargetEnvID: "env_prod",
		TargetEnvName: "Prod", APIID: "api-1", CrossID: "cross-1", APIName: "Echo", APIVersion: "1.0",
		Requester: "alice", Definition: []byte(`{"api":{"crossId":"cross-1"}}`), RequestedAt: t0, ReceivedAt: t0.Add(time.Second),
	}
}

func TestAddTaskIsIdempotentAndDurable(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	in := sampleTask("pro_1")
	ok, err := s.AddTask(ctx, in)
	if err != nil || !ok {
		t.Fatalf("AddTask = %v, %v; want true, nil", ok, err)
	}
	dup := in
	dup.APIName = "changed"
	if ok, err := s.AddTask(ctx, dup); err != nil || ok {
		t.Fatalf("duplicate AddTask = %v, %v; want false, nil", ok, err)
	}
	s.Close()

	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	got, err := s2.Task(ctx, "pro_1")
	if err != nil {
		t.Fatalf("Task: %v", err)
	}
	want := in
	want.State = StatePending
	want.UpdatedAt = in.ReceivedAt
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("task after reopen (-want +got):\n%s", diff)
	}
	list, err := s2.Tasks(ctx, StatePending)
	if err != nil || len(list) != 1 || list[0].Definition != nil {
		t.Errorf("Tasks(PENDING) = %+v, %v; want one task without definition", list, err)
	}
	if _, err := s2.Task(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Task(unknown) error = %v, want ErrNotFound", err)
	}
}

func TestTransitions(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	for _, id := range []string{"a", "b", "c"} {
		if _, err := s.AddTask(ctx, sampleTask(id)); err != nil {
			t.Fatal(err)
		}
	}
	// a: accept → decided.
	task, err := s.BeginAccept(ctx, "a", "console@host", "", t0)
	if err != nil || task.State != StateAccepting || task.Actor != "console@host" || len(task.Definition) == 0 {
		t.Fatalf("BeginAccept = %+v, %v", task, err)
	}
	if _, err := s.BeginAccept(ctx, "a", "x", "", t0); !errors.Is(err, ErrConflict) {
		t.Errorf("second BeginAccept error = %v, want ErrConflict", err)
	}
	if _, err := s.Cancel(ctx, "a", "hub", t0); !errors.Is(err, ErrConflict) {
		t.Errorf("Cancel(ACCEPTING) error = %v, want ErrConflict", err)
	}
	d := Decision{PromotionID: "a", CrossID: "cross-1", Outcome: OutcomeAccepted, Actor: "console@host", TargetAPIID: "t-1", Created: true, DecidedAt: t0}
	if err := s.Decide(ctx, d, StatePending, t0); !errors.Is(err, ErrConflict) {
		t.Errorf("Decide from the wrong state error = %v, want ErrConflict", err)
	}
	if _, err := s.Decision(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused Decide stored a decision: %v", err)
	}
	if err := s.Decide(ctx, d, StateAccepting, t0); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if err := s.Decide(ctx, d, StateAccepting, t0); !errors.Is(err, ErrConflict) {
		t.Errorf("second Decide error = %v, want ErrConflict", err)
	}
	// b: cancel, twice.
	if changed, err := s.Cancel(ctx, "b", "withdrawn", t0); err != nil || !changed {
		t.Errorf("Cancel = %v, %v; want true, nil", changed, err)
	}
	if changed, err := s.Cancel(ctx, "b", "withdrawn", t0); err != nil || changed {
		t.Errorf("second Cancel = %v, %v; want false, nil", changed, err)
	}
	if _, err := s.BeginAccept(ctx, "b", "x", "", t0); !errors.Is(err, ErrConflict) {
		t.Errorf("BeginAccept(CANCELLED) error = %v, want ErrConflict", err)
	}
	if _, err := s.Cancel(ctx, "zzz", "", t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Cancel(unknown) error = %v, want ErrNotFound", err)
	}
	// c: reject straight from pending.
	if err := s.Decide(ctx, Decision{PromotionID: "c", CrossID: "cross-1", Outcome: OutcomeRejected, Actor: "bob", Reason: "no", DecidedAt: t0.Add(time.Minute)}, StatePending, t0); err != nil {
		t.Fatalf("reject: %v", err)
	}
	if n, _ := s.CountTasks(ctx, StatePending); n != 0 {
		t.Errorf("pending tasks = %d, want 0", n)
	}
	// The accepted API is remembered by crossId; the rejection is not.
	if id, ok, err := s.LastAcceptedAPI(ctx, "cross-1"); err != nil || !ok || id != "t-1" {
		t.Errorf("LastAcceptedAPI = %q, %v, %v; want t-1", id, ok, err)
	}
	if _, ok, _ := s.LastAcceptedAPI(ctx, "other"); ok {
		t.Error("LastAcceptedAPI(other) found something")
	}
}

func TestOutbox(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	for i, id := range []string{"a", "b", "c"} {
		if _, err := s.AddTask(ctx, sampleTask(id)); err != nil {
			t.Fatal(err)
		}
		d := Decision{PromotionID: id, CrossID: "x", Outcome: OutcomeRejected, Actor: "bob", DecidedAt: t0.Add(time.Duration(i) * time.Second)}
		if err := s.Decide(ctx, d, StatePending, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ReportFailed(ctx, "a", "hub down"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkReported(ctx, "b", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkAbandoned(ctx, "c", "conflict"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkReported(ctx, "c", t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkReported(abandoned) error = %v, want ErrNotFound", err)
	}
	s.Close()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Unreported(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].PromotionID != "a" || got[0].Attempts != 1 || got[0].LastError != "hub down" {
		t.Errorf("Unreported after restart = %+v; want only a, 1 attempt", got)
	}
}

func TestUpsertPromotionsNeverGoesBackwards(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	p := Promotion{ID: "p1", Status: "TO_BE_VALIDATED", CreatedAt: t0, UpdatedAt: t0}
	older := Promotion{ID: "p0", Status: "ACCEPTED", Terminal: true, CreatedAt: t0.Add(-time.Hour), UpdatedAt: t0}
	if err := s.UpsertPromotions(ctx, p, older); err != nil {
		t.Fatal(err)
	}
	done := p
	done.Status, done.Terminal, done.UpdatedAt, done.TargetAPIID = "ACCEPTED", true, t0.Add(time.Minute), "t-1"
	stale := p
	stale.UpdatedAt = t0.Add(-time.Minute)
	sameTime := p
	sameTime.UpdatedAt = done.UpdatedAt
	for _, u := range []Promotion{done, stale, sameTime} {
		if err := s.UpsertPromotions(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Promotions(ctx, PromotionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Promotion{done, older}, got); diff != "" {
		t.Errorf("promotions (-want +got):\n%s", diff)
	}
	got, _ = s.Promotions(ctx, PromotionFilter{Status: "TO_BE_VALIDATED"})
	if len(got) != 0 {
		t.Errorf("status filter returned %+v", got)
	}
}

func TestConcurrentAcceptAndCancelOneWins(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	for range 20 {
		id := "race"
		if _, err := s.AddTask(ctx, sampleTask(id)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var acceptErr, cancelErr error
		wg.Go(func() { _, acceptErr = s.BeginAccept(ctx, id, "a", "", t0) })
		wg.Go(func() { _, cancelErr = s.Cancel(ctx, id, "hub", t0) })
		wg.Wait()
		if (acceptErr == nil) == (cancelErr == nil) {
			t.Fatalf("accept err %v, cancel err %v: want exactly one to win", acceptErr, cancelErr)
		}
		if _, err := s.db.ExecContext(ctx, `DELETE FROM tasks`); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	s, path := openTemp(t)
	if _, err := s.db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s2, err := Open(context.Background(), path); err == nil {
		s2.Close()
		t.Fatal("Open accepted a database from a newer agent")
	}
}
