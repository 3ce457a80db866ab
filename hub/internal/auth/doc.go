// Package auth makes and checks Ferry's secrets: REST API tokens, one-time
// link tokens and installation credentials.
//
// Every secret is prefixed with its kind and ends in a checksum, so a leaked
// one is recognisable and a mistyped one is refused before any store lookup.
// Only the SHA-256 of a secret is ever stored. The package has no state and is
// safe for concurrent use.
package auth
