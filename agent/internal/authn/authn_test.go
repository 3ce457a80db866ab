package authn_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"ferry.dev/agent/internal/authn"
	"ferry.dev/agent/internal/taskstore"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func hello(keys ...ed25519.PublicKey) *protocol.HelloReply {
	h := &protocol.HelloReply{InstallationID: "ins_1", OrgID: "org_a", OrgName: "Acme",
		Environments: []protocol.Environment{{ID: "env_prod", Name: "Prod"}}}
	for _, k := range keys {
		h.SessionKeys = append(h.SessionKeys, session.EncodeKey(k))
	}
	return h
}

func sign(t *testing.T, key ed25519.PrivateKey, org string, exp time.Time, env map[string][]session.Permission) authn.Token {
	t.Helper()
	tok, err := session.Sign(session.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "usr_1", IssuedAt: jwt.NewNumericDate(exp.Add(-15 * time.Minute)), ExpiresAt: jwt.NewNumericDate(exp)},
		Org:              org, Name: "Ada Lovelace", Env: env,
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return authn.Token(tok)
}

func openStore(t *testing.T, path string) *taskstore.Store {
	t.Helper()
	s, err := taskstore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newVerifier(t *testing.T, st authn.Store, log *bytes.Buffer) *authn.Verifier {
	t.Helper()
	v, err := authn.New(authn.Config{Store: st, Logger: slog.New(slog.NewTextHandler(log, nil)), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVerifyOfflineAfterRestart: keys learned from a hello are persisted; a
// new Verifier on the same store (the agent restarted, the hub is down)
// verifies a valid session and refuses forged, expired and other-organization
// ones.
func TestVerifyOfflineAfterRestart(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	path := filepath.Join(t.TempDir(), taskstore.FileName)
	var logs bytes.Buffer

	v := newVerifier(t, openStore(t, path), &logs)
	valid := sign(t, priv, "org_a", now.Add(15*time.Minute), map[string][]session.Permission{"env_prod": {session.EnvAPIRead}})
	if _, err := v.Verify(valid); !errors.Is(err, authn.ErrNoIdentity) {
		t.Fatalf("Verify before any hello = %v, want ErrNoIdentity", err)
	}
	if err := v.Learn(context.Background(), hello(pub)); err != nil {
		t.Fatal(err)
	}

	// Restart: a new store handle and Verifier, no hello.
	v = newVerifier(t, openStore(t, path), &logs)
	u, err := v.Verify(valid)
	if err != nil {
		t.Fatalf("Verify after restart: %v", err)
	}
	if u.ID() != "usr_1" || u.Actor() != "Ada Lovelace (usr_1)" || !u.Claims.CanEnv("env_prod", session.EnvAPIRead) {
		t.Errorf("user = %+v, actor %q", u.Claims, u.Actor())
	}
	id, ok := v.Identity()
	if !ok || id.OrgID != "org_a" || len(id.Environments) != 1 || id.Environments[0] != (authn.Environment{ID: "env_prod", Name: "Prod"}) || len(id.Keys) != 1 {
		t.Errorf("identity = %+v, %v", id, ok)
	}
	refused := map[string]authn.Token{
		"forged":    sign(t, otherPriv, "org_a", now.Add(15*time.Minute), nil),
		"expired":   sign(t, priv, "org_a", now.Add(-2*session.Leeway), nil),
		"other org": sign(t, priv, "org_b", now.Add(15*time.Minute), nil),
		"garbage":   "not-a-token",
		"empty":     "",
		"tampered":  valid[:len(valid)-3] + "AAA",
	}
	for name, tok := range refused {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(tok); !errors.Is(err, session.ErrInvalid) {
				t.Errorf("Verify = %v, want session.ErrInvalid", err)
			}
		})
	}
}

// TestLearnReplacesKeys: the hub's latest hello is the truth: rotated keys
// replace the old ones, a malformed key is skipped, no keys means ErrNoKeys
// and a hello without an organization changes nothing.
func TestLearnReplacesKeys(t *testing.T) {
	oldPub, oldPriv, _ := ed25519.GenerateKey(nil)
	newPub, newPriv, _ := ed25519.GenerateKey(nil)
	var logs bytes.Buffer
	v := newVerifier(t, openStore(t, filepath.Join(t.TempDir(), taskstore.FileName)), &logs)
	ctx := context.Background()
	if err := v.Learn(ctx, hello(oldPub)); err != nil {
		t.Fatal(err)
	}
	h := hello(newPub)
	h.SessionKeys = append(h.SessionKeys, "bm90IGEga2V5")
	if err := v.Learn(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(sign(t, newPriv, "org_a", now.Add(time.Minute), nil)); err != nil {
		t.Errorf("new key: %v", err)
	}
	if _, err := v.Verify(sign(t, oldPriv, "org_a", now.Add(time.Minute), nil)); !errors.Is(err, session.ErrInvalid) {
		t.Errorf("retired key: %v, want ErrInvalid", err)
	}
	if !strings.Contains(logs.String(), "malformed session key") {
		t.Errorf("no warning for the malformed key in %s", logs.String())
	}
	if err := v.Learn(ctx, &protocol.HelloReply{SessionKeys: []string{session.EncodeKey(oldPub)}}); err == nil {
		t.Error("a hello without an organization was learned")
	}
	if _, err := v.Verify(sign(t, newPriv, "org_a", now.Add(time.Minute), nil)); err != nil {
		t.Errorf("after a hello without organization: %v", err)
	}
	if err := v.Learn(ctx, hello()); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(sign(t, newPriv, "org_a", now.Add(time.Minute), nil)); !errors.Is(err, authn.ErrNoKeys) {
		t.Errorf("hub without keys: %v, want ErrNoKeys", err)
	}
}

// failingStore fails every write.
type failingStore struct{ authn.Store }

func (failingStore) SaveIdentity(context.Context, authn.Identity) error {
	return errors.New("disk full")
}
func (failingStore) Identity(context.Context) (authn.Identity, bool, error) {
	return authn.Identity{}, false, nil
}

func TestLearnUsesKeysEvenWhenPersistingFails(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	var logs bytes.Buffer
	v := newVerifier(t, failingStore{}, &logs)
	if err := v.Learn(context.Background(), hello(pub)); err == nil {
		t.Error("Learn hid the store failure")
	}
	if _, err := v.Verify(sign(t, priv, "org_a", now.Add(time.Minute), nil)); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestRequire(t *testing.T) {
	u := authn.User{Claims: session.Claims{Org: "org_a",
		Env: map[string][]session.Permission{"env_prod": {session.EnvAPICreate}},
		API: map[string][]session.Permission{session.APIKey("env_dev", "x1"): {session.APIDefUpdate}}}}
	u.Claims.Subject = "usr_1"
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"env ok", u.RequireEnv("env_prod", "Prod", session.EnvAPICreate), ""},
		{"env one missing", u.RequireEnv("env_prod", "Prod", session.EnvAPICreate, session.EnvAPIUpdate), "needs ENVIRONMENT_API[UPDATE] on Prod"},
		{"env all missing", u.RequireEnv("env_qa", "", session.EnvAPICreate, session.EnvAPIUpdate), "needs ENVIRONMENT_API[CREATE,UPDATE] on env_qa"},
		{"api ok", u.RequireAPI("env_dev", "Dev", "x1", "Orders", session.APIDefUpdate), ""},
		{"api missing", u.RequireAPI("env_dev", "Dev", "x2", "Orders", session.APIDefUpdate), "needs API_DEFINITION[UPDATE] on API Orders (crossId x2) in Dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pe *protocol.Error
			switch {
			case tt.want == "" && tt.err != nil:
				t.Errorf("err = %v, want nil", tt.err)
			case tt.want != "" && (!errors.As(tt.err, &pe) || pe.Code != protocol.CodeForbidden || pe.Message != tt.want):
				t.Errorf("err = %v, want forbidden %q", tt.err, tt.want)
			}
		})
	}
	if got := authn.Describe(session.EnvAPIRead, session.APIDefUpdate, session.EnvAPICreate); got != "ENVIRONMENT_API[READ,CREATE] and API_DEFINITION[UPDATE]" {
		t.Errorf("Describe = %q", got)
	}
}

// TestTokenRedacts: a token never shows in logs, fmt output or JSON.
func TestTokenRedacts(t *testing.T) {
	tok := authn.Token("eyJsecret.payload.signature")
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "token", tok, "user", authn.User{Token: tok})
	slog.New(slog.NewTextHandler(&buf, nil)).Info("y", "token", tok)
	fmt.Fprintf(&buf, "%v %s %+v %#v", tok, tok, authn.User{Token: tok}, tok)
	b, _ := json.Marshal(struct{ T authn.Token }{tok})
	buf.Write(b)
	if strings.Contains(buf.String(), "secret") {
		t.Errorf("the token leaked: %s", buf.String())
	}
	if tok.Reveal() != "eyJsecret.payload.signature" {
		t.Error("Reveal changed the token")
	}
}
