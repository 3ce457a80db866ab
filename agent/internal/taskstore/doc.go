// Package taskstore is the agent's durable local state: the promotion tasks
// raised in this environment, the decisions taken on them (which double as
// the outbox of reports to the hub) and a local view of this environment's
// promotions.
//
// It is a SQLite database (modernc.org/sqlite, pure Go) in one file,
// <data-dir>/agent.db, opened in WAL mode with a busy timeout and
// synchronous=FULL, so a committed transaction survives a crash or power
// loss. The schema is versioned with PRAGMA user_version and migrated
// forward in a transaction at Open; a database written by a newer agent is
// refused.
//
// Every state change is one transaction: a task's transition and the
// decision it produces are written together, so a crash leaves either the
// old state or the new one, never half of each. Transitions are conditional
// on the current state (PENDING → ACCEPTING → DECIDED, PENDING → DECIDED,
// PENDING → CANCELLED) and report ErrConflict otherwise, which makes racing
// callers (an admin's accept and the hub's cancel) safe: exactly one wins.
//
// The package knows nothing of the wire protocol or of REST: its types are
// storage types, converted by the task package. Store is safe for concurrent
// use.
package taskstore
