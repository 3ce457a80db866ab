package server

import (
	"crypto/ed25519"
	"net/http"
	"testing"
	"time"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/config"
	"ferry.dev/hub/internal/state"
)

// TestAuditAnchorsScheduled is row E7 as the hub runs it: the server signs
// each organization's trail head every AuditAnchorEvery with a key kept
// across restarts, and the anchors verify against the trail with only the
// public key.
func TestAuditAnchorsScheduled(t *testing.T) {
	t.Parallel()
	s := startRESTHub(t, func(c *config.Config) { c.AuditAnchorEvery = time.Second })
	base := "http://" + s.Addr()
	if st, _, b := send(t, "POST", base+"/api/v1/orgs", restAdminToken, `{"name":"acme"}`); st != http.StatusCreated {
		t.Fatalf("create org: %d %s", st, b)
	}
	if st, _, b := send(t, "POST", base+"/api/v1/orgs/acme/users", restAdminToken, `{"username":"ada","password":"correct-horse-battery"}`); st != http.StatusCreated {
		t.Fatalf("create user: %d %s", st, b)
	}
	ctx := t.Context()
	org, err := s.store.Org(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	var anchors []state.AuditAnchor
	deadline := time.Now().Add(10 * time.Second)
	for len(anchors) == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		if anchors, err = s.store.ListAuditAnchors(ctx, org.ID, 0, 100); err != nil {
			t.Fatal(err)
		}
	}
	if len(anchors) == 0 {
		t.Fatal("no audit anchor within 10 s at one per second")
	}
	key, err := s.store.InitSetting(ctx, state.Setting{Name: anchorSetting, Value: []byte("not used: the hub made the key")})
	if err != nil || len(key.Value) != ed25519.PrivateKeySize {
		t.Fatalf("anchor key setting: %d bytes, %v", len(key.Value), err)
	}
	pub := ed25519.PrivateKey(key.Value).Public().(ed25519.PublicKey)
	entries, err := s.store.ListAudit(ctx, state.AuditFilter{OrgID: org.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if b := audit.VerifyAnchors(anchors, pub, entries); b != nil {
		t.Errorf("anchors do not verify: %+v", b)
	}
	if anchors[0].KeyID != audit.KeyID(pub) {
		t.Errorf("anchor key id %q, want %q", anchors[0].KeyID, audit.KeyID(pub))
	}
}
