package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"ferry.dev/hub/internal/state"
)

// AnchorStore is the part of the hub store anchoring uses.
type AnchorStore interface {
	ListOrgs(ctx context.Context) ([]state.Org, error)
	LastAudit(ctx context.Context, orgID string) (state.AuditEntry, error)
	AppendAuditAnchor(ctx context.Context, a state.AuditAnchor) error
	LastAuditAnchor(ctx context.Context, orgID string) (state.AuditAnchor, error)
}

// Anchorer signs, periodically, a digest of every organization's trail head
// (row E7 of shared/reference/reliability.md): the hash of the last entry
// and the previous anchor's signature, signed with an Ed25519 key. The
// anchors are stored beside the trail; VerifyAnchors checks them, and a
// trail against them, with only the public key, outside the store.
//
// A rewrite of the trail by someone who cannot sign is detected against
// every anchor made before it. The hub's key is kept in its store (the
// session signing key), so an attacker who owns the store could re-sign:
// anchors copied elsewhere (e.g. from the Info log line Anchor writes, or
// by a job that exports them) are what make such a rewrite detectable too.
type Anchorer struct {
	store AnchorStore
	key   ed25519.PrivateKey
	log   *slog.Logger
	now   func() time.Time
	every time.Duration
}

// AnchorOptions are optional Anchorer settings.
type AnchorOptions struct {
	Every time.Duration    // how often Run anchors (1h)
	Now   func() time.Time // (time.Now)
}

// NewAnchorer builds an Anchorer signing with key.
func NewAnchorer(store AnchorStore, key ed25519.PrivateKey, log *slog.Logger, opts AnchorOptions) (*Anchorer, error) {
	if store == nil || log == nil || len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("audit: anchorer needs a store, a logger and an Ed25519 key")
	}
	if opts.Every <= 0 {
		opts.Every = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Anchorer{store: store, key: key, log: log.With("component", "audit_anchor"), now: opts.Now, every: opts.Every}, nil
}

// KeyID names an anchor signing key: the first 8 bytes of the SHA-256 of
// the public key, base64url.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(h[:8])
}

// AnchorDigest is what an anchor's signature covers: SHA-256 over the
// canonical JSON of its organization, seq, hash, time and previous
// signature.
func AnchorDigest(a state.AuditAnchor) []byte {
	canon, _ := json.Marshal([]any{"ferry-audit-anchor/1", a.OrgID, a.Seq, a.Hash, a.Time.UTC().Format(time.RFC3339Nano), a.PrevSig})
	h := sha256.Sum256(canon)
	return h[:]
}

// Anchor signs the organization's current trail head unless it is already
// anchored (or the trail is empty); made reports whether it stored a new
// anchor.
func (a *Anchorer) Anchor(ctx context.Context, orgID string) (anchor state.AuditAnchor, made bool, err error) {
	head, err := a.store.LastAudit(ctx, orgID)
	if errors.Is(err, state.ErrNotFound) {
		return state.AuditAnchor{}, false, nil
	}
	if err != nil {
		return state.AuditAnchor{}, false, fmt.Errorf("anchor %s: read trail head: %w", orgID, err)
	}
	prev, err := a.store.LastAuditAnchor(ctx, orgID)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return state.AuditAnchor{}, false, fmt.Errorf("anchor %s: read last anchor: %w", orgID, err)
	}
	if err == nil && prev.Seq >= head.Seq {
		return prev, false, nil
	}
	an := state.AuditAnchor{OrgID: orgID, Seq: head.Seq, Hash: head.Hash, Time: a.now().UTC().Truncate(time.Millisecond),
		PrevSig: prev.Signature, KeyID: KeyID(a.key.Public().(ed25519.PublicKey))}
	an.Signature = base64.RawURLEncoding.EncodeToString(ed25519.Sign(a.key, AnchorDigest(an)))
	if err := a.store.AppendAuditAnchor(ctx, an); err != nil {
		return state.AuditAnchor{}, false, fmt.Errorf("anchor %s: %w", orgID, err)
	}
	a.log.InfoContext(ctx, "audit trail anchored", "org_id", orgID, "seq", an.Seq, "hash", an.Hash, "signature", an.Signature)
	return an, true, nil
}

// AnchorAll anchors every organization, and returns the first error after
// trying them all.
func (a *Anchorer) AnchorAll(ctx context.Context) error {
	orgs, err := a.store.ListOrgs(ctx)
	if err != nil {
		return fmt.Errorf("anchor: list organizations: %w", err)
	}
	var first error
	for _, o := range orgs {
		if _, _, err := a.Anchor(ctx, o.ID); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Run anchors every organization at once and then every Every until ctx
// ends; failures are logged and retried at the next tick.
func (a *Anchorer) Run(ctx context.Context) error {
	t := time.NewTicker(a.every)
	defer t.Stop()
	for {
		if err := a.AnchorAll(ctx); err != nil && ctx.Err() == nil {
			a.log.WarnContext(ctx, "audit anchoring failed; retrying at the next tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// VerifyAnchors checks an organization's anchors (in Seq order) with only
// the public key, and then the trail (its entries from seq 1, in order)
// against them: each anchor's signature, its link to the previous anchor's
// signature, and that the trail's entry at the anchored seq exists and has
// the anchored hash. It returns the first break: a forged or re-signed
// anchor, a trail rewritten (even consistently re-hashed) or truncated
// below an anchored seq. The trail's own links are VerifyEntries' job.
func VerifyAnchors(anchors []state.AuditAnchor, pub ed25519.PublicKey, entries []state.AuditEntry) *Break {
	prevSig := ""
	var prevSeq int64
	bySeq := make(map[int64]string, len(entries))
	for _, e := range entries {
		bySeq[e.Seq] = e.Hash
	}
	for _, an := range anchors {
		sig, err := base64.RawURLEncoding.DecodeString(an.Signature)
		switch {
		case an.Seq <= prevSeq:
			return &Break{Seq: an.Seq, Reason: "anchors are out of order"}
		case an.PrevSig != prevSig:
			return &Break{Seq: an.Seq, Reason: "anchor does not chain to the previous anchor (one was removed or replaced)"}
		case err != nil || !ed25519.Verify(pub, AnchorDigest(an), sig):
			return &Break{Seq: an.Seq, Reason: "anchor signature does not verify"}
		}
		h, ok := bySeq[an.Seq]
		switch {
		case !ok:
			return &Break{Seq: an.Seq, Reason: "the trail lacks the anchored entry (truncated)"}
		case h != an.Hash:
			return &Break{Seq: an.Seq, Reason: "the trail's entry differs from the anchored one (rewritten)"}
		}
		prevSig, prevSeq = an.Signature, an.Seq
	}
	return nil
}
