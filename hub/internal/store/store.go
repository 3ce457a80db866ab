package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

const (
	// defaultLimit is the page size of a list whose filter has no Limit.
	defaultLimit = 100
	// maxLimit caps every page.
	maxLimit = 1000
	// staleLockAge is how long an active-promotion lock may point to a
	// promotion that does not exist before it is taken for the leftover of
	// a crash. CreatePromotion inserts the promotion right after the lock,
	// so a younger lock belongs to a creation in progress.
	staleLockAge = time.Minute
	// maxLockAttempts bounds CreatePromotion's retries after a stale or
	// vanished lock.
	maxLockAttempts = 3
)

// errInvalid reports a request that breaks the contract's preconditions.
// It is deliberately not one of the state sentinels.
var errInvalid = errors.New("invalid request")

// msTime returns t in UTC, truncated to the millisecond; zero stays zero.
func msTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}

// pageLimit applies the default and the cap to a filter's Limit.
func pageLimit(n int) int {
	switch {
	case n <= 0:
		return defaultLimit
	case n > maxLimit:
		return maxLimit
	}
	return n
}

// terminalStatuses lists the statuses a promotion never leaves.
var terminalStatuses = []protocol.PromotionStatus{
	protocol.PromotionAccepted, protocol.PromotionRejected,
	protocol.PromotionError, protocol.PromotionCancelled,
}

// checkUpdate rejects updates that would move a promotion out of a terminal
// status, and fills in the time.
func checkUpdate(u state.PromotionUpdate) (state.PromotionUpdate, error) {
	if u.To != "" {
		for _, from := range u.From {
			if from.Terminal() {
				return u, fmt.Errorf("%w: status %s is terminal and cannot change to %s", errInvalid, from, u.To)
			}
		}
	}
	if u.At.IsZero() {
		u.At = time.Now()
	}
	u.At = msTime(u.At)
	return u, nil
}

// lockKey identifies an active-promotion lock.
type lockKey struct {
	TargetEnvID string
	CrossID     string
}

// promotionLocks are the engine primitives CreatePromotion is built on.
type promotionLocks interface {
	// insertLock inserts the lock for k held by promotionID;
	// state.ErrConflict when k is locked.
	insertLock(ctx context.Context, k lockKey, promotionID string, at time.Time) error
	// lockHolder returns the holder of k and when it locked k;
	// state.ErrNotFound when k is free.
	lockHolder(ctx context.Context, k lockKey) (promotionID string, at time.Time, err error)
	// deleteLock deletes k if promotionID holds it.
	deleteLock(ctx context.Context, k lockKey, promotionID string) error
	// insertPromotion inserts p; state.ErrConflict on a duplicate id.
	insertPromotion(ctx context.Context, p state.Promotion) error
	// Promotion is state.Store's.
	Promotion(ctx context.Context, id string) (state.Promotion, error)
}

// createPromotion implements state.Store.CreatePromotion on top of the
// engine's lock primitives: the lock insert arbitrates, and the promotion is
// inserted only by the lock holder.
func createPromotion(ctx context.Context, e promotionLocks, log *slog.Logger, p state.Promotion) (string, error) {
	if p.ID == "" || p.Status == "" || p.Status.Terminal() {
		return "", fmt.Errorf("create promotion: %w: need an id and a non-terminal status, have id %q status %q", errInvalid, p.ID, p.Status)
	}
	p = normPromotion(p)
	k := lockKey{TargetEnvID: p.TargetEnvID, CrossID: p.CrossID}
	locked := false
	for attempt := 0; attempt < maxLockAttempts && !locked; attempt++ {
		err := e.insertLock(ctx, k, p.ID, msTime(time.Now()))
		if err == nil {
			locked = true
			break
		}
		if !errors.Is(err, state.ErrConflict) {
			return "", fmt.Errorf("create promotion: lock: %w", err)
		}
		holder, at, err := e.lockHolder(ctx, k)
		if errors.Is(err, state.ErrNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return "", fmt.Errorf("create promotion: lock holder: %w", err)
		}
		hp, err := e.Promotion(ctx, holder)
		switch {
		case err == nil && !hp.Status.Terminal():
			return holder, fmt.Errorf("create promotion: %s is active for target %s: %w", holder, k.TargetEnvID, state.ErrConflict)
		case errors.Is(err, state.ErrNotFound) && time.Since(at) < staleLockAge:
			// The holder is being created right now.
			return holder, fmt.Errorf("create promotion: %s is being created for target %s: %w", holder, k.TargetEnvID, state.ErrConflict)
		case err != nil && !errors.Is(err, state.ErrNotFound):
			return "", fmt.Errorf("create promotion: lock holder: %w", err)
		}
		log.WarnContext(ctx, "recovering stale promotion lock", "promotion_id", holder,
			"target_env_id", k.TargetEnvID, "cross_id", k.CrossID)
		if err := e.deleteLock(ctx, k, holder); err != nil {
			return "", fmt.Errorf("create promotion: delete stale lock: %w", err)
		}
	}
	if !locked {
		return "", fmt.Errorf("create promotion: lock for target %s kept changing: %w", k.TargetEnvID, state.ErrConflict)
	}
	if err := e.insertPromotion(ctx, p); err != nil {
		// Use a fresh context: the lock must go even if ctx has ended.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if derr := e.deleteLock(dctx, k, p.ID); derr != nil {
			log.WarnContext(ctx, "cannot release promotion lock", "promotion_id", p.ID, "error", derr)
		}
		return "", fmt.Errorf("create promotion: %w", err)
	}
	return "", nil
}

// releaseLock deletes the lock of a promotion that became terminal. A
// failure is logged, not returned: the update has happened, and a lock held
// by a terminal promotion is recovered by the next CreatePromotion.
func releaseLock(ctx context.Context, e promotionLocks, log *slog.Logger, p state.Promotion) {
	if !p.Status.Terminal() {
		return
	}
	k := lockKey{TargetEnvID: p.TargetEnvID, CrossID: p.CrossID}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := e.deleteLock(dctx, k, p.ID); err != nil {
		log.WarnContext(ctx, "cannot release promotion lock", "promotion_id", p.ID, "error", err)
	}
}

// Normalisation of records on their way in, so that what is stored is what
// reads back.

func normOrg(o state.Org) state.Org {
	o.CreatedAt = msTime(o.CreatedAt)
	return o
}

func normEnvironment(e state.Environment) state.Environment {
	e.CreatedAt = msTime(e.CreatedAt)
	return e
}

func normLinkToken(t state.LinkToken) state.LinkToken {
	t.CreatedAt, t.ExpiresAt, t.UsedAt = msTime(t.CreatedAt), msTime(t.ExpiresAt), msTime(t.UsedAt)
	return t
}

func normInstallation(i state.Installation) state.Installation {
	if len(i.EnvIDs) == 0 {
		i.EnvIDs = nil
	}
	i.LastSeen, i.CreatedAt = msTime(i.LastSeen), msTime(i.CreatedAt)
	i.PreviousCredentialExpiresAt, i.CredentialRotatedAt = msTime(i.PreviousCredentialExpiresAt), msTime(i.CredentialRotatedAt)
	return i
}

func normAPIToken(t state.APIToken) state.APIToken {
	t.CreatedAt, t.LastUsedAt = msTime(t.CreatedAt), msTime(t.LastUsedAt)
	t.RevokedAt, t.ExpiresAt = msTime(t.RevokedAt), msTime(t.ExpiresAt)
	return t
}

func normUser(u state.User) state.User {
	u.CreatedAt = msTime(u.CreatedAt)
	return u
}

func normRoleBinding(b state.RoleBinding) state.RoleBinding {
	b.CreatedAt = msTime(b.CreatedAt)
	return b
}

func normRole(r state.Role) state.Role {
	if len(r.Permissions) == 0 {
		r.Permissions = nil
	}
	r.CreatedAt = msTime(r.CreatedAt)
	return r
}

// revokeTime is the RevokedAt that RevokeAPIToken sets: at, or now when at
// is zero (a zero RevokedAt would mean "not revoked").
func revokeTime(at time.Time) time.Time {
	if at.IsZero() {
		at = time.Now()
	}
	return msTime(at)
}

func normPromotion(p state.Promotion) state.Promotion {
	if len(p.Definition) == 0 {
		p.Definition = nil
	}
	p.CreatedAt, p.UpdatedAt = msTime(p.CreatedAt), msTime(p.UpdatedAt)
	p.DeliveredAt, p.DecidedAt = msTime(p.DeliveredAt), msTime(p.DecidedAt)
	return p
}

func normAudit(e state.AuditEntry) state.AuditEntry {
	e.Time = msTime(e.Time)
	return e
}
