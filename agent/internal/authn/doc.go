// Package authn authenticates the people who use the agent's REST API. They
// carry hub-signed session tokens (package ferry.dev/shared/session); the
// agent verifies them offline with the hub's public keys, so that it keeps
// working while the hub is unreachable.
//
// A Verifier learns the hub's keys, the organization and the environments
// the agent serves from the hub's hello only (Connected, Learn), keeps them
// in memory and persists them through its Store, and loads them again at
// start (Load), so that after a restart with the hub down sessions still
// verify. Keys never come from configuration or from a caller.
//
// Verify turns a token into a User: the verified claims and the token
// itself. The token is a secret: Token redacts itself in logs, in fmt output
// and in JSON; only Reveal gives its value, for the wire.
// User.RequireEnv and User.RequireAPI are the permission checks; a refusal
// is a *protocol.Error with CodeForbidden naming the missing permissions.
//
// The package imports no other package of the agent. A Verifier is safe for
// concurrent use; it starts no goroutines.
package authn
