package session

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestClockSkewLeeway is B4 of shared/reference/reliability.md: a session
// verified on a clock that disagrees with the signer's (an injected now)
// holds within 60 s of leeway past its expiry and before its start, and
// fails beyond it.
func TestClockSkewLeeway(t *testing.T) {
	if Leeway > 60*time.Second || Leeway <= 0 {
		t.Fatalf("Leeway = %v, want at most 60 s", Leeway)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	issued := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	c := claims(issued, 15*time.Minute)
	c.NotBefore = jwt.NewNumericDate(issued)
	tok, err := Sign(c, priv)
	if err != nil {
		t.Fatal(err)
	}
	exp := issued.Add(15 * time.Minute)
	tests := []struct {
		name string
		now  time.Time // the verifier's clock
		ok   bool
	}{
		{"verifier on time", issued.Add(time.Minute), true},
		{"just before expiry", exp.Add(-time.Second), true},
		{"expired, within leeway", exp.Add(59 * time.Second), true},
		{"expired, at the leeway", exp.Add(Leeway - time.Second), true},
		{"expired beyond the leeway", exp.Add(61 * time.Second), false},
		{"verifier 10 min fast, token young", issued.Add(10 * time.Minute), true},
		{"verifier 10 min fast, token old", exp.Add(10 * time.Minute), false},
		{"verifier slow, within leeway", issued.Add(-59 * time.Second), true},
		{"verifier slow beyond the leeway", issued.Add(-61 * time.Second), false},
		{"verifier 10 min slow", issued.Add(-10 * time.Minute), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(tok, []ed25519.PublicKey{pub}, "org_a", tt.now)
			switch {
			case tt.ok && err != nil:
				t.Errorf("Verify at %v: %v, want valid", tt.now.Sub(issued), err)
			case !tt.ok && !errors.Is(err, ErrInvalid):
				t.Errorf("Verify at %v: %v, want ErrInvalid", tt.now.Sub(issued), err)
			}
		})
	}
}
