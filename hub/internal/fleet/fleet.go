package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/ids"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// Store is the part of the hub store the fleet uses.
type Store interface {
	Org(ctx context.Context, idOrName string) (state.Org, error)
	Environment(ctx context.Context, orgID, idOrName string) (state.Environment, error)
	CreateLinkToken(ctx context.Context, t state.LinkToken) error
	ConsumeLinkToken(ctx context.Context, hash string, now time.Time) (state.LinkToken, error)
	CreateInstallation(ctx context.Context, i state.Installation) error
	InstallationByCredential(ctx context.Context, hash string) (state.Installation, error)
	SetInstallationCredential(ctx context.Context, id string, from, to state.InstallationCredential) (state.Installation, error)
	Installation(ctx context.Context, id string) (state.Installation, error)
	DeleteInstallation(ctx context.Context, id string) error
	ListInstallations(ctx context.Context, orgID string) ([]state.Installation, error)
	UpdateInstallationSeen(ctx context.Context, id string, online bool, at time.Time, agentVersion, hostname string) error
}

// Presence reports live connections to this hub.
type Presence interface {
	// LastSeen returns when the installation was last heard from, and
	// whether it is connected now.
	LastSeen(installationID string) (time.Time, bool)
	// Disconnect closes the installation's link, if it has one here, with
	// an application close code.
	Disconnect(installationID string, code int, reason string)
	// Call sends a command to the installation's agent over its link to
	// this hub and decodes the reply body into out (which may be nil). It
	// fails with protocol.CodeUnavailable when the agent is not connected
	// here, and with the agent's error when it answers one.
	Call(ctx context.Context, installationID string, op protocol.Op, body, out any) error
}

// Fleet manages installations.
type Fleet struct {
	store    Store
	presence Presence
	log      *slog.Logger
	now      func() time.Time
	version  string
	keys     []string
	overlap  time.Duration
	m        *metrics
	locks    keyLocks // one per installation whose credential is changing

	mu     sync.Mutex          // guards names and stored
	names  map[string]string   // "org/" or "org/env" → name
	stored map[string]identity // installation id → identity as stored
}

// Options are optional Fleet dependencies.
type Options struct {
	Now        func() time.Time // defaults to time.Now
	HubVersion string
	// SessionKeys are the hub's session-verifying public keys, encoded
	// with session.EncodeKey, handed to every agent in the hello reply.
	SessionKeys []string
	// CredentialOverlap is how long a rotated-out credential still opens
	// links (DefaultCredentialOverlap).
	CredentialOverlap time.Duration
}

// New builds a Fleet.
func New(store Store, presence Presence, log *slog.Logger, reg prometheus.Registerer, opts Options) (*Fleet, error) {
	if store == nil || presence == nil || log == nil {
		return nil, errors.New("fleet: store, presence and logger are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CredentialOverlap <= 0 {
		opts.CredentialOverlap = DefaultCredentialOverlap
	}
	return &Fleet{store: store, presence: presence, log: log.With("component", "fleet"), now: opts.Now, version: opts.HubVersion, keys: opts.SessionKeys,
		overlap: opts.CredentialOverlap, m: newMetrics(reg), names: map[string]string{}, stored: map[string]identity{}}, nil
}

// MaxLinkTokenTTL bounds link-token lifetimes.
const MaxLinkTokenTTL = 7 * 24 * time.Hour

// IssuedLinkToken is a freshly made link token; Secret is shown once.
type IssuedLinkToken struct {
	Token  state.LinkToken
	Secret auth.Secret
}

// IssueLinkToken makes a one-time link token for an environment.
func (f *Fleet) IssueLinkToken(ctx context.Context, env state.Environment, ttl time.Duration) (IssuedLinkToken, error) {
	if ttl <= 0 {
		ttl = time.Hour
	}
	if ttl > MaxLinkTokenTTL {
		return IssuedLinkToken{}, protocol.Errorf(protocol.CodeInvalid, "link token lifetime may not exceed 7 days")
	}
	secret, err := auth.New(auth.KindLinkToken)
	if err != nil {
		return IssuedLinkToken{}, fmt.Errorf("make link token: %w", err)
	}
	now := f.now().UTC()
	t := state.LinkToken{ID: ids.New("lt"), OrgID: env.OrgID, EnvID: env.ID, Hash: auth.Hash(string(secret)), CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := f.store.CreateLinkToken(ctx, t); err != nil {
		return IssuedLinkToken{}, fmt.Errorf("store link token: %w", err)
	}
	return IssuedLinkToken{Token: t, Secret: secret}, nil
}

// Enrolled is the result of linking an agent.
type Enrolled struct {
	Installation state.Installation
	Credential   auth.Secret
}

// Enroll consumes a link token and creates an installation serving the
// token's environment. A token works once. clientKeyHash, when not empty,
// is the auth.ClientKeyHash of the client certificate the enrolling agent
// presented: the installation is bound to that key, and its links must
// present it.
func (f *Fleet) Enroll(ctx context.Context, linkToken, agentVersion, hostname, clientKeyHash string) (Enrolled, error) {
	if err := auth.Check(auth.KindLinkToken, linkToken); err != nil {
		f.m.enrollments.WithLabelValues("malformed").Inc()
		return Enrolled{}, protocol.Errorf(protocol.CodeUnauthorized, "not a Ferry link token; copy it again from the hub")
	}
	now := f.now().UTC()
	t, err := f.store.ConsumeLinkToken(ctx, auth.Hash(linkToken), now)
	switch {
	case errors.Is(err, state.ErrConflict):
		f.m.enrollments.WithLabelValues("reused").Inc()
		f.log.Warn("link token presented a second time; refused", "org_id", t.OrgID, "env_id", t.EnvID, "token_id", t.ID)
		return Enrolled{}, &LinkTokenUsedError{OrgID: t.OrgID, EnvID: t.EnvID, TokenID: t.ID}
	case errors.Is(err, state.ErrNotFound):
		f.m.enrollments.WithLabelValues("unknown").Inc()
		return Enrolled{}, protocol.Errorf(protocol.CodeUnauthorized, "unknown or expired link token; create a new one at the hub")
	case err != nil:
		return Enrolled{}, fmt.Errorf("consume link token: %w", err)
	}
	cred, err := auth.New(auth.KindCredential)
	if err != nil {
		return Enrolled{}, fmt.Errorf("make credential: %w", err)
	}
	inst := state.Installation{
		ID: ids.New("ins"), OrgID: t.OrgID, EnvIDs: []string{t.EnvID}, CredentialHash: auth.Hash(string(cred)),
		AgentVersion: agentVersion, Hostname: hostname, CreatedAt: now, ClientKeyHash: clientKeyHash,
	}
	if err := f.store.CreateInstallation(ctx, inst); err != nil {
		return Enrolled{}, fmt.Errorf("create installation: %w", err)
	}
	f.m.enrollments.WithLabelValues("ok").Inc()
	f.log.Info("agent linked", "agent_id", inst.ID, "org_id", inst.OrgID, "env_id", t.EnvID, "client_key_bound", clientKeyHash != "")
	return Enrolled{Installation: inst, Credential: cred}, nil
}

// LinkTokenUsedError is Enroll's answer to a link token presented again:
// someone holds a copy of a token that already linked an agent.
type LinkTokenUsedError struct {
	OrgID, EnvID, TokenID string // empty when the store could not say
}

func (e *LinkTokenUsedError) Error() string {
	return "link token already used; create a new one at the hub"
}

// Authenticated is an installation a credential authenticated.
type Authenticated struct {
	state.Installation
	// Previous is true when the credential was the one the current
	// credential replaced, within the overlap of the rotation.
	Previous bool
}

// Authenticate maps an installation credential to its installation: its
// current credential, or its previous one until the overlap of the
// rotation ends (then an *ExpiredCredentialError). A link with the current
// credential confirms a rotation the agent had not acknowledged.
func (f *Fleet) Authenticate(ctx context.Context, credential string) (Authenticated, error) {
	if err := auth.Check(auth.KindCredential, credential); err != nil {
		return Authenticated{}, protocol.Errorf(protocol.CodeUnauthorized, "malformed installation credential")
	}
	hash := auth.Hash(credential)
	inst, err := f.store.InstallationByCredential(ctx, hash)
	if errors.Is(err, state.ErrNotFound) {
		return Authenticated{}, protocol.Errorf(protocol.CodeUnauthorized, "unknown installation credential")
	}
	if err != nil {
		return Authenticated{}, fmt.Errorf("look up credential: %w", err)
	}
	a := Authenticated{Installation: inst}
	switch {
	case hash == inst.CredentialHash:
		if inst.CredentialPending {
			f.confirm(ctx, inst)
		}
	case hash == inst.PreviousCredentialHash && f.now().Before(inst.PreviousCredentialExpiresAt):
		a.Previous = true
	case hash == inst.PreviousCredentialHash:
		return Authenticated{}, &ExpiredCredentialError{InstallationID: inst.ID, OrgID: inst.OrgID, EnvIDs: inst.EnvIDs, ExpiredAt: inst.PreviousCredentialExpiresAt}
	default:
		return Authenticated{}, protocol.Errorf(protocol.CodeUnauthorized, "unknown installation credential")
	}
	f.mu.Lock()
	f.stored[inst.ID] = identity{inst.AgentVersion, inst.Hostname}
	f.mu.Unlock()
	return a, nil
}

// identity is what an installation last told the hub about itself.
type identity struct{ version, hostname string }

// Hello records an agent's hello and builds the hub's reply.
func (f *Fleet) Hello(ctx context.Context, installationID, orgID string, envIDs []string, h *protocol.Hello) (*protocol.HelloReply, error) {
	orgName, err := f.name(ctx, orgID, "")
	if err != nil {
		return nil, fmt.Errorf("load organization: %w", err)
	}
	rep := &protocol.HelloReply{InstallationID: installationID, OrgID: orgID, OrgName: orgName, Status: protocol.InstallationAccepted, HubVersion: f.version,
		SessionKeys: slices.Clone(f.keys)}
	for _, id := range envIDs {
		name, err := f.name(ctx, orgID, id)
		if err != nil {
			return nil, fmt.Errorf("load environment %s: %w", id, err)
		}
		rep.Environments = append(rep.Environments, protocol.Environment{ID: id, Name: name})
	}
	// Liveness is the link registry's; the store keeps the agent's identity
	// (and last seen, written at disconnect). A reconnect that changes
	// neither costs no write, which keeps a reconnect storm after a hub
	// restart cheap.
	f.mu.Lock()
	known, ok := f.stored[installationID]
	f.mu.Unlock()
	if ok && known == (identity{h.AgentVersion, h.Hostname}) {
		return rep, nil
	}
	if err := f.store.UpdateInstallationSeen(ctx, installationID, true, f.now().UTC(), h.AgentVersion, h.Hostname); err != nil {
		return nil, fmt.Errorf("record hello: %w", err)
	}
	f.mu.Lock()
	f.stored[installationID] = identity{h.AgentVersion, h.Hostname}
	f.mu.Unlock()
	return rep, nil
}

// name returns an organization's name (envID empty) or an environment's.
// Names never change, so they are cached: a hello then costs one store
// write, which keeps reconnect storms cheap.
func (f *Fleet) name(ctx context.Context, orgID, envID string) (string, error) {
	key := orgID + "/" + envID
	f.mu.Lock()
	n, ok := f.names[key]
	f.mu.Unlock()
	if ok {
		return n, nil
	}
	if envID == "" {
		o, err := f.store.Org(ctx, orgID)
		if err != nil {
			return "", err
		}
		n = o.Name
	} else {
		e, err := f.store.Environment(ctx, orgID, envID)
		if err != nil {
			return "", err
		}
		n = e.Name
	}
	f.mu.Lock()
	if len(f.names) > 100_000 {
		clear(f.names) // bound the cache; it refills from the store
	}
	f.names[key] = n
	f.mu.Unlock()
	return n, nil
}

// Disconnected records that an installation's primary link ended.
func (f *Fleet) Disconnected(ctx context.Context, installationID string, lastSeen time.Time) {
	inst, err := f.store.Installation(ctx, installationID)
	if err != nil {
		f.log.Warn("could not record disconnect; the installation may show online until it reconnects", "agent_id", installationID, "err", err)
		return
	}
	if err := f.store.UpdateInstallationSeen(ctx, inst.ID, false, lastSeen.UTC(), inst.AgentVersion, inst.Hostname); err != nil {
		f.log.Warn("could not record disconnect; the installation may show online until it reconnects", "agent_id", inst.ID, "err", err)
	}
}

// Installation is an installation as listed to users.
type Installation struct {
	state.Installation
	Online bool
}

// Revoke deletes an installation of orgID, and with it its credential, and
// closes its link with protocol.CloseRevoked: the agent can no longer
// connect until it is linked again with a new link token. An installation
// of another organization is not found, like a missing one.
func (f *Fleet) Revoke(ctx context.Context, orgID, id string) (state.Installation, error) {
	i, err := f.store.Installation(ctx, id)
	if errors.Is(err, state.ErrNotFound) || (err == nil && i.OrgID != orgID) {
		return state.Installation{}, protocol.Errorf(protocol.CodeNotFound, "no installation "+id)
	}
	if err != nil {
		return state.Installation{}, fmt.Errorf("load installation: %w", err)
	}
	if err := f.store.DeleteInstallation(ctx, id); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return state.Installation{}, protocol.Errorf(protocol.CodeNotFound, "no installation "+id)
		}
		return state.Installation{}, fmt.Errorf("revoke installation: %w", err)
	}
	f.presence.Disconnect(id, protocol.CloseRevoked, "installation revoked")
	f.log.Warn("installation revoked; its agent is disconnected and must be linked again", "agent_id", id, "org_id", orgID)
	return i, nil
}

// List returns an organization's installations with live status.
func (f *Fleet) List(ctx context.Context, orgID string) ([]Installation, error) {
	all, err := f.store.ListInstallations(ctx, orgID)
	if err != nil {
		return nil, fmt.Errorf("list installations: %w", err)
	}
	out := make([]Installation, 0, len(all))
	for _, i := range all {
		seen, online := f.presence.LastSeen(i.ID)
		if online {
			i.LastSeen = seen
		}
		out = append(out, Installation{Installation: i, Online: online})
	}
	return out, nil
}
