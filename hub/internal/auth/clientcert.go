package auth

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
)

// KeyHash is the hex SHA-256 of cert's DER SubjectPublicKeyInfo: it names
// the key, so a certificate re-issued for the same key has the same hash.
// It is not a secret.
func KeyHash(cert *x509.Certificate) string {
	h := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(h[:])
}

// ClientKeyHash is the KeyHash of the client certificate the TLS handshake
// cs verified (the leaf of its first verified chain), or "" when there was
// no TLS (cs nil) or no verified client certificate. A certificate the
// handshake did not verify never counts.
func ClientKeyHash(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	return KeyHash(cs.VerifiedChains[0][0])
}
