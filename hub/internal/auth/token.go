package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"log/slog"
	"math/big"
	"strings"
)

// Kind is a secret's prefix.
type Kind string

// Secret kinds.
const (
	KindAPIToken   Kind = "ferry_at_" // REST bearer token
	KindLinkToken  Kind = "ferry_lt_" // one-time agent link token
	KindCredential Kind = "ferry_ic_" // long-lived installation credential
)

const (
	alphabet  = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	bodyLen   = 40 // base62 characters of randomness (~238 bits)
	sumLen    = 6  // base62 characters of CRC-32 checksum
	maxSecret = 128
)

// ErrMalformed is returned for a secret of the wrong kind, length or checksum.
var ErrMalformed = errors.New("malformed secret")

// Secret is a plaintext secret. It redacts itself in logs.
type Secret string

// LogValue implements slog.LogValuer so secrets never reach logs.
func (s Secret) LogValue() slog.Value {
	if len(s) < 12 {
		return slog.StringValue("[redacted]")
	}
	return slog.StringValue(string(s[:9]) + "…[redacted]")
}

// New makes a fresh secret of kind k.
func New(k Kind) (Secret, error) {
	var b strings.Builder
	b.WriteString(string(k))
	max := big.NewInt(int64(len(alphabet)))
	for range bodyLen {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		b.WriteByte(alphabet[n.Int64()])
	}
	body := b.String()
	return Secret(body + checksum(body)), nil
}

// Check reports whether s looks like a secret of kind k, without any lookup.
func Check(k Kind, s string) error {
	if len(s) > maxSecret || !strings.HasPrefix(s, string(k)) || len(s) != len(k)+bodyLen+sumLen {
		return ErrMalformed
	}
	body, sum := s[:len(s)-sumLen], s[len(s)-sumLen:]
	if subtle.ConstantTimeCompare([]byte(checksum(body)), []byte(sum)) != 1 {
		return ErrMalformed
	}
	return nil
}

// Hash is the at-rest form of a secret: hex SHA-256.
func Hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func checksum(body string) string {
	n := crc32.ChecksumIEEE([]byte(body))
	out := make([]byte, sumLen)
	for i := sumLen - 1; i >= 0; i-- {
		out[i] = alphabet[n%uint32(len(alphabet))]
		n /= uint32(len(alphabet))
	}
	return string(out)
}

// Bearer extracts the token from an "Authorization: Bearer X" header value.
// The scheme is case-insensitive and followed by exactly one space; the
// token is the rest, non-empty and without whitespace or control
// characters, so a padded, empty or wrong-scheme header is refused rather
// than repaired.
func Bearer(header string) (string, bool) {
	const p = "Bearer "
	if len(header) <= len(p) || !strings.EqualFold(header[:len(p)], p) {
		return "", false
	}
	t := header[len(p):]
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] == 0x7f {
			return "", false
		}
	}
	return t, true
}
