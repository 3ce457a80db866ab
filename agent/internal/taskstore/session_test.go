package taskstore

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ferry.dev/agent/internal/authn"
)

// TestSessionTokenLifetime: the accepting user's token travels from the task
// (while ACCEPTING) to the decision (until reported or abandoned), and is
// erased from each as soon as it is not needed.
func TestSessionTokenLifetime(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	for _, id := range []string{"a", "b"} {
		if _, err := s.AddTask(ctx, sampleTask(id)); err != nil {
			t.Fatal(err)
		}
	}
	task, err := s.BeginAccept(ctx, "a", "Ada (usr_1)", "tok-a", t0)
	if err != nil || task.Session != "tok-a" {
		t.Fatalf("BeginAccept = %q, %v", task.Session.Reveal(), err)
	}
	// Survives a restart, for a resumed accept.
	s.Close()
	if s, err = Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if task, _ = s.Task(ctx, "a"); task.Session != "tok-a" {
		t.Errorf("task session after restart = %q", task.Session.Reveal())
	}
	d := Decision{PromotionID: "a", CrossID: "cross-1", Outcome: OutcomeAccepted, Actor: task.Actor, TargetAPIID: "t-1", DecidedAt: t0, Session: task.Session}
	if err := s.Decide(ctx, d, StateAccepting, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Decide(ctx, Decision{PromotionID: "b", CrossID: "cross-1", Outcome: OutcomeRejected, Actor: "Bob (usr_2)", DecidedAt: t0, Session: "tok-b"}, StatePending, t0); err != nil {
		t.Fatal(err)
	}
	if task, _ = s.Task(ctx, "a"); task.Session != "" {
		t.Errorf("decided task still holds the session")
	}
	got, err := s.Unreported(ctx)
	if err != nil || len(got) != 2 || got[0].Session != "tok-a" || got[1].Session != "tok-b" {
		t.Fatalf("Unreported = %+v, %v", got, err)
	}
	if err := s.MarkReported(ctx, "a", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkAbandoned(ctx, "b", "conflict"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM tasks WHERE session != '') + (SELECT count(*) FROM decisions WHERE session != '')`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d session tokens left after the reports (%v)", n, err)
	}
}

func TestIdentityRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	if _, ok, err := s.Identity(ctx); ok || err != nil {
		t.Fatalf("Identity of a new store = %v, %v", ok, err)
	}
	k1, _, _ := ed25519.GenerateKey(nil)
	k2, _, _ := ed25519.GenerateKey(nil)
	want := authn.Identity{OrgID: "org_a", OrgName: "Acme", InstallationID: "ins_1",
		Environments: []authn.Environment{{ID: "env_prod", Name: "Prod"}}, Keys: []ed25519.PublicKey{k1, k2}, LearnedAt: t0}
	if err := s.SaveIdentity(ctx, authn.Identity{OrgID: "org_old", LearnedAt: t0.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveIdentity(ctx, want); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, _ = Open(ctx, path); s == nil {
		t.Fatal("reopen failed")
	}
	defer s.Close()
	got, ok, err := s.Identity(ctx)
	if err != nil || !ok {
		t.Fatalf("Identity = %v, %v", ok, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
}

// TestMigrateFromVersion1: a database written by the previous agent keeps
// its tasks and decisions and gains the new columns and table.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(migrations[0] + `PRAGMA user_version = 1;`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO tasks (id, state, target_env_id, cross_id, definition, requested_at, received_at, updated_at, actor)
		VALUES ('p1', 'ACCEPTING', 'env_prod', 'x', X'7B7D', 1, 1, 1, 'console@host');
		INSERT INTO tasks (id, state, target_env_id, cross_id, definition, requested_at, received_at, updated_at)
		VALUES ('p2', 'DECIDED', 'env_prod', 'x', X'7B7D', 1, 1, 1);
		INSERT INTO decisions (promotion_id, cross_id, outcome, actor, decided_at, report_state)
		VALUES ('p2', 'x', 'REJECTED', 'console@host', 1, 'PENDING')`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open (migrate): %v", err)
	}
	defer s.Close()
	var v int
	if err := s.db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != schemaVersion {
		t.Errorf("user_version = %d, %v; want %d", v, err, schemaVersion)
	}
	task, err := s.Task(ctx, "p1")
	if err != nil || task.State != StateAccepting || task.Actor != "console@host" || task.Session != "" {
		t.Errorf("migrated task = %+v, %v", task, err)
	}
	ds, err := s.Unreported(ctx)
	if err != nil || len(ds) != 1 || ds[0].PromotionID != "p2" || ds[0].Session != "" {
		t.Errorf("migrated outbox = %+v, %v", ds, err)
	}
	if _, ok, err := s.Identity(ctx); ok || err != nil {
		t.Errorf("migrated identity = %v, %v; want none", ok, err)
	}
}
