// Package state defines the hub's persistent records (organizations,
// environments, link tokens, installations, API tokens, users, role
// bindings, custom roles, settings, promotions and audit entries) and
// Store, the contract every storage engine satisfies.
//
// Implementations live in package store (SQLite, the embedded default, and
// MongoDB); the conformance suite in package store/storetest runs against
// both. The contract is written so that correctness never depends on
// multi-document transactions or read-modify-write: every race is settled by
// a unique key on an insert or by a single-document conditional update.
//
// Records are plain values; Store implementations must be safe for concurrent
// use.
package state
