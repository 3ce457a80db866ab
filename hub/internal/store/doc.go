// Package store implements state.Store, the hub's persistence contract, on
// two engines: SQLite (OpenSQLite, the embedded default) and MongoDB
// (OpenMongo). Instrument wraps either with Prometheus metrics.
//
// Correctness never depends on multi-document transactions or on
// read-modify-write. Every race is settled by a unique key on an insert or by
// a single-document conditional update:
//
//   - ConsumeLinkToken: SQLite updates the token only while used_at is NULL;
//     MongoDB inserts a link_token_uses document keyed by the token id, and
//     only the inserter wins.
//   - CreatePromotion: a lock row keyed by (TargetEnvID, CrossID) is inserted
//     before the promotion and deleted by UpdatePromotion on a terminal
//     transition. A lock whose holder is terminal, or missing for longer than
//     a minute (a crash between the two inserts), is stale: it is deleted by
//     (key, holder) and the insert retried.
//     A promotion's idempotency key is unique per organization: SQLite
//     has a partial unique index on (org_id, idempotency_key); MongoDB
//     stores "none:<id>" for promotions without a key, so a plain unique
//     index on (org_id, idempotency_key) serves (FerretDB has no partial
//     indexes). A refused duplicate releases its lock.
//   - UpdatePromotion: one conditional update on (id, status IN From).
//   - AppendAudit: the unique key (OrgID, Seq). SQLite's triggers refuse
//     any UPDATE or DELETE of audit (and INSERT OR REPLACE), so the trail
//     is append-only in the database itself; on MongoDB the hub's role
//     (deploy/mongo/hub-role.json) grants only find and insert on audit.
//   - AppendAuditAnchor: the unique key (OrgID, Seq) of audit_anchors.
//   - CreateUser, CreateRoleBinding, CreateRole: the unique keys (OrgID,
//     Username), (UserID, Scope, EnvID, CrossID) and (OrgID, Scope, Name).
//   - InitSetting: an insert keyed by name that does nothing when the name
//     exists, then a read, so every hub on one store uses the first hub's
//     value (the session signing key).
//   - UpdateUser, RevokeAPIToken, TouchAPIToken: one single-row update each;
//     TouchAPIToken is conditional on the last use being old enough.
//   - SetInstallationCredential: one update conditional on the current
//     credential hash and pending flag, so of two rotations (or a rotation
//     and a confirmation) racing from the same state only one applies.
//   - DeleteUser: deletes the user, then its bindings and tokens; what an
//     interrupted delete leaves is inert, since every use loads the user.
//
// Records are stored in UTC with millisecond precision (MongoDB's), so both
// engines return what they were given, truncated to the millisecond. A zero
// time stays zero, and an empty slice reads back as nil. Lists the contract
// does not order are ordered by name (organizations, environments) or by
// creation time then id (installations).
//
// Errors wrap state.ErrNotFound, state.ErrConflict or state.ErrUnavailable
// (the engine cannot be reached or is closed), so callers use errors.Is.
//
// Every type here is safe for concurrent use.
package store
