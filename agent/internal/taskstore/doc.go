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
// It also keeps what the agent learned from the hub's last hello (the
// organization, the environments served and the hub's session keys, as an
// authn.Identity) so that sessions verify after a restart with the hub
// down, and users' session tokens (authn.Token) only as long as they are
// needed: a task's while it is being accepted, a decision's until the hub
// acknowledged or refused its report.
//
// The package knows nothing of the wire protocol or of REST: its types are
// storage types, converted by the task package. Store is safe for concurrent
// use.
package taskstore
