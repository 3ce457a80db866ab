package taskstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the database's file name inside the data directory.
const FileName = "agent.db"

// Errors returned by Store, always wrapped with details. Test for them with
// errors.Is.
var (
	// ErrNotFound means there is no such task.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the task is not in a state that allows the change.
	ErrConflict = errors.New("conflict")
)

// schemaVersion is the PRAGMA user_version this build writes. migrations[i]
// takes the schema from version i to i+1; append, never edit.
const schemaVersion = 2

var migrations = []string{
	// 0 → 1
	`
CREATE TABLE tasks (
	id              TEXT PRIMARY KEY,         -- the promotion id
	state           TEXT NOT NULL,            -- PENDING, ACCEPTING, DECIDED, CANCELLED
	org_id          TEXT NOT NULL DEFAULT '',
	source_env_id   TEXT NOT NULL DEFAULT '',
	source_env_name TEXT NOT NULL DEFAULT '',
	target_env_id   TEXT NOT NULL,
	target_env_name TEXT NOT NULL DEFAULT '',
	api_id          TEXT NOT NULL DEFAULT '', -- the API's id in the source APIM
	cross_id        TEXT NOT NULL,
	api_name        TEXT NOT NULL DEFAULT '',
	api_version     TEXT NOT NULL DEFAULT '',
	requester       TEXT NOT NULL DEFAULT '',
	definition      BLOB NOT NULL,            -- the sanitized export to import
	requested_at    INTEGER NOT NULL,         -- unix ns; the promotion's creation at the hub
	received_at     INTEGER NOT NULL,         -- unix ns
	updated_at      INTEGER NOT NULL,         -- unix ns
	actor           TEXT NOT NULL DEFAULT '', -- who accepted or rejected
	decided_at      INTEGER NOT NULL DEFAULT 0, -- unix ns; when the admin decided
	reason          TEXT NOT NULL DEFAULT '', -- cancel reason
	create_attempted INTEGER NOT NULL DEFAULT 0 -- 1 once an import to create was sent for this task
) STRICT;
CREATE INDEX tasks_state ON tasks(state, received_at);

CREATE TABLE decisions (
	promotion_id  TEXT PRIMARY KEY REFERENCES tasks(id),
	cross_id      TEXT NOT NULL,
	outcome       TEXT NOT NULL,              -- ACCEPTED, REJECTED, ERROR
	actor         TEXT NOT NULL,
	target_api_id TEXT NOT NULL DEFAULT '',
	created       INTEGER NOT NULL DEFAULT 0, -- 1 when the import created the API
	reason        TEXT NOT NULL DEFAULT '',
	decided_at    INTEGER NOT NULL,           -- unix ns
	report_state  TEXT NOT NULL,              -- PENDING, REPORTED, ABANDONED
	attempts      INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT NOT NULL DEFAULT '',
	reported_at   INTEGER NOT NULL DEFAULT 0  -- unix ns
) STRICT;
CREATE INDEX decisions_cross_id ON decisions(cross_id, outcome, decided_at);
CREATE INDEX decisions_report ON decisions(report_state, decided_at);

CREATE TABLE promotions (
	id              TEXT PRIMARY KEY,
	org_id          TEXT NOT NULL DEFAULT '',
	source_env_id   TEXT NOT NULL DEFAULT '',
	source_env_name TEXT NOT NULL DEFAULT '',
	target_env_id   TEXT NOT NULL DEFAULT '',
	target_env_name TEXT NOT NULL DEFAULT '',
	api_id          TEXT NOT NULL DEFAULT '',
	cross_id        TEXT NOT NULL DEFAULT '',
	api_name        TEXT NOT NULL DEFAULT '',
	api_version     TEXT NOT NULL DEFAULT '',
	requester       TEXT NOT NULL DEFAULT '',
	status          TEXT NOT NULL,
	terminal        INTEGER NOT NULL DEFAULT 0,
	target_api_id   TEXT NOT NULL DEFAULT '',
	reason          TEXT NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,         -- unix ns
	updated_at      INTEGER NOT NULL          -- unix ns
) STRICT;
CREATE INDEX promotions_created ON promotions(created_at DESC);
`,
	// 1 → 2: user sessions. A session token is a secret: it is kept only as
	// long as it is needed (tasks: while ACCEPTING; decisions: until the
	// hub acknowledges or refuses the report).
	`
ALTER TABLE tasks ADD COLUMN session TEXT NOT NULL DEFAULT '';     -- the accepting user's session token while ACCEPTING
ALTER TABLE decisions ADD COLUMN session TEXT NOT NULL DEFAULT ''; -- the deciding user's session token, sent with the report

CREATE TABLE hub_identity (
	id              INTEGER PRIMARY KEY CHECK (id = 1), -- a single row
	org_id          TEXT NOT NULL,
	org_name        TEXT NOT NULL DEFAULT '',
	installation_id TEXT NOT NULL DEFAULT '',
	environments    TEXT NOT NULL DEFAULT '[]', -- JSON [{"id","name"}]
	session_keys    TEXT NOT NULL DEFAULT '[]', -- JSON ["<standard base64 Ed25519 public key>"]
	learned_at      INTEGER NOT NULL            -- unix ns
) STRICT;
`,
}

// Store is the agent's SQLite database. It is safe for concurrent use.
type Store struct {
	db *sql.DB
}

// Open opens (creating if needed) the database at path and migrates its
// schema to this build's version.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	q := url.Values{}
	q.Set("_busy_timeout", "10000")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_foreign_keys", "1")
	q.Set("_txlock", "immediate") // writers take the lock at BEGIN: no upgrade deadlocks
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open task store: %w", err)
	}
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("open task store %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("task store schema version %d is newer than this agent's (%d): run a newer agent or restore a backup", v, schemaVersion)
	}
	if v == schemaVersion {
		return nil
	}
	for i := v; i < schemaVersion; i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate task store schema %d → %d: %w", i, i+1, err)
		}
	}
	// PRAGMA takes no bound parameters; schemaVersion is a constant.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate task store: %w", err)
	}
	return nil
}

// inTx runs f in one transaction and commits it when f returns nil.
func (s *Store) inTx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
