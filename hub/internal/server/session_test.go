package server

import (
	"crypto/ed25519"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/authz"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// TestSessions covers sessions at the hub's REST API and over the link:
// expired, of another organization, forged, of a disabled user, and a
// decision taken while the hub was down.
func TestSessions(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme, globex := h.newOrg("acme"), h.newOrg("globex")
	ada := h.newUser(acme, "ada", binding{Scope: "ORGANIZATION", Role: "ADMIN"})
	gus := h.newUser(globex, "gus", binding{Scope: "ORGANIZATION", Role: "ADMIN"})
	me := "/api/v1/orgs/acme/users"

	// Signing in: with a password (org by name or id) or a PAT.
	var s struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	h.must(http.StatusOK, "", "POST", "/api/v1/auth/session", map[string]string{"orgId": acme.ID, "username": "ADA", "password": ada.Password}, &s)
	if strings.Count(s.Token, ".") != 2 || s.ExpiresAt.Sub(h.clock.now()) > 15*time.Minute || s.ExpiresAt.Sub(h.clock.now()) < 14*time.Minute {
		t.Errorf("session %+v: want a JWT valid for 15 minutes", s)
	}
	h.must(http.StatusOK, ada.PAT, "POST", "/api/v1/auth/session", nil, &s)
	h.must(http.StatusOK, s.Token, "GET", me, nil, nil)
	claims, err := h.auth.Verify(s.Token, acme.ID, h.clock.now())
	if err != nil || !claims.OrgAdmin || claims.UserID() != ada.ID || claims.Org != acme.ID || claims.Name != "The ada" {
		t.Errorf("claims %+v, %v", claims, err)
	}

	// Refused sign-ins all look alike.
	for name, tc := range map[string]struct {
		token string
		body  any
		want  int
	}{
		"wrong password":       {"", map[string]string{"org": "acme", "username": "ada", "password": "wrong-password"}, 401},
		"unknown user":         {"", map[string]string{"org": "acme", "username": "nobody", "password": ada.Password}, 401},
		"unknown org":          {"", map[string]string{"org": "nope", "username": "ada", "password": ada.Password}, 401},
		"user of another org":  {"", map[string]string{"org": "globex", "username": "ada", "password": ada.Password}, 401},
		"orgId given a name":   {"", map[string]string{"orgId": "acme", "username": "ada", "password": ada.Password}, 401},
		"both org fields":      {"", map[string]string{"org": "acme", "orgId": acme.ID, "username": "ada", "password": ada.Password}, 400},
		"unknown field":        {"", map[string]string{"org": "acme", "username": "ada", "password": ada.Password, "admin": "yes"}, 400},
		"session from session": {ada.Session, nil, 400},
		"platform admin":       {testAdminToken, nil, 400},
		"garbage token":        {"ferry_at_garbage", nil, 401},
	} {
		st, body := h.do(tc.token, "POST", "/api/v1/auth/session", tc.body, nil)
		if st != tc.want {
			t.Errorf("%s: %d %s, want %d", name, st, body, tc.want)
		}
		if st == 401 && tc.token == "" && !strings.Contains(body, "unknown organization, username or password") {
			t.Errorf("%s: %s does not use the one sign-in refusal", name, body)
		}
	}

	// An operator-chosen admin token shaped like a JWT is still a token.
	if err := h.store.CreateAPIToken(t.Context(), state.APIToken{ID: "tok_dots", Hash: auth.Hash("my.admin.token"), Name: "platform admin"}); err != nil {
		t.Fatal(err)
	}
	h.must(http.StatusOK, "my.admin.token", "GET", me, nil, nil)

	// Another organization's session: 404 on acme's routes, refused over
	// acme's link.
	if st, _ := h.do(gus.Session, "GET", me, nil, nil); st != http.StatusNotFound {
		t.Errorf("globex session on acme: %d, want 404", st)
	}
	if err := h.linkRequest(acme, "Prod", "cx", gus.Session); protocol.CodeOf(err) != protocol.CodeForbidden {
		t.Errorf("globex session over acme's link: %v, want forbidden", err)
	}

	// Forged: right claims, wrong key; tampered: right key, edited claims.
	_, otherKey, _ := ed25519.GenerateKey(nil)
	forged, _ := session.Sign(session.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: ada.ID, ExpiresAt: jwt.NewNumericDate(h.clock.now().Add(time.Hour))},
		Org:              acme.ID, OrgAdmin: true,
	}, otherKey)
	parts := strings.Split(ada.Session, ".")
	tampered := parts[0] + "." + strings.TrimRight(parts[1], "=") + "x." + parts[2]
	for name, tok := range map[string]string{"forged": forged, "tampered": tampered, "alg none": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."} {
		if st, _ := h.do(tok, "GET", me, nil, nil); st != http.StatusUnauthorized {
			t.Errorf("%s session over REST: %d, want 401", name, st)
		}
		if err := h.linkRequest(acme, "Prod", "cx", tok); protocol.CodeOf(err) != protocol.CodeForbidden {
			t.Errorf("%s session over the link: %v, want forbidden", name, err)
		}
	}

	// A decision made while the hub was down: valid when the session was
	// valid at DecidedAt, even if it has expired since.
	old := ada.Session
	p1 := h.fixture(acme, "Prod", "late", "", "installation:x")
	p2 := h.fixture(acme, "Prod", "later", "", "installation:x")
	decided := h.clock.now().Add(10 * time.Minute)
	h.clock.advance(time.Hour)
	if err := h.linkDecide(acme, p1, "Prod", protocol.OutcomeAccepted, old, decided); err != nil {
		t.Errorf("decision taken while the session was valid, reported after it expired: %v", err)
	}
	if err := h.linkDecide(acme, p2, "Prod", protocol.OutcomeAccepted, old, decided.Add(20*time.Minute)); protocol.CodeOf(err) != protocol.CodeForbidden {
		t.Errorf("decision taken after the session expired: %v, want forbidden", err)
	}
	if err := h.linkDecide(acme, p2, "Prod", protocol.OutcomeAccepted, old, h.clock.now().Add(time.Hour)); protocol.CodeOf(err) != protocol.CodeForbidden {
		t.Errorf("decision dated in the future: %v, want forbidden", err)
	}
	// Expired now: refused over REST and for a request over the link.
	if st, _ := h.do(old, "GET", me, nil, nil); st != http.StatusUnauthorized {
		t.Errorf("expired session over REST: %d, want 401", st)
	}
	if err := h.linkRequest(acme, "Prod", "cx", old); protocol.CodeOf(err) != protocol.CodeForbidden {
		t.Errorf("expired session over the link: %v, want forbidden", err)
	}
	h.clock.set(0)

	// A disabled user: PATs and sessions refused at the hub at once;
	// requests relayed by agents refused; a token cannot make a session.
	bob := h.newUser(acme, "bob", binding{Scope: "ORGANIZATION", Role: "ADMIN"})
	h.must(http.StatusOK, bob.Session, "GET", me, nil, nil)
	h.must(http.StatusOK, ada.PAT, "PATCH", "/api/v1/orgs/acme/users/bob", map[string]bool{"disabled": true}, nil)
	for name, tok := range map[string]string{"pat": bob.PAT, "session": bob.Session} {
		if st, _ := h.do(tok, "GET", me, nil, nil); st != http.StatusUnauthorized {
			t.Errorf("disabled user's %s: %d, want 401", name, st)
		}
	}
	if st, _ := h.do(bob.PAT, "POST", "/api/v1/auth/session", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("disabled user's PAT makes a session: %d, want 401", st)
	}
	if st, _ := h.do("", "POST", "/api/v1/auth/session", map[string]string{"org": "acme", "username": "bob", "password": bob.Password}, nil); st != http.StatusUnauthorized {
		t.Errorf("disabled user signs in: %d, want 401", st)
	}
	if err := h.linkRequest(acme, "Prod", "cx", bob.Session); protocol.CodeOf(err) != protocol.CodeForbidden {
		t.Errorf("disabled user's session over the link: %v, want forbidden", err)
	}
	// An agent, offline, would still accept bob's session until it
	// expires: at most one lifetime.
	if _, err := session.Verify(bob.Session, decodeKeys(t, h.auth.PublicKeys()), acme.ID, h.clock.now()); err != nil {
		t.Errorf("an agent's offline check of a disabled user's unexpired session: %v", err)
	}
	if _, err := session.Verify(bob.Session, decodeKeys(t, h.auth.PublicKeys()), acme.ID, h.clock.now().Add(authz.DefaultTTL+session.Leeway+time.Second)); err == nil {
		t.Error("an agent accepts the session after one lifetime")
	}
	// Enabled again, with a new password: works again.
	h.must(http.StatusOK, ada.PAT, "PATCH", "/api/v1/orgs/acme/users/bob", map[string]any{"disabled": false, "password": "another-long-password"}, nil)
	bob.Password = "another-long-password"
	h.signIn(acme, bob)
}

// TestTokens covers personal access tokens: shown once, revocable at once,
// expiring, last use recorded at most once a minute.
func TestTokens(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme := h.newOrg("acme")
	ada := h.newUser(acme, "ada", binding{Scope: "ORGANIZATION", Role: "ADMIN"})
	ci := h.newUser(acme, "ci-bot", binding{Scope: "ENVIRONMENT", Env: "Dev", Role: "USER"})

	var created struct {
		ID, Token, UserID string
		ExpiresAt         *time.Time
	}
	h.must(http.StatusCreated, ada.Session, "POST", "/api/v1/orgs/acme/tokens", map[string]any{"userId": "ci-bot", "name": "pipeline", "expiresInSeconds": 3600}, &created)
	if !strings.HasPrefix(created.Token, "ferry_at_") || created.UserID != ci.ID || created.ExpiresAt == nil {
		t.Fatalf("created token %+v", created)
	}
	type tokenDTO struct {
		ID         string
		Name       string
		LastUsedAt *time.Time
		RevokedAt  *time.Time
	}
	lastUsed := func() *time.Time {
		var l struct{ Items []tokenDTO }
		h.must(http.StatusOK, ada.Session, "GET", "/api/v1/orgs/acme/tokens?userId=ci-bot", nil, &l)
		for _, it := range l.Items {
			if it.ID == created.ID {
				if strings.Contains(it.Name, "ferry_at_") {
					t.Error("a listed token shows its secret")
				}
				return it.LastUsedAt
			}
		}
		t.Fatal("token not listed")
		return nil
	}
	if lastUsed() != nil {
		t.Error("a new token shows a last use")
	}
	h.must(http.StatusOK, created.Token, "GET", "/api/v1/orgs/acme/promotions?env=Dev", nil, nil)
	first := lastUsed()
	if first == nil {
		t.Fatal("last use not recorded")
	}
	h.clock.advance(30 * time.Second)
	h.must(http.StatusOK, created.Token, "GET", "/api/v1/orgs/acme/promotions?env=Dev", nil, nil)
	if got := lastUsed(); !got.Equal(*first) {
		t.Errorf("last use rewritten after 30 s: %v then %v", first, got)
	}
	h.clock.advance(90 * time.Second)
	h.must(http.StatusOK, created.Token, "GET", "/api/v1/orgs/acme/promotions?env=Dev", nil, nil)
	if got := lastUsed(); !got.After(*first) {
		t.Errorf("last use not updated after two minutes: %v then %v", first, got)
	}

	// Expiry.
	h.clock.advance(time.Hour)
	if st, _ := h.do(created.Token, "GET", "/api/v1/orgs/acme/promotions?env=Dev", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("expired token: %d, want 401", st)
	}
	h.clock.set(0)

	// Revocation is immediate and listed; the token's checksum still
	// refuses a mistyped token before any lookup.
	var revoked tokenDTO
	h.must(http.StatusOK, ada.Session, "DELETE", "/api/v1/orgs/acme/tokens/"+created.ID, nil, &revoked)
	if revoked.RevokedAt == nil {
		t.Error("revoked token shows no revokedAt")
	}
	if st, _ := h.do(created.Token, "GET", "/api/v1/orgs/acme", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("revoked token: %d, want 401", st)
	}
	mistyped := ci.PAT[:len(ci.PAT)-1] + "x"
	if strings.HasSuffix(ci.PAT, "x") {
		mistyped = ci.PAT[:len(ci.PAT)-1] + "y" // one token in 62 ends in x
	}
	if st, _ := h.do(mistyped, "GET", "/api/v1/orgs/acme", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("mistyped token: %d, want 401", st)
	}
	h.must(http.StatusOK, ci.PAT, "GET", "/api/v1/orgs/acme", nil, nil)

	// Deleting the user ends its tokens.
	h.must(http.StatusNoContent, ada.Session, "DELETE", "/api/v1/orgs/acme/users/ci-bot", nil, nil)
	if st, _ := h.do(ci.PAT, "GET", "/api/v1/orgs/acme", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("deleted user's token: %d, want 401", st)
	}
}

func decodeKeys(t *testing.T, enc []string) []ed25519.PublicKey {
	t.Helper()
	var out []ed25519.PublicKey
	for _, e := range enc {
		k, err := session.DecodeKey(e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}
