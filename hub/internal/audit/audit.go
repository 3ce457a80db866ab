package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/hub/internal/state"
)

// Event names. Append-only.
const (
	PromotionCreated    = "PROMOTION_CREATED"
	PromotionDelivered  = "PROMOTION_DELIVERED"
	PromotionAccepted   = "PROMOTION_ACCEPTED"
	PromotionRejected   = "PROMOTION_REJECTED"
	PromotionFailed     = "PROMOTION_FAILED"
	PromotionCancelled  = "PROMOTION_CANCELLED"
	AccessDenied        = "ACCESS_DENIED"
	DecisionConflict    = "PROMOTION_DECISION_CONFLICT"
	PromotionRefused    = "PROMOTION_REFUSED"
	LinkTokenReused     = "LINK_TOKEN_REUSED"
	InstallationRevoked = "INSTALLATION_REVOKED"

	// Identity management, written by the REST API.
	UserCreated  = "USER_CREATED"
	UserUpdated  = "USER_UPDATED"
	UserDeleted  = "USER_DELETED"
	RoleBound    = "ROLE_BOUND"
	RoleUnbound  = "ROLE_UNBOUND"
	RoleCreated  = "ROLE_CREATED"
	RoleDeleted  = "ROLE_DELETED"
	TokenCreated = "TOKEN_CREATED"
	TokenRevoked = "TOKEN_REVOKED"

	// ActionNotDone follows an entry written before its action (fail
	// closed, row E3) when the action then failed: the trail never claims
	// what did not happen.
	ActionNotDone = "ACTION_NOT_DONE"

	// LinkClientCertMismatch is a link refused before the upgrade: the
	// installation credential came with a client certificate key other than
	// the one the installation enrolled with, or with none.
	LinkClientCertMismatch = "LINK_CLIENT_CERTIFICATE_MISMATCH"

	// CredentialRotated is an installation's credential replaced by a new
	// one (sent to its agent, never shown), the old one opening links
	// until the overlap ends. Written before the change (fail closed).
	CredentialRotated = "CREDENTIAL_ROTATED"
	// LinkCredentialExpired is a link refused because it presented an
	// installation's previous credential after its rotation's overlap
	// ended: an agent that missed the rotation, or someone holding the
	// old credential. Audited at most once an hour per installation.
	LinkCredentialExpired = "LINK_CREDENTIAL_EXPIRED"
)

// Events lists every event name above, in that order (the consoles' audit
// filter offers them). A new event is added here too.
var Events = []string{
	PromotionCreated, PromotionDelivered, PromotionAccepted, PromotionRejected, PromotionFailed, PromotionCancelled,
	AccessDenied, DecisionConflict, PromotionRefused, LinkTokenReused, InstallationRevoked,
	UserCreated, UserUpdated, UserDeleted, RoleBound, RoleUnbound, RoleCreated, RoleDeleted, TokenCreated, TokenRevoked,
	ActionNotDone, LinkClientCertMismatch, CredentialRotated, LinkCredentialExpired,
}

// Store is the part of the hub store the trail uses.
type Store interface {
	AppendAudit(ctx context.Context, e state.AuditEntry) error
	LastAudit(ctx context.Context, orgID string) (state.AuditEntry, error)
	ListAudit(ctx context.Context, f state.AuditFilter) ([]state.AuditEntry, error)
}

// Event is what a caller records; the trail adds sequence, time and hashes.
type Event struct {
	OrgID       string
	Event       string
	Actor       string
	EnvID       string
	PromotionID string
	Detail      string // human-readable; never secrets or definitions
}

// Trail appends to and verifies audit trails.
type Trail struct {
	store Store
	log   *slog.Logger
	now   func() time.Time
	m     *metrics

	mu    sync.Mutex             // guards locks
	locks map[string]*sync.Mutex // organization id → append lock
}

// New builds a Trail. now may be nil (time.Now).
func New(store Store, log *slog.Logger, reg prometheus.Registerer, now func() time.Time) (*Trail, error) {
	if store == nil || log == nil {
		return nil, errors.New("audit: store and logger are required")
	}
	if now == nil {
		now = time.Now
	}
	return &Trail{store: store, log: log.With("component", "audit"), now: now, m: newMetrics(reg), locks: map[string]*sync.Mutex{}}, nil
}

func (t *Trail) orgLock(org string) *sync.Mutex {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.locks[org]
	if !ok {
		l = &sync.Mutex{}
		t.locks[org] = l
	}
	return l
}

// maxDetail bounds an entry's detail.
const maxDetail = 2048

// Record appends an event to its organization's trail.
func (t *Trail) Record(ctx context.Context, ev Event) (state.AuditEntry, error) {
	if ev.OrgID == "" || ev.Event == "" {
		return state.AuditEntry{}, errors.New("audit: organization and event are required")
	}
	if len(ev.Detail) > maxDetail {
		ev.Detail = ev.Detail[:maxDetail] + "…"
	}
	l := t.orgLock(ev.OrgID)
	l.Lock()
	defer l.Unlock()
	for attempt := 0; ; attempt++ {
		last, err := t.store.LastAudit(ctx, ev.OrgID)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return state.AuditEntry{}, fmt.Errorf("read audit tail: %w", err)
		}
		e := state.AuditEntry{
			OrgID: ev.OrgID, Seq: last.Seq + 1, Time: t.now().UTC().Truncate(time.Millisecond), Event: ev.Event,
			Actor: ev.Actor, EnvID: ev.EnvID, PromotionID: ev.PromotionID, Detail: ev.Detail, PrevHash: last.Hash,
		}
		e.Hash = Hash(e)
		err = t.store.AppendAudit(ctx, e)
		if err == nil {
			t.m.entries.WithLabelValues(ev.Event).Inc()
			return e, nil
		}
		if !errors.Is(err, state.ErrConflict) || attempt >= maxAppendAttempts {
			t.m.failures.Inc()
			return state.AuditEntry{}, fmt.Errorf("append audit entry: %w", err)
		}
		// Another hub appended first; read the new tail and try again,
		// after a short random pause so that racing hubs spread out.
		if err := conflictPause(ctx, attempt); err != nil {
			t.m.failures.Inc()
			return state.AuditEntry{}, fmt.Errorf("append audit entry: %w", err)
		}
	}
}

// maxAppendAttempts bounds Record's retries after losing a race for the
// next sequence number to another hub.
const maxAppendAttempts = 50

// conflictPause waits up to 2^min(attempt, 7) ms, at random, or until ctx
// ends.
func conflictPause(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 7)))
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// Hash is an entry's chained hash: SHA-256 over its canonical JSON, which
// includes the previous entry's hash.
func Hash(e state.AuditEntry) string {
	canon, _ := json.Marshal([]any{e.OrgID, e.Seq, e.Time.UTC().Format(time.RFC3339Nano), e.Event, e.Actor, e.EnvID, e.PromotionID, e.Detail, e.PrevHash})
	h := sha256.Sum256(canon)
	return hex.EncodeToString(h[:])
}

// Break describes the first broken link of a chain.
type Break struct {
	Seq    int64
	Reason string
}

// VerifyEntries checks a chain that starts at sequence 1. It returns nil when
// every link holds.
func VerifyEntries(entries []state.AuditEntry, prevHash string, wantSeq int64) *Break {
	for _, e := range entries {
		switch {
		case e.Seq != wantSeq:
			return &Break{Seq: wantSeq, Reason: fmt.Sprintf("entry %d is missing (found %d)", wantSeq, e.Seq)}
		case e.PrevHash != prevHash:
			return &Break{Seq: e.Seq, Reason: "previous-hash does not match the entry before it"}
		case Hash(e) != e.Hash:
			return &Break{Seq: e.Seq, Reason: "entry content does not match its hash (altered)"}
		}
		prevHash, wantSeq = e.Hash, wantSeq+1
	}
	return nil
}

// Verify walks an organization's whole trail and returns the first broken
// link, the number of entries checked, and an error if the store failed.
func (t *Trail) Verify(ctx context.Context, orgID string) (*Break, int64, error) {
	var prev string
	var next int64 = 1
	var checked int64
	for {
		page, err := t.store.ListAudit(ctx, state.AuditFilter{OrgID: orgID, AfterSeq: next - 1, Limit: 1000})
		if err != nil {
			return nil, checked, fmt.Errorf("read audit trail: %w", err)
		}
		if len(page) == 0 {
			return nil, checked, nil
		}
		if b := VerifyEntries(page, prev, next); b != nil {
			return b, checked, nil
		}
		checked += int64(len(page))
		last := page[len(page)-1]
		prev, next = last.Hash, last.Seq+1
	}
}

// List returns entries matching f.
func (t *Trail) List(ctx context.Context, f state.AuditFilter) ([]state.AuditEntry, error) {
	return t.store.ListAudit(ctx, f)
}
