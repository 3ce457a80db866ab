// Package ids makes the hub's record identifiers: a short kind prefix and 16
// random bytes in lower-case hex, e.g. "org_3f9a…". Safe for concurrent use.
package ids

import (
	"crypto/rand"
	"encoding/hex"
)

// New returns a fresh identifier with the given prefix.
func New(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics on failure)
	return prefix + "_" + hex.EncodeToString(b[:])
}
