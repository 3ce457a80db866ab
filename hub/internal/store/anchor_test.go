package store_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/state"
	"ferry.dev/hub/internal/store"
)

// TestAnchorsDetectRewrite is E7 of shared/reference/reliability.md: the
// hub anchors each trail head with a signed digest chained to the previous
// one; with only the exported anchors and the public key, a verifier
// outside the store detects a whole-chain rewrite (which the chain alone
// cannot show), a truncation, a removed anchor and a forged one.
func TestAnchorsDetectRewrite(t *testing.T) {
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	st, err := store.OpenSQLite(ctx, t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateOrg(ctx, state.Org{ID: "o1", Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	trail, err := audit.New(st, log, nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(nil)
	anch, err := audit.NewAnchorer(st, key, log, audit.AnchorOptions{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	record := func(n int) {
		for i := range n {
			if _, err := trail.Record(ctx, audit.Event{OrgID: "o1", Event: audit.PromotionCreated, Actor: "user:ada", Detail: fmt.Sprint("entry ", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	record(20)
	if err := anch.AnchorAll(ctx); err != nil { // the hourly tick
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	record(10)
	if err := anch.AnchorAll(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	if _, made, err := anch.Anchor(ctx, "o1"); err != nil || made {
		t.Errorf("anchoring an unchanged head: made %v, %v; want nothing new", made, err)
	}

	// What a verifier outside the store holds: the exported anchors and
	// trail, and the hub's public key.
	anchors, err := st.ListAuditAnchors(ctx, "o1", 0, 0)
	if err != nil || len(anchors) != 2 || anchors[0].Seq != 20 || anchors[1].Seq != 30 {
		t.Fatalf("anchors = %+v, %v; want seqs 20 and 30", anchors, err)
	}
	entries, err := trail.List(ctx, state.AuditFilter{OrgID: "o1", Limit: 1000})
	if err != nil || len(entries) != 30 {
		t.Fatalf("trail = %d entries, %v", len(entries), err)
	}
	if b := audit.VerifyAnchors(anchors, pub, entries); b != nil {
		t.Fatalf("intact trail against its anchors: break at %d: %s", b.Seq, b.Reason)
	}

	// A whole-chain rewrite: entry 5 altered and every hash from there on
	// recomputed, so the chain itself verifies.
	rewritten := slices.Clone(entries)
	rewritten[4].Actor = "user:mallory"
	for i := 4; i < len(rewritten); i++ {
		if i > 0 {
			rewritten[i].PrevHash = rewritten[i-1].Hash
		}
		rewritten[i].Hash = audit.Hash(rewritten[i])
	}
	if b := audit.VerifyEntries(rewritten, "", 1); b != nil {
		t.Fatalf("the rewritten chain should verify by itself (that is the point), broke at %d", b.Seq)
	}
	_, otherKey, _ := ed25519.GenerateKey(nil)
	resigned := slices.Clone(anchors)
	prev := ""
	for i := range resigned {
		resigned[i].Hash = rewritten[resigned[i].Seq-1].Hash
		resigned[i].PrevSig = prev
		resigned[i].Signature = sign(otherKey, resigned[i])
		prev = resigned[i].Signature
	}
	tests := []struct {
		name    string
		anchors []state.AuditAnchor
		entries []state.AuditEntry
		wantSeq int64
	}{
		{"whole-chain rewrite", anchors, rewritten, 20},
		{"truncated below an anchor", anchors, entries[:25], 30},
		{"anchor removed", anchors[1:], entries, 30},
		{"anchors re-signed with another key", resigned, rewritten, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := audit.VerifyAnchors(tt.anchors, pub, tt.entries)
			if b == nil || b.Seq != tt.wantSeq {
				t.Errorf("VerifyAnchors = %+v, want a break at %d", b, tt.wantSeq)
			} else {
				t.Logf("break at %d: %s", b.Seq, b.Reason)
			}
		})
	}
}

// sign signs a as an Anchorer with key would.
func sign(key ed25519.PrivateKey, a state.AuditAnchor) string {
	return base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, audit.AnchorDigest(a)))
}
