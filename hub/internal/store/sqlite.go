package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"ferry.dev/hub/internal/state"
)

// SQLite is the embedded state.Store: one database file in WAL mode.
//
// Writes go through a pool of exactly one connection, so writers queue in
// the process instead of failing with SQLITE_BUSY, and every conditional
// UPDATE … RETURNING runs alone. Reads use a separate read-only pool and,
// thanks to WAL, never wait for the writer.
type SQLite struct {
	w         *sql.DB  // the single writer connection
	r         *sql.DB  // read-only connections
	dirLock   *os.File // held while open (lockDir)
	log       *slog.Logger
	closed    atomic.Bool // set by Close
	closeOnce sync.Once
	closeErr  error
}

var _ state.Store = (*SQLite)(nil)

// busyTimeout is how long a connection waits for a lock held by another
// process (or a checkpoint) before SQLite reports SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// migrations creates and evolves the schema. migrations[i] brings the
// database from PRAGMA user_version i to i+1. Append only; never edit a
// released step.
var migrations = []string{
	// 1: the initial schema. Times are Unix milliseconds (UTC), NULL when
	// zero; booleans are 0 or 1.
	`
CREATE TABLE orgs (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	created_at INTEGER
) STRICT;

CREATE TABLE environments (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL REFERENCES orgs (id),
	name       TEXT NOT NULL,
	created_at INTEGER,
	UNIQUE (org_id, name)
) STRICT;

CREATE TABLE link_tokens (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	env_id     TEXT NOT NULL,
	hash       TEXT NOT NULL UNIQUE,
	created_at INTEGER,
	expires_at INTEGER,
	used_at    INTEGER
) STRICT;

CREATE TABLE installations (
	id              TEXT PRIMARY KEY,
	org_id          TEXT NOT NULL,
	env_ids         TEXT NOT NULL, -- JSON array of strings
	credential_hash TEXT NOT NULL UNIQUE,
	agent_version   TEXT NOT NULL,
	hostname        TEXT NOT NULL,
	online          INTEGER NOT NULL,
	last_seen       INTEGER,
	created_at      INTEGER
) STRICT;
CREATE INDEX installations_org ON installations (org_id);

CREATE TABLE api_tokens (
	id         TEXT PRIMARY KEY,
	hash       TEXT NOT NULL UNIQUE,
	org_id     TEXT NOT NULL,
	name       TEXT NOT NULL,
	created_at INTEGER
) STRICT;

CREATE TABLE promotions (
	id            TEXT PRIMARY KEY,
	org_id        TEXT NOT NULL,
	source_env_id TEXT NOT NULL,
	target_env_id TEXT NOT NULL,
	api_id        TEXT NOT NULL,
	cross_id      TEXT NOT NULL,
	api_name      TEXT NOT NULL,
	api_version   TEXT NOT NULL,
	definition    BLOB,
	requester     TEXT NOT NULL,
	status        TEXT NOT NULL,
	delivered     INTEGER NOT NULL,
	notified      INTEGER NOT NULL,
	target_api_id TEXT NOT NULL,
	reason        TEXT NOT NULL,
	created_at    INTEGER,
	updated_at    INTEGER,
	delivered_at  INTEGER,
	decided_at    INTEGER
) STRICT;
CREATE INDEX promotions_org_created ON promotions (org_id, created_at DESC, id);
CREATE INDEX promotions_created ON promotions (created_at DESC, id);
CREATE INDEX promotions_status ON promotions (status);

-- One row per non-terminal promotion: the arbiter of CreatePromotion.
CREATE TABLE active_promotions (
	target_env_id TEXT NOT NULL,
	cross_id      TEXT NOT NULL,
	promotion_id  TEXT NOT NULL,
	locked_at     INTEGER NOT NULL,
	PRIMARY KEY (target_env_id, cross_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit (
	org_id       TEXT NOT NULL,
	seq          INTEGER NOT NULL,
	time         INTEGER,
	event        TEXT NOT NULL,
	actor        TEXT NOT NULL,
	env_id       TEXT NOT NULL,
	promotion_id TEXT NOT NULL,
	detail       TEXT NOT NULL,
	prev_hash    TEXT NOT NULL,
	hash         TEXT NOT NULL,
	PRIMARY KEY (org_id, seq)
) STRICT;
CREATE INDEX audit_promotion ON audit (promotion_id);
`,
	// 2: users, role bindings, custom roles and settings; personal access
	// tokens; the requesting user of a promotion.
	`
ALTER TABLE api_tokens ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
CREATE INDEX api_tokens_org_user ON api_tokens (org_id, user_id);

ALTER TABLE promotions ADD COLUMN requester_id TEXT NOT NULL DEFAULT '';

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	org_id        TEXT NOT NULL REFERENCES orgs (id),
	username      TEXT NOT NULL,
	display_name  TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	disabled      INTEGER NOT NULL,
	created_at    INTEGER,
	UNIQUE (org_id, username)
) STRICT;

CREATE TABLE role_bindings (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	scope      TEXT NOT NULL,
	env_id     TEXT NOT NULL,
	cross_id   TEXT NOT NULL,
	role       TEXT NOT NULL,
	created_at INTEGER,
	UNIQUE (user_id, scope, env_id, cross_id)
) STRICT;
CREATE INDEX role_bindings_org ON role_bindings (org_id, created_at, id);

CREATE TABLE roles (
	org_id      TEXT NOT NULL,
	scope       TEXT NOT NULL,
	name        TEXT NOT NULL,
	permissions TEXT NOT NULL, -- JSON array of strings
	created_at  INTEGER,
	PRIMARY KEY (org_id, scope, name)
) STRICT;

-- Written once: the first hub's value stands. The session signing key is
-- kept here in the clear (no at-rest encryption).
CREATE TABLE settings (
	name       TEXT PRIMARY KEY,
	value      BLOB NOT NULL,
	created_at INTEGER
) STRICT;
`,
	// 3: the idempotency key of a promotion (unique per organization when
	// set), and an append-only audit table: the database itself refuses to
	// change or delete an entry.
	`
ALTER TABLE promotions ADD COLUMN idempotency_key TEXT NOT NULL DEFAULT '';
ALTER TABLE promotions ADD COLUMN request_hash TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX promotions_idempotency_key ON promotions (org_id, idempotency_key) WHERE idempotency_key != '';

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
	SELECT RAISE(ABORT, 'audit is append-only: entries cannot be updated');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
	SELECT RAISE(ABORT, 'audit is append-only: entries cannot be deleted');
END;
-- INSERT OR REPLACE deletes without firing delete triggers: refuse any
-- insert of a taken (org_id, seq) here (AppendAudit reports it as a
-- conflict, as the primary key would).
CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit
WHEN EXISTS (SELECT 1 FROM audit WHERE org_id = NEW.org_id AND seq = NEW.seq)
BEGIN
	SELECT RAISE(ABORT, 'audit is append-only: entries cannot be replaced');
END;

-- Signed digests of each organization's trail head (AuditAnchor).
CREATE TABLE audit_anchors (
	org_id    TEXT NOT NULL,
	seq       INTEGER NOT NULL,
	hash      TEXT NOT NULL,
	time      INTEGER,
	prev_sig  TEXT NOT NULL,
	key_id    TEXT NOT NULL,
	signature TEXT NOT NULL,
	PRIMARY KEY (org_id, seq)
) STRICT;
`,
	// 4: the client certificate key an installation enrolled with (empty:
	// enrolled without one).
	`
ALTER TABLE installations ADD COLUMN client_key_hash TEXT NOT NULL DEFAULT '';
`,
	// 5: credential rotation: the credential an installation's current one
	// replaced and when it stops opening links, when the credential was
	// last rotated, and whether the agent has yet to confirm the new one.
	// Installations never rotated have none of these.
	`
ALTER TABLE installations ADD COLUMN previous_credential_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE installations ADD COLUMN previous_credential_expires_at INTEGER;
ALTER TABLE installations ADD COLUMN credential_rotated_at INTEGER;
ALTER TABLE installations ADD COLUMN credential_pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX installations_previous_credential ON installations (previous_credential_hash);
`,
	// 6: each installation's recent link openings and closings.
	`
CREATE TABLE connection_events (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	installation_id TEXT NOT NULL,
	org_id          TEXT NOT NULL,
	at              INTEGER NOT NULL,
	event           TEXT NOT NULL,
	reason          TEXT NOT NULL DEFAULT '',
	remote          TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX connection_events_installation ON connection_events (installation_id, at DESC, id DESC);
`,
	// 7: definitions move to a table of their own. In the promotions row
	// a definition of a MiB sat before the status columns, so every scan
	// of them (the delivery loop's, the catch-up's) walked its overflow
	// pages, and every status change rewrote it.
	`
CREATE TABLE promotion_definitions (
	promotion_id TEXT PRIMARY KEY,
	definition   BLOB
) STRICT;
INSERT INTO promotion_definitions (promotion_id, definition) SELECT id, definition FROM promotions;
ALTER TABLE promotions DROP COLUMN definition;
`,
}

// OpenSQLite opens (creating if needed) the database <dir>/hub.db and brings
// its schema up to date. dir is created with mode 0700 when missing.
func OpenSQLite(ctx context.Context, dir string, logger *slog.Logger) (*SQLite, error) {
	if logger == nil {
		return nil, errors.New("open sqlite: nil logger")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite: create directory: %w", err)
	}
	path, err := filepath.Abs(filepath.Join(dir, "hub.db"))
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	dirLock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	unlock := func() {
		if dirLock != nil {
			dirLock.Close()
		}
	}
	dsn := func(query url.Values) string {
		query.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
		query.Set("_foreign_keys", "1")
		u := url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: query.Encode()}
		return u.String()
	}
	w, err := sql.Open("sqlite", dsn(url.Values{
		"_journal_mode": {"WAL"},
		"_synchronous":  {"FULL"}, // an acknowledged write survives a power loss, not only a crash
		"_txlock":       {"immediate"},
	}))
	if err != nil {
		unlock()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &SQLite{w: w, dirLock: dirLock, log: logger.With("component", "store", "engine", "sqlite")}
	// Open the writer first: it switches the file to WAL.
	if err := s.migrate(ctx); err != nil {
		w.Close()
		unlock()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := s.recoverPromotionLocks(ctx); err != nil {
		w.Close()
		unlock()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn(url.Values{"_query_only": {"1"}}))
	if err != nil {
		w.Close()
		unlock()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	r.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	r.SetMaxIdleConns(max(4, runtime.GOMAXPROCS(0)))
	s.r = r
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s.log.InfoContext(ctx, "store opened", "path", path, "schema_version", len(migrations))
	return s, nil
}

// migrate applies the migrations the database lacks, each in its own
// immediate transaction together with its user_version bump.
func (s *SQLite) migrate(ctx context.Context) error {
	for {
		done, err := s.migrateOne(ctx)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the next missing migration; done when there is none.
func (s *SQLite) migrateOne(ctx context.Context) (done bool, err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, sqliteErr("begin migration", err)
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return false, sqliteErr("read schema version", err)
	}
	switch {
	case version == len(migrations):
		return true, nil
	case version > len(migrations):
		return false, fmt.Errorf("schema version %d is newer than this hub's %d", version, len(migrations))
	}
	if _, err := tx.ExecContext(ctx, migrations[version]); err != nil {
		return false, sqliteErr(fmt.Sprintf("migrate schema to version %d", version+1), err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version+1)); err != nil {
		return false, sqliteErr("set schema version", err)
	}
	if err := tx.Commit(); err != nil {
		return false, sqliteErr("commit migration", err)
	}
	s.log.InfoContext(ctx, "schema migrated", "schema_version", version+1)
	return false, nil
}

// Ping checks both pools.
func (s *SQLite) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return s.err("ping", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return s.err("ping", err)
	}
	return nil
}

// Close closes the database. It is safe to call more than once; later calls
// return the first call's result, and every other method then fails with
// state.ErrUnavailable.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		var rerr error
		if s.r != nil {
			rerr = s.r.Close()
		}
		s.closeErr = errors.Join(rerr, s.w.Close())
		if s.dirLock != nil {
			s.dirLock.Close()
		}
	})
	return s.closeErr
}

// err wraps err from doing what; after Close every error is
// state.ErrUnavailable.
func (s *SQLite) err(what string, err error) error {
	if err != nil && s.closed.Load() {
		return fmt.Errorf("%s: %w: store closed: %w", what, state.ErrUnavailable, err)
	}
	return sqliteErr(what, err)
}

// sqliteErr wraps err from doing what, mapping SQLite's codes to the state
// sentinels.
func sqliteErr(what string, err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", what, state.ErrNotFound)
	case errors.Is(err, sql.ErrConnDone):
		return fmt.Errorf("%s: %w: %w", what, state.ErrUnavailable, err)
	case errors.As(err, &se):
		switch code := se.Code(); {
		case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE, code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%s: %w: %w", what, state.ErrConflict, err)
		case code == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%s: %w: %w", what, state.ErrNotFound, err)
		case code&0xff == sqlite3.SQLITE_BUSY, code&0xff == sqlite3.SQLITE_LOCKED,
			code&0xff == sqlite3.SQLITE_CANTOPEN, code&0xff == sqlite3.SQLITE_IOERR,
			code&0xff == sqlite3.SQLITE_FULL, code&0xff == sqlite3.SQLITE_READONLY:
			return fmt.Errorf("%s: %w: %w", what, state.ErrUnavailable, err)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Times are stored as Unix milliseconds, NULL for the zero time.

// sqlTime converts t for a query argument.
func sqlTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// fromSQLTime converts a scanned time column.
func fromSQLTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// sqlBool converts b for a query argument.
func sqlBool(b bool) int {
	if b {
		return 1
	}
	return 0
}

// recoverPromotionLocks deletes the active-promotion locks whose promotion
// does not exist: a hub killed between taking a lock and storing its
// promotion leaves one, and until it is a minute old (staleLockAge) it
// would refuse every request for that API and target. Only this process
// writes the file (lockDir), so at open no creation is in progress.
func (s *SQLite) recoverPromotionLocks(ctx context.Context) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM active_promotions WHERE promotion_id NOT IN (SELECT id FROM promotions)`)
	if err != nil {
		return sqliteErr("recover promotion locks", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		s.log.WarnContext(ctx, "recovered promotion locks left by an interrupted creation; their requests can be retried", "locks", n)
	}
	return nil
}

// The lock primitives of CreatePromotion.

func (s *SQLite) insertLock(ctx context.Context, k lockKey, promotionID string, at time.Time) error {
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO active_promotions (target_env_id, cross_id, promotion_id, locked_at) VALUES (?, ?, ?, ?)`,
		k.TargetEnvID, k.CrossID, promotionID, at.UnixMilli())
	return s.err("insert promotion lock", err)
}

func (s *SQLite) lockHolder(ctx context.Context, k lockKey) (string, time.Time, error) {
	var id string
	var at int64
	err := s.r.QueryRowContext(ctx,
		`SELECT promotion_id, locked_at FROM active_promotions WHERE target_env_id = ? AND cross_id = ?`,
		k.TargetEnvID, k.CrossID).Scan(&id, &at)
	if err != nil {
		return "", time.Time{}, s.err("read promotion lock", err)
	}
	return id, time.UnixMilli(at).UTC(), nil
}

func (s *SQLite) deleteLock(ctx context.Context, k lockKey, promotionID string) error {
	_, err := s.w.ExecContext(ctx,
		`DELETE FROM active_promotions WHERE target_env_id = ? AND cross_id = ? AND promotion_id = ?`,
		k.TargetEnvID, k.CrossID, promotionID)
	return s.err("delete promotion lock", err)
}
