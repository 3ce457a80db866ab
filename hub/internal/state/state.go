package state

import (
	"context"
	"errors"
	"time"

	"ferry.dev/shared/protocol"
)

// Sentinel errors every Store returns (wrapped) so callers can use errors.Is.
var (
	// ErrNotFound: no record matches.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique key is taken, or a conditional update did not
	// match the expected state.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the store cannot be reached; retry later.
	ErrUnavailable = errors.New("store unavailable")
)

// Org is an organization: a tenant owning environments.
type Org struct {
	ID        string
	Name      string // unique across the hub
	CreatedAt time.Time
}

// Environment is one environment (Dev, QA, Prod…) of an organization.
type Environment struct {
	ID        string
	OrgID     string
	Name      string // unique within the organization
	CreatedAt time.Time
}

// LinkToken is a one-time token that links an agent to an environment.
type LinkToken struct {
	ID        string
	OrgID     string
	EnvID     string
	Hash      string // hex SHA-256 of the secret; the secret is never stored
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until consumed
}

// Installation is an APIM installation linked through an agent.
type Installation struct {
	ID             string
	OrgID          string
	EnvIDs         []string // environments it serves
	CredentialHash string   // hex SHA-256 of the installation credential; unique
	AgentVersion   string
	Hostname       string
	Online         bool
	LastSeen       time.Time // zero when never connected
	CreatedAt      time.Time
}

// APIToken is a REST bearer token.
type APIToken struct {
	ID        string
	Hash      string // hex SHA-256 of the secret; unique
	OrgID     string // empty for the platform admin
	Name      string
	CreatedAt time.Time
}

// Promotion is a request to copy an API definition from one environment to
// another of the same organization.
type Promotion struct {
	ID          string
	OrgID       string
	SourceEnvID string
	TargetEnvID string
	APIID       string // the API's id in the source APIM
	CrossID     string
	APIName     string
	APIVersion  string
	Definition  []byte // sanitized export JSON
	Requester   string
	Status      protocol.PromotionStatus
	Delivered   bool   // the target agent has stored the task
	Notified    bool   // the source agent has been told the terminal status
	TargetAPIID string // set on accept
	Reason      string // reject reason or error detail
	CreatedAt   time.Time
	UpdatedAt   time.Time
	DeliveredAt time.Time
	DecidedAt   time.Time
}

// PromotionFilter selects promotions; empty fields match everything.
type PromotionFilter struct {
	OrgID       string
	Status      []protocol.PromotionStatus
	APIID       string
	CrossID     string
	SourceEnvID string
	TargetEnvID string
	// EnvID matches promotions whose source or target is this environment.
	EnvID string
	// Undelivered selects promotions not yet delivered (status CREATED).
	Undelivered bool
	// Unnotified selects terminal promotions whose source was not told.
	Unnotified bool
	Limit      int // 0 means 100
	Offset     int
}

// PromotionUpdate is a conditional change of one promotion: it applies only
// when the promotion's status is one of From.
type PromotionUpdate struct {
	From []protocol.PromotionStatus
	// To is the new status; empty keeps the status.
	To          protocol.PromotionStatus
	Delivered   bool // when true, set Delivered and DeliveredAt
	Notified    bool // when true, set Notified
	TargetAPIID string
	Reason      string
	At          time.Time // UpdatedAt, and DecidedAt when To is terminal
}

// AuditEntry is one link of an organization's hash-chained audit trail.
type AuditEntry struct {
	OrgID       string
	Seq         int64 // 1-based, gapless per organization; (OrgID, Seq) is unique
	Time        time.Time
	Event       string
	Actor       string
	EnvID       string
	PromotionID string
	Detail      string
	PrevHash    string // Hash of entry Seq-1; empty for Seq 1
	Hash        string
}

// AuditFilter selects audit entries; empty fields match everything.
type AuditFilter struct {
	OrgID       string
	PromotionID string
	EnvID       string
	Event       string
	Actor       string
	Since       time.Time
	Until       time.Time
	AfterSeq    int64 // entries with Seq > AfterSeq
	Limit       int   // 0 means 100
}

// Store is the hub's persistence contract.
type Store interface {
	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error

	// CreateOrg inserts o; ErrConflict when the name is taken.
	CreateOrg(ctx context.Context, o Org) error
	// Org finds an organization by id or, failing that, by name.
	Org(ctx context.Context, idOrName string) (Org, error)
	ListOrgs(ctx context.Context) ([]Org, error)

	// CreateEnvironment inserts e; ErrConflict when the name is taken in
	// the organization.
	CreateEnvironment(ctx context.Context, e Environment) error
	// Environment finds an environment of org by id or, failing that, name.
	Environment(ctx context.Context, orgID, idOrName string) (Environment, error)
	ListEnvironments(ctx context.Context, orgID string) ([]Environment, error)

	CreateLinkToken(ctx context.Context, t LinkToken) error
	// ConsumeLinkToken marks the token with this hash used at now and
	// returns it. ErrNotFound when no such token exists or it expired;
	// ErrConflict when it was already used. Exactly one of concurrent
	// callers succeeds.
	ConsumeLinkToken(ctx context.Context, hash string, now time.Time) (LinkToken, error)

	// CreateInstallation inserts i; ErrConflict on a duplicate credential.
	CreateInstallation(ctx context.Context, i Installation) error
	InstallationByCredential(ctx context.Context, hash string) (Installation, error)
	Installation(ctx context.Context, id string) (Installation, error)
	ListInstallations(ctx context.Context, orgID string) ([]Installation, error)
	// UpdateInstallationSeen records liveness and the agent's identity.
	UpdateInstallationSeen(ctx context.Context, id string, online bool, at time.Time, agentVersion, hostname string) error
	// MarkAllOffline marks every installation offline; used at hub start.
	MarkAllOffline(ctx context.Context) error

	// CreateAPIToken inserts t; ErrConflict on a duplicate hash.
	CreateAPIToken(ctx context.Context, t APIToken) error
	APITokenByHash(ctx context.Context, hash string) (APIToken, error)

	// CreatePromotion inserts p, which must be non-terminal. At most one
	// non-terminal promotion may exist per (TargetEnvID, CrossID): when one
	// does, it returns the active promotion's id and ErrConflict. Stale
	// locks left by a crash are recovered.
	CreatePromotion(ctx context.Context, p Promotion) (activeID string, err error)
	Promotion(ctx context.Context, id string) (Promotion, error)
	ListPromotions(ctx context.Context, f PromotionFilter) ([]Promotion, error)
	// UpdatePromotion applies u when the promotion's status is in u.From and
	// returns the updated promotion. ErrConflict when the status is not in
	// u.From; ErrNotFound when there is no such promotion. A transition to a
	// terminal status releases the active-promotion key.
	UpdatePromotion(ctx context.Context, id string, u PromotionUpdate) (Promotion, error)

	// AppendAudit inserts e; ErrConflict when (OrgID, Seq) is taken.
	AppendAudit(ctx context.Context, e AuditEntry) error
	// LastAudit returns the organization's entry with the highest Seq, or
	// ErrNotFound when the trail is empty.
	LastAudit(ctx context.Context, orgID string) (AuditEntry, error)
	// ListAudit returns matching entries in Seq order.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
}
