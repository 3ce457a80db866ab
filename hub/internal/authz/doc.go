// Package authz decides who may do what at the hub.
//
// It holds the built-in roles in Gravitee's vocabulary and their
// permissions (organization ADMIN and USER; environment ADMIN,
// API_PUBLISHER and USER; API OWNER, REVIEWER and USER), turns a user's
// role bindings and the organization's custom roles into session claims,
// signs and verifies session tokens with the hub's Ed25519 key (kept in the
// store, so every hub on one store signs with the same key), and words each
// refusal so that it names the permission that is missing.
//
// Everything here is safe for concurrent use: the tables are read-only and
// an Authority's key never changes after Open.
package authz
