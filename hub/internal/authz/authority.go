package authz

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"ferry.dev/hub/internal/ids"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/session"
)

// Store is the part of the hub store the authority reads.
type Store interface {
	ListRoleBindings(ctx context.Context, f state.RoleBindingFilter) ([]state.RoleBinding, error)
	ListRoles(ctx context.Context, orgID string) ([]state.Role, error)
	InitSetting(ctx context.Context, s state.Setting) (state.Setting, error)
}

// SigningKeySetting names the setting that holds the hub's Ed25519 private
// key (64 bytes). It is stored in the clear: at-rest encryption of the key
// is not done, so the store must be protected like the key itself.
const SigningKeySetting = "session_signing_key"

// DefaultTTL is a session's lifetime: a disabled user keeps a session that
// agents accept at most this long.
const DefaultTTL = 15 * time.Minute

// Options are optional Authority settings.
type Options struct {
	TTL time.Duration    // session lifetime (DefaultTTL)
	Now func() time.Time // (time.Now)
}

// Authority issues and verifies session tokens.
type Authority struct {
	store Store
	log   *slog.Logger
	ttl   time.Duration
	now   func() time.Time
	key   ed25519.PrivateKey
	pubs  []ed25519.PublicKey // keys that verify; key's public half first
}

// Open loads the hub's signing key from the store, creating it if this is
// the first hub to start on the store.
func Open(ctx context.Context, store Store, log *slog.Logger, opts Options) (*Authority, error) {
	if store == nil || log == nil {
		return nil, errors.New("authz: store and logger are required")
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	_, fresh, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate session signing key: %w", err)
	}
	st, err := store.InitSetting(ctx, state.Setting{Name: SigningKeySetting, Value: fresh, CreatedAt: opts.Now().UTC()})
	if err != nil {
		return nil, fmt.Errorf("load session signing key: %w", err)
	}
	if len(st.Value) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("load session signing key: stored key has %d bytes, want %d", len(st.Value), ed25519.PrivateKeySize)
	}
	key := ed25519.PrivateKey(st.Value)
	pub := key.Public().(ed25519.PublicKey)
	a := &Authority{store: store, log: log.With("component", "authz"), ttl: opts.TTL, now: opts.Now, key: key, pubs: []ed25519.PublicKey{pub}}
	a.log.Info("session signing key loaded", "kid", session.KeyID(pub), "created_here", bytes.Equal(st.Value, fresh))
	return a, nil
}

// TTL is a session's lifetime.
func (a *Authority) TTL() time.Duration { return a.ttl }

// PublicKeys returns the keys that verify sessions, encoded for
// protocol.HelloReply.SessionKeys.
func (a *Authority) PublicKeys() []string {
	out := make([]string, len(a.pubs))
	for i, p := range a.pubs {
		out[i] = session.EncodeKey(p)
	}
	return out
}

// Claims computes u's permissions from the user's current role bindings.
// It does not check whether u is disabled.
func (a *Authority) Claims(ctx context.Context, u state.User) (*session.Claims, error) {
	bindings, err := a.store.ListRoleBindings(ctx, state.RoleBindingFilter{OrgID: u.OrgID, UserID: u.ID})
	if err != nil {
		return nil, fmt.Errorf("load role bindings: %w", err)
	}
	var custom []state.Role
	for _, b := range bindings {
		if _, ok := BuiltIn(b.Scope, b.Role); !ok {
			if custom, err = a.store.ListRoles(ctx, u.OrgID); err != nil {
				return nil, fmt.Errorf("load custom roles: %w", err)
			}
			break
		}
	}
	c := Grants(bindings, custom)
	c.Subject, c.Org, c.Name = u.ID, u.OrgID, displayName(u)
	return &c, nil
}

// Issue signs a session for u with u's current permissions. It refuses a
// disabled user.
func (a *Authority) Issue(ctx context.Context, u state.User) (token string, expires time.Time, err error) {
	if u.Disabled {
		return "", time.Time{}, errors.New("issue session: user is disabled")
	}
	c, err := a.Claims(ctx, u)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue session: %w", err)
	}
	now := a.now().UTC().Truncate(time.Second)
	expires = now.Add(a.ttl)
	c.ID = ids.New("ses")
	c.IssuedAt, c.NotBefore, c.ExpiresAt = jwt.NewNumericDate(now), jwt.NewNumericDate(now), jwt.NewNumericDate(expires)
	token, err = session.Sign(*c, a.key)
	if err != nil {
		return "", time.Time{}, err
	}
	return token, expires, nil
}

// Verify checks a session token at at (with session.Leeway) for org (any
// organization when org is empty) and returns its claims. Failures wrap
// session.ErrInvalid.
func (a *Authority) Verify(token, org string, at time.Time) (*session.Claims, error) {
	return session.Verify(token, a.pubs, org, at)
}

// Now is the authority's clock.
func (a *Authority) Now() time.Time { return a.now() }

// UserActor is how a user appears as an actor in the audit trail and as a
// promotion's requester.
func UserActor(username string) string { return "user:" + username }

func displayName(u state.User) string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.Username
}
