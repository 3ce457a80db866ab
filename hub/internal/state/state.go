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
	Online         bool      // as last written (enroll, a changed hello, disconnect); live status is the hub link registry's
	LastSeen       time.Time // zero when never connected
	CreatedAt      time.Time
	// ClientKeyHash is the hex SHA-256 of the DER SubjectPublicKeyInfo of
	// the client certificate the agent enrolled with (mTLS): its links must
	// present a verified certificate with that key. Empty when it enrolled
	// without a client certificate, which binds nothing.
	ClientKeyHash string

	// PreviousCredentialHash is the hex SHA-256 of the credential the
	// current one replaced at the last rotation; empty when the credential
	// was never rotated. It opens links until PreviousCredentialExpiresAt,
	// and is kept after that so that a link presenting it can be told it
	// expired.
	PreviousCredentialHash string
	// PreviousCredentialExpiresAt is when the previous credential stops
	// opening links: the rotation's time plus the overlap. Zero when there
	// is no previous credential.
	PreviousCredentialExpiresAt time.Time
	// CredentialRotatedAt is when the credential was last rotated; zero
	// when never.
	CredentialRotatedAt time.Time
	// CredentialPending is true from a rotation until the agent shows that
	// it holds the current credential (it acknowledged it, or linked with
	// it): until then it may hold only the previous one.
	CredentialPending bool
}

// ConnectionEvent is one link of an installation opening or closing, as the
// hub that served it saw it.
type ConnectionEvent struct {
	InstallationID string
	OrgID          string
	At             time.Time
	Event          string // ConnectionOpened or ConnectionClosed
	// Reason is why a link closed (e.g. "goodbye", "silent", "superseded",
	// "slow consumer", "error"); empty when it opened.
	Reason string
	// Remote is the peer address the link came from.
	Remote string
}

// ConnectionEvent.Event values.
const (
	ConnectionOpened = "CONNECTED"
	ConnectionClosed = "DISCONNECTED"
)

// MaxConnectionEvents is how many connection events a store keeps per
// installation; RecordConnection drops older ones.
const MaxConnectionEvents = 100

// Credential returns the installation's credential state.
func (i Installation) Credential() InstallationCredential {
	return InstallationCredential{
		Hash: i.CredentialHash, PreviousHash: i.PreviousCredentialHash, PreviousExpiresAt: i.PreviousCredentialExpiresAt,
		RotatedAt: i.CredentialRotatedAt, Pending: i.CredentialPending,
	}
}

// InstallationCredential is the credential state of an installation: the
// fields of Installation by the same names, CredentialHash as Hash.
type InstallationCredential struct {
	Hash              string
	PreviousHash      string
	PreviousExpiresAt time.Time
	RotatedAt         time.Time
	Pending           bool
}

// APIToken is a REST bearer token: the platform admin's (OrgID and UserID
// empty) or a user's personal access token.
type APIToken struct {
	ID        string
	Hash      string // hex SHA-256 of the secret; unique
	OrgID     string // empty for the platform admin
	Name      string
	CreatedAt time.Time
	// UserID is the user the token acts for; empty for the platform admin.
	UserID string
	// LastUsedAt is when the token was last used, to the minute or so
	// (recorded at most about once a minute); zero when never.
	LastUsedAt time.Time
	// RevokedAt is when the token was revoked; zero while it is valid.
	RevokedAt time.Time
	// ExpiresAt is when the token stops working; zero means never.
	ExpiresAt time.Time
}

// User is a person (or a robot) of an organization who signs in with a
// password or acts through personal access tokens.
type User struct {
	ID           string
	OrgID        string
	Username     string // unique within the organization
	DisplayName  string
	PasswordHash string // encoded argon2id hash; empty means no password sign-in
	Disabled     bool
	CreatedAt    time.Time
}

// UserUpdate changes a user; nil fields and an empty PasswordHash keep what
// is stored.
type UserUpdate struct {
	DisplayName  *string
	Disabled     *bool
	PasswordHash string
}

// Scope is what a role applies to, in Gravitee's vocabulary. Append-only.
type Scope string

// Role scopes.
const (
	ScopeOrganization Scope = "ORGANIZATION" // the whole organization
	ScopeEnvironment  Scope = "ENVIRONMENT"  // one environment
	ScopeAPI          Scope = "API"          // one API (by crossId) in one environment
)

// RoleBinding gives a user a role on a scope. (UserID, Scope, EnvID,
// CrossID) is unique: a user holds one role per organization, environment
// or API; changing it is a delete and a create.
type RoleBinding struct {
	ID        string
	OrgID     string
	UserID    string
	Scope     Scope
	EnvID     string // set for ENVIRONMENT and API scopes
	CrossID   string // set for the API scope
	Role      string // a built-in role name or a custom Role's name
	CreatedAt time.Time
}

// RoleBindingFilter selects role bindings of an organization; empty fields
// match everything.
type RoleBindingFilter struct {
	OrgID  string // required
	UserID string
	EnvID  string
}

// Role is a custom role: a named permission set for a scope. (OrgID, Scope,
// Name) is unique. Built-in roles are not stored.
type Role struct {
	OrgID       string
	Scope       Scope
	Name        string
	Permissions []string // e.g. "ENVIRONMENT_API:READ"
	CreatedAt   time.Time
}

// Setting is a named hub-wide value written once: the first writer's value
// stands, so that hubs sharing a store agree (e.g. the session signing key).
type Setting struct {
	Name      string
	Value     []byte
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
	// RequesterID is the requesting user's id; empty when the platform
	// admin or an installation requested.
	RequesterID string
	Status      protocol.PromotionStatus
	Delivered   bool   // the target agent has stored the task
	Notified    bool   // the source agent has been told the terminal status
	TargetAPIID string // set on accept
	Reason      string // reject reason or error detail
	CreatedAt   time.Time
	UpdatedAt   time.Time
	DeliveredAt time.Time
	DecidedAt   time.Time
	// IdempotencyKey is a digest of the Idempotency-Key the request that
	// created the promotion carried; empty when it carried none. It is
	// unique within the organization, so that a retry of the request finds
	// this promotion instead of creating another (row A11).
	IdempotencyKey string
	// RequestHash is a digest of that request, to tell a retry (the same
	// hash) from a reuse of its key for another request; empty without a
	// key.
	RequestHash string
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
	// AnyEnvIDs, when not empty, matches promotions whose source or target
	// is one of these environments.
	AnyEnvIDs []string
	// Undelivered selects promotions not yet delivered (status CREATED).
	Undelivered bool
	// Unnotified selects terminal promotions whose source was not told.
	Unnotified bool
	// UpdatedSince, when not zero, selects promotions last changed at or
	// after it.
	UpdatedSince time.Time
	Limit        int // 0 means 100
	Offset       int
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

// AuditAnchor is a signed digest of an organization's audit trail head
// (row E7 of shared/reference/reliability.md): it pins the Hash of entry
// Seq and chains to the previous anchor's Signature, so that rewriting the
// trail (even re-hashing every entry) is detected against anchors kept or
// checked outside the store. (OrgID, Seq) is unique.
type AuditAnchor struct {
	OrgID     string
	Seq       int64 // the anchored entry
	Hash      string
	Time      time.Time
	PrevSig   string // Signature of the organization's previous anchor; empty for the first
	KeyID     string // names the signing key
	Signature string // base64url Ed25519 signature of the anchor's digest
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
	// ErrConflict when it was already used, returned with the token (so
	// that the reuse can be audited in its organization). Exactly one of
	// concurrent callers succeeds.
	ConsumeLinkToken(ctx context.Context, hash string, now time.Time) (LinkToken, error)

	// CreateInstallation inserts i; ErrConflict on a duplicate credential.
	CreateInstallation(ctx context.Context, i Installation) error
	// InstallationByCredential finds the installation whose current
	// credential (CredentialHash) or previous one (PreviousCredentialHash,
	// expired or not) has this hash; the caller tells which by comparing.
	InstallationByCredential(ctx context.Context, hash string) (Installation, error)
	// SetInstallationCredential replaces the credential state of
	// installation id with to, provided its CredentialHash and
	// CredentialPending are still from.Hash and from.Pending (the other
	// fields of from are not compared), and returns the installation as
	// updated. ErrNotFound when there is no such installation; ErrConflict
	// when its credential changed meanwhile. to.Hash must be the hash of a
	// fresh secret: the unique index refuses another installation's
	// current credential, with an error that not every engine reports as
	// ErrConflict.
	SetInstallationCredential(ctx context.Context, id string, from, to InstallationCredential) (Installation, error)
	Installation(ctx context.Context, id string) (Installation, error)
	// DeleteInstallation removes the installation, and so its credential;
	// ErrNotFound when there is none.
	DeleteInstallation(ctx context.Context, id string) error
	ListInstallations(ctx context.Context, orgID string) ([]Installation, error)
	// UpdateInstallationSeen records liveness and the agent's identity.
	UpdateInstallationSeen(ctx context.Context, id string, online bool, at time.Time, agentVersion, hostname string) error
	// MarkAllOffline marks every installation offline; used at hub start.
	MarkAllOffline(ctx context.Context) error
	// RecordConnection appends e to its installation's connection history
	// and drops all but the newest MaxConnectionEvents of it.
	RecordConnection(ctx context.Context, e ConnectionEvent) error
	// ListConnections returns an installation's connection events, newest
	// first, at most limit (0 means 100).
	ListConnections(ctx context.Context, installationID string, limit int) ([]ConnectionEvent, error)

	// CreateAPIToken inserts t; ErrConflict on a duplicate hash.
	CreateAPIToken(ctx context.Context, t APIToken) error
	APITokenByHash(ctx context.Context, hash string) (APIToken, error)
	// ListAPITokens returns the organization's tokens, of one user when
	// userID is not empty, by creation time then id.
	ListAPITokens(ctx context.Context, orgID, userID string) ([]APIToken, error)
	// RevokeAPIToken marks the organization's token id revoked at at and
	// returns it; revoking it again keeps the first RevokedAt. ErrNotFound
	// when the organization has no such token.
	RevokeAPIToken(ctx context.Context, orgID, id string, at time.Time) (APIToken, error)
	// TouchAPIToken sets the token's LastUsedAt to at when it is zero or
	// before ifBefore, so that callers write at most once per period.
	// ErrNotFound when there is no such token.
	TouchAPIToken(ctx context.Context, id string, at, ifBefore time.Time) error

	// CreateUser inserts u; ErrConflict when its id or its username in the
	// organization is taken.
	CreateUser(ctx context.Context, u User) error
	// User finds a user of org by id or, failing that, by username.
	User(ctx context.Context, orgID, idOrUsername string) (User, error)
	// ListUsers returns the organization's users by username.
	ListUsers(ctx context.Context, orgID string) ([]User, error)
	// UpdateUser applies u to the organization's user id (one conditional
	// update) and returns the user. ErrNotFound when there is none.
	UpdateUser(ctx context.Context, orgID, id string, u UserUpdate) (User, error)
	// DeleteUser deletes the organization's user id, then its role
	// bindings and tokens. ErrNotFound when there is none. Leftovers of an
	// interrupted delete are inert: every use of a binding or token loads
	// its user first.
	DeleteUser(ctx context.Context, orgID, id string) error

	// CreateRoleBinding inserts b; ErrConflict when the user already has
	// a role on that scope (or the id is taken).
	CreateRoleBinding(ctx context.Context, b RoleBinding) error
	// ListRoleBindings returns matching bindings by creation time then id.
	ListRoleBindings(ctx context.Context, f RoleBindingFilter) ([]RoleBinding, error)
	// DeleteRoleBinding deletes the organization's binding id;
	// ErrNotFound when there is none.
	DeleteRoleBinding(ctx context.Context, orgID, id string) error

	// CreateRole inserts a custom role; ErrConflict when (OrgID, Scope,
	// Name) is taken.
	CreateRole(ctx context.Context, r Role) error
	// ListRoles returns the organization's custom roles by scope, then name.
	ListRoles(ctx context.Context, orgID string) ([]Role, error)
	// DeleteRole deletes a custom role; ErrNotFound when there is none.
	DeleteRole(ctx context.Context, orgID string, scope Scope, name string) error

	// InitSetting inserts s unless a setting of that name exists, and
	// returns the stored setting: the first writer's, whoever it was.
	InitSetting(ctx context.Context, s Setting) (Setting, error)

	// CreatePromotion inserts p, which must be non-terminal. At most one
	// non-terminal promotion may exist per (TargetEnvID, CrossID): when one
	// does, it returns the active promotion's id and ErrConflict. Stale
	// locks left by a crash are recovered. A non-empty IdempotencyKey is
	// unique per organization: when another promotion of the organization
	// has it, nothing is stored and the error is ErrConflict (with no
	// active id).
	CreatePromotion(ctx context.Context, p Promotion) (activeID string, err error)
	Promotion(ctx context.Context, id string) (Promotion, error)
	// PromotionByIdempotencyKey returns the organization's promotion whose
	// IdempotencyKey is key; ErrNotFound when there is none or key is
	// empty.
	PromotionByIdempotencyKey(ctx context.Context, orgID, key string) (Promotion, error)
	// ListPromotions returns the promotions f selects, newest first,
	// without their definitions (Definition is nil: a definition may be
	// MiB, and no list needs it); Promotion returns one with it.
	ListPromotions(ctx context.Context, f PromotionFilter) ([]Promotion, error)
	// CountUndelivered returns how many promotions to targetEnvID wait for
	// delivery to its agent (status CREATED, not delivered), without reading
	// their definitions.
	CountUndelivered(ctx context.Context, targetEnvID string) (int, error)
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

	// AppendAuditAnchor inserts a; ErrConflict when (OrgID, Seq) is taken.
	AppendAuditAnchor(ctx context.Context, a AuditAnchor) error
	// ListAuditAnchors returns the organization's anchors with Seq >
	// afterSeq in Seq order, at most limit (0 means 100).
	ListAuditAnchors(ctx context.Context, orgID string, afterSeq int64, limit int) ([]AuditAnchor, error)
	// LastAuditAnchor returns the organization's anchor with the highest
	// Seq, or ErrNotFound when there is none.
	LastAuditAnchor(ctx context.Context, orgID string) (AuditAnchor, error)
}
