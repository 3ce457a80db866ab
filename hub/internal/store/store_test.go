package store

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
	"ferry.dev/hub/internal/store/mongotest"
	"ferry.dev/hub/internal/store/storetest"
	"ferry.dev/shared/protocol"
)

// crashable adds storetest.Crasher to an engine.
type crashable struct {
	state.Store
	locks promotionLocks
}

func (c crashable) LeaveLock(ctx context.Context, targetEnvID, crossID, promotionID string, lockedAt time.Time) error {
	return c.locks.insertLock(ctx, lockKey{TargetEnvID: targetEnvID, CrossID: crossID}, promotionID, msTime(lockedAt))
}

// testLogger discards everything.
func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openSQLite opens a SQLite store in a temporary directory.
func openSQLite(t testing.TB) *SQLite {
	t.Helper()
	s, err := OpenSQLite(t.Context(), t.TempDir(), testLogger())
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openMongo opens a Mongo store on FerretDB (or FERRY_TEST_MONGO_URI).
func openMongo(t testing.TB) *Mongo {
	t.Helper()
	uri, db := mongotest.Start(t)
	s, err := OpenMongo(t.Context(), uri, MongoOptions{Database: db, MaxPoolSize: 1}, testLogger())
	if err != nil {
		t.Fatalf("OpenMongo: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenMongoUnreachable(t *testing.T) {
	// Nothing listens on port 1 of the loopback interface.
	_, err := OpenMongo(t.Context(), "mongodb://127.0.0.1:1/", MongoOptions{Timeout: 300 * time.Millisecond}, testLogger())
	if !errors.Is(err, state.ErrUnavailable) {
		t.Errorf("OpenMongo(unreachable) = %v, want ErrUnavailable", err)
	}
}

func TestOpenSQLiteReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "state")
	ctx := t.Context()
	s, err := OpenSQLite(ctx, dir, testLogger())
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	if err := s.CreateOrg(ctx, state.Org{ID: "o1", Name: "acme"}); err != nil {
		t.Fatalf("CreateOrg: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		t.Errorf("Stat(%s): %v", dir, err)
	} else if fi.Mode().Perm() != 0o700 {
		t.Errorf("directory %s has mode %v, want 0700", dir, fi.Mode().Perm())
	}
	s, err = OpenSQLite(ctx, dir, testLogger())
	if err != nil {
		t.Fatalf("OpenSQLite again: %v", err)
	}
	defer s.Close()
	var version int
	var mode string
	if err := s.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil || version != len(migrations) {
		t.Errorf("user_version = %d, %v; want %d", version, err, len(migrations))
	}
	if err := s.r.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	if _, err := s.Org(ctx, "acme"); err != nil {
		t.Errorf("Org after reopening: %v", err)
	}
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) state.Store {
		s := openSQLite(t)
		return crashable{Store: s, locks: s}
	})
}

func TestMongo(t *testing.T) {
	// FerretDB is slow to find a trail's tail and serialises everything on
	// one connection, so the concurrent-append case is sized down
	// (FERRY_AUDIT_APPENDS restores the defaults).
	cfg := storetest.Config{AuditAppends: 40, AuditHubs: 2}
	if os.Getenv("FERRY_AUDIT_APPENDS") != "" {
		cfg = storetest.Config{}
	}
	storetest.RunConfig(t, cfg, func(t *testing.T) state.Store {
		s := openMongo(t)
		return crashable{Store: s, locks: s}
	})
}

// TestSQLiteUpgrade opens a database made by the first schema version and
// checks that its records read back after the upgrade.
func TestSQLiteUpgrade(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "hub.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		migrations[0],
		`PRAGMA user_version = 1`,
		`INSERT INTO api_tokens (id, hash, org_id, name, created_at) VALUES ('a1', 'h1', '', 'platform admin', 1000)`,
		`INSERT INTO promotions (id, org_id, source_env_id, target_env_id, api_id, cross_id, api_name, api_version,
			definition, requester, status, delivered, notified, target_api_id, reason)
		 VALUES ('p1', 'o1', 'e1', 'e2', 'a', 'c', 'n', 'v', CAST('{"api":{"name":"n"}}' AS BLOB), 'alice', 'CREATED', 0, 0, '', '')`,
		`INSERT INTO installations (id, org_id, env_ids, credential_hash, agent_version, hostname, online, created_at)
		 VALUES ('i1', 'o1', '["e1"]', 'c1', '1.0.0', 'apim-1', 0, 1000)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s, err := OpenSQLite(ctx, dir, testLogger())
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	defer s.Close()
	tok, err := s.APITokenByHash(ctx, "h1")
	if err != nil || tok.UserID != "" || !tok.RevokedAt.IsZero() || tok.Name != "platform admin" {
		t.Errorf("token after upgrade = %+v, %v", tok, err)
	}
	p, err := s.Promotion(ctx, "p1")
	if err != nil || p.Requester != "alice" || p.RequesterID != "" || string(p.Definition) != `{"api":{"name":"n"}}` {
		t.Errorf("promotion after upgrade = %+v (definition %s), %v", p, p.Definition, err)
	}
	// Its definition moved to its own table (schema 7), and reads back
	// after a status change too.
	up, err := s.UpdatePromotion(ctx, "p1", state.PromotionUpdate{From: []protocol.PromotionStatus{protocol.PromotionCreated}, To: protocol.PromotionCancelled, At: time.UnixMilli(2000)})
	if err != nil || string(up.Definition) != `{"api":{"name":"n"}}` {
		t.Errorf("promotion updated after upgrade = %+v (definition %s), %v", up, up.Definition, err)
	}
	// An installation enrolled before client certificate binding is bound
	// to no key, and keeps linking as before.
	inst, err := s.InstallationByCredential(ctx, "c1")
	if err != nil || inst.ID != "i1" || inst.Hostname != "apim-1" || inst.ClientKeyHash != "" {
		t.Errorf("installation after upgrade = %+v, %v", inst, err)
	}
	// Nor was its credential ever rotated; an empty hash (the previous
	// credential of every such installation) finds nothing.
	if inst.PreviousCredentialHash != "" || !inst.PreviousCredentialExpiresAt.IsZero() || !inst.CredentialRotatedAt.IsZero() || inst.CredentialPending {
		t.Errorf("installation after upgrade has a rotation: %+v", inst)
	}
	if _, err := s.InstallationByCredential(ctx, ""); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("InstallationByCredential(\"\") after upgrade: %v, want not found", err)
	}
	// It can be rotated.
	if _, err := s.SetInstallationCredential(ctx, "i1", inst.Credential(), state.InstallationCredential{Hash: "c2", PreviousHash: "c1", Pending: true}); err != nil {
		t.Errorf("rotate after upgrade: %v", err)
	}
}

// TestOpenSQLiteDataDirInUse: a second hub on the same data directory is
// refused at open with what to do, and the directory is free again once
// the first closes.
func TestOpenSQLiteDataDirInUse(t *testing.T) {
	dir, ctx := t.TempDir(), t.Context()
	s, err := OpenSQLite(ctx, dir, testLogger())
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	_, err = OpenSQLite(ctx, dir, testLogger())
	if err == nil || !strings.Contains(err.Error(), "in use by another ferry-hub") {
		t.Errorf("second OpenSQLite of the same directory = %v, want it refused as in use", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenSQLite(ctx, dir, testLogger())
	if err != nil {
		t.Fatalf("OpenSQLite after the first closed: %v", err)
	}
	s.Close()
}

// TestOpenSQLiteRecoversInterruptedCreation: a hub killed between taking
// a promotion's lock and storing the promotion leaves the lock; the next
// open removes it, so a retry of the request is not refused as conflicting
// with a promotion that does not exist.
func TestOpenSQLiteRecoversInterruptedCreation(t *testing.T) {
	dir, ctx := t.TempDir(), t.Context()
	s, err := OpenSQLite(ctx, dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	k := lockKey{TargetEnvID: "env_prod", CrossID: "cross-1"}
	if err := s.insertLock(ctx, k, "prm_never_stored", time.Now()); err != nil {
		t.Fatal(err)
	}
	kept := lockKey{TargetEnvID: "env_prod", CrossID: "cross-2"}
	p := state.Promotion{ID: "prm_stored", OrgID: "o1", SourceEnvID: "env_dev", TargetEnvID: kept.TargetEnvID, CrossID: kept.CrossID,
		APIID: "api-2", APIName: "two", Definition: []byte(`{}`), Requester: "r", Status: "CREATED", CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if _, err := s.CreatePromotion(ctx, p); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = OpenSQLite(ctx, dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.lockHolder(ctx, k); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("lock of the promotion never stored after reopening: %v, want it gone", err)
	}
	if holder, _, err := s.lockHolder(ctx, kept); err != nil || holder != p.ID {
		t.Errorf("lock of a stored promotion after reopening: %q, %v; want it kept", holder, err)
	}
	p.ID, p.CrossID, p.APIID = "prm_retry", k.CrossID, "api-1"
	if _, err := s.CreatePromotion(ctx, p); err != nil {
		t.Errorf("the retried creation: %v, want it stored", err)
	}
}
