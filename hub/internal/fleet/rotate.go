package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// DefaultCredentialOverlap is Options.CredentialOverlap's default.
const DefaultCredentialOverlap = time.Hour

// pushTimeout bounds sending a new credential to its agent, which answers
// once it has written it to disk.
const pushTimeout = 10 * time.Second

// Rotation is the outcome of a credential rotation.
type Rotation struct {
	// Installation is the installation as stored after the rotation.
	Installation state.Installation
	// Online is true when its agent is connected to this hub.
	Online bool
	// AgentNotified is true when the agent acknowledged the new
	// credential: it has kept it and presents it from its next link on.
	AgentNotified bool
	// Detail says, for humans, where the new credential is and what comes
	// next.
	Detail string
}

// RotateCredential gives installation id of orgID a new credential and
// keeps the current one as the previous credential, which still opens
// links until the overlap (Options.CredentialOverlap) ends; links open by
// then stay open. The new credential is sent to the agent at once when it
// is connected to this hub, and otherwise when it next links with the
// previous one: the hub keeps only its hash, so it is never shown to
// anyone.
//
// While the agent has not confirmed the last rotation (it may hold only
// the credential before it), a new rotation replaces the unconfirmed
// credential and leaves the previous one, and its expiry, as they are. An
// agent that cannot take a new credential (one too old to know the
// operation) has its rotation undone, and the answer is a conflict. An
// installation of another organization is not found, like a missing one.
func (f *Fleet) RotateCredential(ctx context.Context, orgID, id string) (Rotation, error) {
	unlock, err := f.locks.lock(ctx, id)
	if err != nil {
		return Rotation{}, err
	}
	defer unlock()
	i, err := f.store.Installation(ctx, id)
	if errors.Is(err, state.ErrNotFound) || (err == nil && i.OrgID != orgID) {
		return Rotation{}, protocol.Errorf(protocol.CodeNotFound, "no installation "+id)
	}
	if err != nil {
		return Rotation{}, fmt.Errorf("load installation: %w", err)
	}
	now := f.now().UTC()
	next := state.InstallationCredential{PreviousHash: i.CredentialHash, PreviousExpiresAt: now.Add(f.overlap), RotatedAt: now}
	if i.CredentialPending && now.Before(i.PreviousCredentialExpiresAt) {
		next.PreviousHash, next.PreviousExpiresAt = i.PreviousCredentialHash, i.PreviousCredentialExpiresAt
	}
	r, pushErr, err := f.deliver(ctx, i, next)
	if err != nil {
		return Rotation{}, err
	}
	if protocol.CodeOf(pushErr) != protocol.CodeUnsupported {
		f.log.Info("installation credential rotated", "agent_id", id, "org_id", orgID, "agent_notified", r.AgentNotified,
			"previous_expires_at", r.Installation.PreviousCredentialExpiresAt)
		return r, nil
	}
	// An agent too old to take a new credential would be locked out when
	// the overlap ends: put the credential back as it was.
	if _, err := f.store.SetInstallationCredential(ctx, id, r.Installation.Credential(), i.Credential()); err != nil {
		f.log.Error("an agent that cannot take a new credential had its credential rotated, and the rotation could not be undone; revoke and re-enroll it before the old credential expires",
			"agent_id", id, "previous_expires_at", r.Installation.PreviousCredentialExpiresAt, "err", err)
		r.Detail = fmt.Sprintf("the agent cannot take a new credential (%v), and the rotation could not be undone: revoke the installation and enroll the agent again before %s",
			pushErr, r.Installation.PreviousCredentialExpiresAt.Format(time.RFC3339))
		return r, nil
	}
	f.log.Warn("credential rotation undone: the agent cannot take a new credential", "agent_id", id, "agent_version", i.AgentVersion)
	return Rotation{}, protocol.Errorf(protocol.CodeConflict, fmt.Sprintf(
		"the agent (version %s) cannot take a new credential (%v); nothing was changed: upgrade the agent, or revoke the installation and enroll it again", i.AgentVersion, pushErr))
}

// DeliverCredential sends installation id's agent, which has just linked
// with its previous credential, a new current credential: the one made at
// the rotation is known to the hub only by its hash, so a fresh one
// replaces it. It does nothing once the agent has confirmed the rotation
// (a link with the previous credential then is not the agent's: it holds
// the current one), or once the previous credential has expired. Failures
// are logged; the agent gets another credential on its next link with the
// previous one.
func (f *Fleet) DeliverCredential(ctx context.Context, id string) {
	unlock, err := f.locks.lock(ctx, id)
	if err != nil {
		return
	}
	defer unlock()
	i, err := f.store.Installation(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("could not load an installation to send its agent its new credential; it gets one on its next link", "agent_id", id, "err", err)
		}
		return
	}
	if !i.CredentialPending || !f.now().Before(i.PreviousCredentialExpiresAt) {
		return
	}
	r, pushErr, err := f.deliver(ctx, i, state.InstallationCredential{
		PreviousHash: i.PreviousCredentialHash, PreviousExpiresAt: i.PreviousCredentialExpiresAt, RotatedAt: i.CredentialRotatedAt,
	})
	switch {
	case err != nil && ctx.Err() == nil:
		f.log.Warn("could not make the new credential of an agent that linked with its previous one; it gets one on its next link", "agent_id", id, "err", err)
	case err != nil:
	case r.AgentNotified:
		f.log.Info("agent that linked with its previous credential was sent its new one", "agent_id", id)
	case pushErr != nil && ctx.Err() == nil:
		f.log.Warn("agent that linked with its previous credential did not take its new one; it gets another on its next link until the old one expires",
			"agent_id", id, "previous_expires_at", i.PreviousCredentialExpiresAt, "err", pushErr)
	}
}

// deliver makes a new credential, stores its hash as i's current one with
// the previous credential of next (i's credential must not have changed
// since it was loaded), and sends it to the agent when it is connected
// here. err is a failure to store it; pushErr is why the agent did not
// take it (nil when it did, or when it is not connected).
func (f *Fleet) deliver(ctx context.Context, i state.Installation, next state.InstallationCredential) (r Rotation, pushErr, err error) {
	secret, err := auth.New(auth.KindCredential)
	if err != nil {
		return Rotation{}, nil, fmt.Errorf("make credential: %w", err)
	}
	next.Hash, next.Pending = auth.Hash(string(secret)), true
	stored, err := f.store.SetInstallationCredential(ctx, i.ID, i.Credential(), next)
	switch {
	case errors.Is(err, state.ErrNotFound):
		return Rotation{}, nil, protocol.Errorf(protocol.CodeNotFound, "no installation "+i.ID)
	case errors.Is(err, state.ErrConflict):
		return Rotation{}, nil, protocol.Errorf(protocol.CodeConflict, "the installation's credential changed meanwhile (another hub rotated it?); try again")
	case err != nil:
		return Rotation{}, nil, fmt.Errorf("store the new credential: %w", err)
	}
	r = Rotation{Installation: stored}
	until := next.PreviousExpiresAt.Format(time.RFC3339)
	if _, r.Online = f.presence.LastSeen(i.ID); !r.Online {
		f.m.deliveries.WithLabelValues("not_connected").Inc()
		r.Detail = "the agent is not connected to this hub; it gets the new credential when it next links with its old one, until " + until
		return r, nil, nil
	}
	pctx, cancel := context.WithTimeout(ctx, pushTimeout)
	pushErr = f.presence.Call(pctx, i.ID, protocol.OpRotateCredential, protocol.CredentialRotation{Credential: string(secret)}, nil)
	cancel()
	if pushErr != nil {
		var pe *protocol.Error
		if errors.As(pushErr, &pe) && pe.Code != protocol.CodeTimeout && pe.Code != protocol.CodeDisconnected && pe.Code != protocol.CodeUnavailable {
			f.m.deliveries.WithLabelValues("refused").Inc()
		} else {
			f.m.deliveries.WithLabelValues("failed").Inc()
		}
		r.Detail = fmt.Sprintf("the agent did not take the new credential (%v); it gets one when it next links with its old one, until %s", pushErr, until)
		return r, pushErr, nil
	}
	f.m.deliveries.WithLabelValues("acknowledged").Inc()
	r.AgentNotified = true
	r.Detail = "the agent has kept the new credential and presents it from its next link on; its old one opens links until " + until
	confirmed := next
	confirmed.Pending = false
	if c, err := f.store.SetInstallationCredential(ctx, i.ID, next, confirmed); err == nil {
		r.Installation = c
	} else {
		f.log.Warn("agent took its new credential but that could not be recorded; it is when the agent links with it", "agent_id", i.ID, "err", err)
	}
	return r, nil, nil
}

// confirm records that installation i's agent holds its current
// credential: it linked with it. A failure is logged: the next link tries
// again.
func (f *Fleet) confirm(ctx context.Context, i state.Installation) {
	confirmed := i.Credential()
	confirmed.Pending = false
	_, err := f.store.SetInstallationCredential(ctx, i.ID, i.Credential(), confirmed)
	if err != nil && !errors.Is(err, state.ErrConflict) {
		f.log.Warn("could not record that an agent linked with its new credential", "agent_id", i.ID, "err", err)
	}
}

// ExpiredCredentialError refuses a link presenting an installation's
// previous credential after the overlap of its rotation ended.
type ExpiredCredentialError struct {
	InstallationID string
	OrgID          string
	EnvIDs         []string
	ExpiredAt      time.Time
}

func (e *ExpiredCredentialError) Error() string {
	return fmt.Sprintf("this installation's credential was rotated and the old one expired at %s; re-enroll the agent with a new link token",
		e.ExpiredAt.UTC().Format(time.RFC3339))
}

// Unwrap makes the refusal an unauthorized error.
func (e *ExpiredCredentialError) Unwrap() error {
	return protocol.Errorf(protocol.CodeUnauthorized, e.Error())
}

// keyLocks serialises credential changes per installation within this hub:
// a rotation and a delivery each load the credential state, replace it and
// send the new credential to the agent, and two interleaved could leave the
// agent holding a credential the hub has since replaced. Across hubs the
// store's conditional update refuses the later of two.
type keyLocks struct {
	mu sync.Mutex          // guards m
	m  map[string]*keyLock // installation id → its lock, while anyone holds or waits for it
}

type keyLock struct {
	ch   chan struct{} // holds a value while locked
	refs int           // holders and waiters; guarded by keyLocks.mu
}

// lock takes id's lock, or gives up when ctx ends.
func (k *keyLocks) lock(ctx context.Context, id string) (unlock func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l, ok := k.m[id]
	if !ok {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.m[id] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, id)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
