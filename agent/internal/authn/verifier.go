package authn

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// Errors of Verify besides session.ErrInvalid (a missing, malformed,
// forged, expired or other organization's token). Test with errors.Is.
var (
	// ErrNoIdentity means the agent has never reached the hub, so it knows
	// neither its organization nor the hub's keys.
	ErrNoIdentity = errors.New("the agent has not reached the hub yet, so it cannot verify sessions; retry once it has connected")
	// ErrNoKeys means the hub's last hello carried no session keys: the hub
	// issues no sessions (or is too old to).
	ErrNoKeys = errors.New("the hub gave this agent no session keys (is the hub older than this agent?), so it cannot verify sessions")
)

// learnTimeout bounds persisting what a hello taught, when Connected runs
// it.
const learnTimeout = 10 * time.Second

// Identity is what the agent knows about itself and trusts from the hub's
// last hello.
type Identity struct {
	OrgID          string
	OrgName        string
	InstallationID string
	// Environments are those the agent serves.
	Environments []Environment
	// Keys are the hub's session signing keys.
	Keys []ed25519.PublicKey
	// LearnedAt is when the hello was received.
	LearnedAt time.Time
}

// Environment is an environment the agent serves.
type Environment struct {
	ID   string
	Name string
}

// Store persists the Identity. *taskstore.Store implements it.
type Store interface {
	SaveIdentity(ctx context.Context, id Identity) error
	// Identity returns the saved identity, and false when there is none.
	Identity(ctx context.Context) (Identity, bool, error)
}

// Config configures a Verifier. Store and Logger are required.
type Config struct {
	Store  Store
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier verifies session tokens with the keys the hub gave over the link.
type Verifier struct {
	store Store
	log   *slog.Logger
	now   func() time.Time

	mu    sync.RWMutex // guards id and known
	id    Identity
	known bool
}

// New builds a Verifier that knows nothing yet; call Load.
func New(cfg Config) (*Verifier, error) {
	if cfg.Store == nil || cfg.Logger == nil {
		return nil, errors.New("authn: store and logger are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{store: cfg.Store, log: cfg.Logger.With("component", "authn"), now: cfg.Now}, nil
}

// Load reads the identity an earlier run persisted, so that sessions verify
// before the first connection to the hub (or without one).
func (v *Verifier) Load(ctx context.Context) error {
	id, ok, err := v.store.Identity(ctx)
	if err != nil {
		return fmt.Errorf("load hub session keys: %w", err)
	}
	if !ok || id.OrgID == "" {
		v.log.Info("no hub session keys yet; the REST API answers 503 until the agent reaches the hub")
		return nil
	}
	v.set(id)
	v.log.Info("hub session keys loaded", "org_id", id.OrgID, "keys", len(id.Keys), "learned_at", id.LearnedAt)
	return nil
}

// Learn takes the hub's hello: it decodes the session keys, persists the
// identity and then uses it. It must only be given a hello the link received
// from the hub. A malformed key is skipped with a warning; a hello without
// an organization changes nothing. If persisting fails the identity is still
// used until the agent stops.
func (v *Verifier) Learn(ctx context.Context, h *protocol.HelloReply) error {
	if h == nil || h.OrgID == "" {
		return errors.New("learn hub session keys: the hello names no organization")
	}
	id := Identity{OrgID: h.OrgID, OrgName: h.OrgName, InstallationID: h.InstallationID, LearnedAt: v.now().UTC()}
	for _, e := range h.Environments {
		id.Environments = append(id.Environments, Environment{ID: e.ID, Name: e.Name})
	}
	for i, s := range h.SessionKeys {
		k, err := session.DecodeKey(s)
		if err != nil {
			v.log.Warn("the hub sent a malformed session key; skipping it", "index", i, "err", err)
			continue
		}
		id.Keys = append(id.Keys, k)
	}
	if len(id.Keys) == 0 {
		v.log.Warn("the hub sent no usable session keys; REST calls will be refused with 503 until it does")
	}
	err := v.store.SaveIdentity(ctx, id)
	if err != nil {
		err = fmt.Errorf("persist hub session keys: %w", err)
	}
	v.set(id)
	v.log.Debug("hub session keys learned", "org_id", id.OrgID, "keys", len(id.Keys))
	return err
}

// Connected is Learn in the shape of a link OnConnect hook: it logs what
// fails instead of returning it.
func (v *Verifier) Connected(h *protocol.HelloReply) {
	ctx, cancel := context.WithTimeout(context.Background(), learnTimeout)
	defer cancel()
	if err := v.Learn(ctx, h); err != nil {
		v.log.Error("could not keep the hub's session keys; sessions verify until the agent restarts", "err", err)
	}
}

func (v *Verifier) set(id Identity) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.id, v.known = id, true
}

// Identity returns what the agent last learned from the hub, and false
// before it ever reached the hub.
func (v *Verifier) Identity() (Identity, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	id := v.id
	id.Environments = slices.Clone(id.Environments)
	id.Keys = slices.Clone(id.Keys)
	return id, v.known
}

// Verify checks tok against the hub's keys, the agent's organization and the
// clock. Errors wrap ErrNoIdentity, ErrNoKeys or session.ErrInvalid.
func (v *Verifier) Verify(tok Token) (User, error) {
	v.mu.RLock()
	org, keys, known := v.id.OrgID, v.id.Keys, v.known
	v.mu.RUnlock()
	switch {
	case !known || org == "":
		// An empty organization would skip the audience check.
		return User{}, ErrNoIdentity
	case len(keys) == 0:
		return User{}, ErrNoKeys
	case tok == "":
		return User{}, fmt.Errorf("%w: no session token", session.ErrInvalid)
	}
	c, err := session.Verify(tok.Reveal(), keys, org, v.now())
	if err != nil {
		return User{}, err
	}
	if c.Org != org {
		return User{}, fmt.Errorf("%w: the session belongs to another organization", session.ErrInvalid)
	}
	return User{Claims: *c, Token: tok}, nil
}
