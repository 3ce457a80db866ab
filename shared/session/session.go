// Package session defines Ferry's user session tokens: hub-signed JWTs
// (EdDSA, Ed25519) that carry the user's permissions, so that every agent of
// the organization can authenticate and authorize a user offline, with only
// the hub's public keys.
//
// The package is shared by the hub (which signs) and the agents (which
// verify). It holds no state and is safe for concurrent use.
package session

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer is the iss claim of every session token.
const Issuer = "ferry-hub"

// Leeway tolerates clock skew between hub and agents.
const Leeway = 60 * time.Second

// Permission is a resource and an action in Gravitee's vocabulary, e.g.
// "ENVIRONMENT_API:CREATE". Append-only.
type Permission string

// Permissions.
const (
	EnvAPICreate Permission = "ENVIRONMENT_API:CREATE"
	EnvAPIRead   Permission = "ENVIRONMENT_API:READ"
	EnvAPIUpdate Permission = "ENVIRONMENT_API:UPDATE"
	EnvAPIDelete Permission = "ENVIRONMENT_API:DELETE"
	APIDefCreate Permission = "API_DEFINITION:CREATE"
	APIDefRead   Permission = "API_DEFINITION:READ"
	APIDefUpdate Permission = "API_DEFINITION:UPDATE"
	APIDefDelete Permission = "API_DEFINITION:DELETE"
)

// Claims are a session token's contents.
type Claims struct {
	jwt.RegisteredClaims
	// Org is the organization id the user belongs to (also the audience).
	Org string `json:"org"`
	// Name is the user's display name, for audit and consoles.
	Name string `json:"name"`
	// OrgAdmin is true for organization admins, who hold every permission
	// in every environment of the organization.
	OrgAdmin bool `json:"org_admin,omitempty"`
	// Env maps an environment id to the environment-level permissions the
	// user holds there (from environment roles).
	Env map[string][]Permission `json:"env,omitempty"`
	// API maps "<environment id>/<crossId>" to the API-level permissions
	// the user holds on that API in that environment (from API roles).
	API map[string][]Permission `json:"api,omitempty"`
}

// APIKey is the key of Claims.API for an API in an environment.
func APIKey(envID, crossID string) string { return envID + "/" + crossID }

// CanEnv reports whether the user holds p on environment envID.
func (c *Claims) CanEnv(envID string, p Permission) bool {
	return c.OrgAdmin || slices.Contains(c.Env[envID], p)
}

// CanAPI reports whether the user holds p on the API crossID in envID.
// Environment roles that grant API_DEFINITION permissions apply to every API
// of the environment.
func (c *Claims) CanAPI(envID, crossID string, p Permission) bool {
	return c.OrgAdmin || slices.Contains(c.Env[envID], p) || slices.Contains(c.API[APIKey(envID, crossID)], p)
}

// UserID is the user's id (the subject).
func (c *Claims) UserID() string { return c.Subject }

// Sign makes a token from c, filling issuer and audience.
func Sign(c Claims, key ed25519.PrivateKey) (string, error) {
	c.Issuer = Issuer
	c.Audience = jwt.ClaimStrings{c.Org}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, &c)
	t.Header["kid"] = KeyID(key.Public().(ed25519.PublicKey))
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign session: %w", err)
	}
	return s, nil
}

// KeyID names a public key: the first 8 bytes of it, base64url.
func KeyID(pub ed25519.PublicKey) string { return base64.RawURLEncoding.EncodeToString(pub[:8]) }

// ErrInvalid is wrapped by every verification failure.
var ErrInvalid = errors.New("invalid session")

// Verify checks a token's signature against keys, its issuer, its audience
// (org, when not empty) and its expiry at now, and returns its claims.
func Verify(token string, keys []ed25519.PublicKey, org string, now time.Time) (*Claims, error) {
	if len(token) > 16<<10 {
		return nil, fmt.Errorf("%w: token too long", ErrInvalid)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(Issuer), jwt.WithLeeway(Leeway), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	}
	if org != "" {
		opts = append(opts, jwt.WithAudience(org))
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		for _, k := range keys {
			if KeyID(k) == kid {
				return k, nil
			}
		}
		return nil, errors.New("unknown signing key")
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Subject == "" || c.Org == "" {
		return nil, fmt.Errorf("%w: missing subject or organization", ErrInvalid)
	}
	return &c, nil
}

// EncodeKey and DecodeKey carry public keys in HelloReply.SessionKeys.
func EncodeKey(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }

// DecodeKey parses a key from HelloReply.SessionKeys.
func DecodeKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("session key: want 32 bytes of standard base64")
	}
	return ed25519.PublicKey(b), nil
}
