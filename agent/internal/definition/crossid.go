package definition

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// StableCrossID returns a crossId for an API that has none, derived from a
// key naming its source environment (for example the hub's environment id)
// and the API's id there. The same inputs always give the same crossId, so
// promoting the same API again updates the copy made the first time.
//
// The result is shaped like a UUID (version 8, RFC 9562 variant) and is made
// from the SHA-256 of the inputs.
func StableCrossID(envKey, apiID string) string {
	return uuidFrom("ferry.crossid.v1/api", envKey, apiID)
}

// deriveCrossID returns the crossId of a plan or page (kind) that has none,
// from its API's crossId and a key unique within the export.
func deriveCrossID(apiCrossID, kind, key string) string {
	return uuidFrom("ferry.crossid.v1/"+kind, apiCrossID, key)
}

// uuidFrom hashes the parts, each length-prefixed so that no two different
// lists of parts collide, into a version 8 UUID string.
func uuidFrom(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // variant 10

	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:], u[10:])
	return string(out[:])
}
