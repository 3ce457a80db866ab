// Package auth makes and checks Ferry's secrets: REST API tokens (the
// platform admin's and users' personal access tokens), one-time link tokens,
// installation credentials, and users' passwords.
//
// Every secret is prefixed with its kind and ends in a checksum, so a leaked
// one is recognisable and a mistyped one is refused before any store lookup.
// Only the SHA-256 of a secret is ever stored (secrets are random, so a fast
// hash is enough); passwords, which are not, are stored as argon2id hashes
// in the PHC string format, parameters and salt included, and compared in
// constant time.
//
// KeyHash and ClientKeyHash name the key of an agent's verified client
// certificate (not a secret), to which an installation enrolled over mTLS is
// bound.
//
// The package has no state and is safe for concurrent use.
package auth
