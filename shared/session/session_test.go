package session

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func claims(now time.Time, ttl time.Duration) Claims {
	return Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "usr_1", IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl))},
		Org:              "org_a", Name: "Ada",
		Env: map[string][]Permission{"env_prod": {EnvAPICreate, EnvAPIUpdate}},
		API: map[string][]Permission{APIKey("env_dev", "x1"): {APIDefUpdate}},
	}
}

func TestSignVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	otherPub, otherPriv, _ := ed25519.GenerateKey(nil)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tok, err := Sign(claims(now, 15*time.Minute), priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(tok, []ed25519.PublicKey{otherPub, pub}, "org_a", now.Add(time.Minute))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !c.CanEnv("env_prod", EnvAPICreate) || c.CanEnv("env_dev", EnvAPICreate) {
		t.Error("environment permissions wrong")
	}
	if !c.CanAPI("env_dev", "x1", APIDefUpdate) || c.CanAPI("env_dev", "x2", APIDefUpdate) {
		t.Error("API permissions wrong")
	}
	forged, _ := Sign(claims(now, 15*time.Minute), otherPriv)
	tests := map[string]struct {
		tok  string
		keys []ed25519.PublicKey
		org  string
		at   time.Time
	}{
		"expired":     {tok, []ed25519.PublicKey{pub}, "org_a", now.Add(20 * time.Minute)},
		"other org":   {tok, []ed25519.PublicKey{pub}, "org_b", now},
		"unknown key": {forged, []ed25519.PublicKey{pub}, "org_a", now},
		"tampered":    {tok[:len(tok)-4] + "AAAA", []ed25519.PublicKey{pub}, "org_a", now},
		"garbage":     {"not.a.jwt", []ed25519.PublicKey{pub}, "org_a", now},
		"alg none":    {"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", []ed25519.PublicKey{pub}, "org_a", now},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Verify(tt.tok, tt.keys, tt.org, tt.at); !errors.Is(err, ErrInvalid) {
				t.Errorf("Verify = %v, want ErrInvalid", err)
			}
		})
	}
	admin := claims(now, time.Minute)
	admin.OrgAdmin = true
	if !admin.CanEnv("anything", EnvAPIDelete) || !admin.CanAPI("e", "c", APIDefUpdate) {
		t.Error("org admin lacks a permission")
	}
}
