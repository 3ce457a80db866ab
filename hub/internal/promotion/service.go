package promotion

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/authz"
	"ferry.dev/hub/internal/ids"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/secretscan"
	"ferry.dev/shared/session"
)

// Store is the part of the hub store the workflow uses.
type Store interface {
	Environment(ctx context.Context, orgID, idOrName string) (state.Environment, error)
	ListEnvironments(ctx context.Context, orgID string) ([]state.Environment, error)
	CreatePromotion(ctx context.Context, p state.Promotion) (string, error)
	Promotion(ctx context.Context, id string) (state.Promotion, error)
	PromotionByIdempotencyKey(ctx context.Context, orgID, key string) (state.Promotion, error)
	ListPromotions(ctx context.Context, f state.PromotionFilter) ([]state.Promotion, error)
	UpdatePromotion(ctx context.Context, id string, u state.PromotionUpdate) (state.Promotion, error)
	CountUndelivered(ctx context.Context, targetEnvID string) (int, error)
	// For the audit catch-up (catchup.go).
	ListOrgs(ctx context.Context) ([]state.Org, error)
	LastAudit(ctx context.Context, orgID string) (state.AuditEntry, error)
	ListAudit(ctx context.Context, f state.AuditFilter) ([]state.AuditEntry, error)
}

// Dispatcher reaches the agent serving an environment.
type Dispatcher interface {
	// CallEnv sends a command to an agent serving envID and decodes the
	// reply into out. It fails with protocol.CodeUnavailable when no agent
	// serving envID is connected.
	CallEnv(ctx context.Context, envID string, op protocol.Op, body, out any) error
	// Online reports whether an agent serving envID is connected.
	Online(envID string) bool
}

// Auditor records audit events.
type Auditor interface {
	Record(ctx context.Context, ev audit.Event) (state.AuditEntry, error)
}

var _ Auditor = (*audit.Trail)(nil)

// ActiveError reports the promotion that blocks a new one.
type ActiveError struct{ ID string }

func (e *ActiveError) Error() string {
	return "this API already has an active promotion to that environment (" + e.ID + "); accept, reject or cancel it first"
}

// IdempotencyMismatchError reports an Idempotency-Key that the
// organization already used for a different promotion request.
type IdempotencyMismatchError struct{ ID string }

func (e *IdempotencyMismatchError) Error() string {
	return "this Idempotency-Key was already used for a different promotion request (" + e.ID + ")"
}

// Service runs the promotion workflow.
type Service struct {
	store Store
	disp  Dispatcher
	audit Auditor
	log   *slog.Logger
	m     *metrics
	now   func() time.Time
	retry time.Duration
	// maxBacklog is how many promotions may wait for delivery to one
	// environment before Create refuses more (row R26).
	maxBacklog int

	wake     chan struct{} // capacity 1: work to do
	inflight chan struct{} // bounds concurrent deliveries and notifications (DeliverySlots)

	mu      sync.Mutex          // guards busy, envBusy, names, runCtx, runWG and repairing
	runCtx  context.Context     // Run's context while it runs; nil otherwise
	runWG   *sync.WaitGroup     // Run's goroutines
	busy    map[string]struct{} // promotion ids being delivered or notified
	envBusy map[string]int      // environment id → its calls in flight (at most DeliverySlotsPerEnv)
	names   map[string]string   // environment id → name

	// repairing holds the promotions whose late audit entries are being
	// written (by the catch-up or ensureDecisionAudited), so that an entry
	// is not written twice; see lockRepair.
	repairing map[string]chan struct{}
}

// Options are optional Service settings.
type Options struct {
	Retry time.Duration    // how often undelivered work is retried (5s)
	Now   func() time.Time // (time.Now)
	// MaxEnvBacklog is how many promotions may wait for delivery to one
	// target environment (its agent offline or slow) before new ones are
	// refused with protocol.CodeBacklogFull (DefaultMaxEnvBacklog).
	MaxEnvBacklog int
}

// DeliverySlots bounds the deliveries and notifications in flight, and
// DeliverySlotsPerEnv those to one environment's agents, so that an agent
// that stops reading (its calls wait out their deadlines, a minute for a
// large definition) holds at most DeliverySlotsPerEnv of the slots and the
// other environments' promotions keep flowing (row A5).
const (
	DeliverySlots       = 16
	DeliverySlotsPerEnv = 4
)

// DefaultMaxEnvBacklog is Options.MaxEnvBacklog's default: far more than a
// team promotes to one environment while its agent is away, far less than
// the store can hold (a definition may be MiB).
const DefaultMaxEnvBacklog = 1000

// New builds a Service.
func New(store Store, disp Dispatcher, aud Auditor, log *slog.Logger, reg prometheus.Registerer, opts Options) (*Service, error) {
	if store == nil || disp == nil || aud == nil || log == nil {
		return nil, errors.New("promotion: store, dispatcher, auditor and logger are required")
	}
	if opts.Retry <= 0 {
		opts.Retry = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxEnvBacklog <= 0 {
		opts.MaxEnvBacklog = DefaultMaxEnvBacklog
	}
	return &Service{
		store: store, disp: disp, audit: aud, log: log.With("component", "promotion"), m: newMetrics(reg),
		now: opts.Now, retry: opts.Retry, maxBacklog: opts.MaxEnvBacklog, wake: make(chan struct{}, 1), inflight: make(chan struct{}, DeliverySlots),
		busy: map[string]struct{}{}, envBusy: map[string]int{}, names: map[string]string{}, repairing: map[string]chan struct{}{},
	}, nil
}

// Kick asks the background loop to look for work now (e.g. an agent
// connected).
func (s *Service) Kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// auditTimeout bounds writing one audit entry after the action it records.
const auditTimeout = 10 * time.Second

// record appends ev to the audit trail. The action it records is done, so
// the entry is written even if the caller's context has ended meanwhile
// (a link call whose connection dropped after the state change).
func (s *Service) record(ctx context.Context, ev audit.Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if _, err := s.audit.Record(ctx, ev); err != nil {
		s.log.Error("audit entry could not be written; the action itself was done",
			"event", ev.Event, "promotion_id", ev.PromotionID, "actor", ev.Actor, "detail", ev.Detail, "err", err)
	}
}

// Caller is who asks the workflow to act, as the REST API or the link
// authenticated them.
type Caller struct {
	// Name is the actor of audit entries and the requester of a promotion,
	// e.g. "user:ada" or "installation:ins_…".
	Name string
	// UserID is the acting user's id; empty for the platform admin and for
	// installations acting on their own.
	UserID string
	// Perms are the user's permissions; nil holds none. Ignored when
	// Trusted.
	Perms *session.Claims
	// Trusted skips permission checks: the platform admin, or an
	// installation acting on its own (it is confined to the environments it
	// serves by the link).
	Trusted bool
}

// deny returns nil when by is trusted or refusal is nil. Otherwise it
// records the refusal in the audit trail and returns it.
func (s *Service) deny(ctx context.Context, orgID string, by Caller, envID, promotionID, what string, refusal error) error {
	if by.Trusted || refusal == nil {
		return nil
	}
	var pe *protocol.Error
	msg := refusal.Error()
	if errors.As(refusal, &pe) {
		msg = pe.Message
	}
	s.log.Info("access denied", "actor", by.Name, "action", what, "promotion_id", promotionID, "reason", msg)
	s.record(ctx, audit.Event{OrgID: orgID, Event: audit.AccessDenied, Actor: by.Name, EnvID: envID, PromotionID: promotionID,
		Detail: what + " refused: " + msg})
	return refusal
}

// Request is a promotion request with an already exported API.
type Request struct {
	OrgID       string
	SourceEnvID string // id or name
	TargetEnvID string // id or name
	// By is the requester. Unless trusted, it needs API_DEFINITION[UPDATE]
	// on the API in the source environment.
	By  Caller
	API protocol.ExportedAPI
	// IdempotencyKey and RequestHash are stored on the promotion (see
	// state.Promotion); both empty when the request carried no key.
	IdempotencyKey, RequestHash string
}

// Create validates and persists a promotion, then triggers its delivery.
func (s *Service) Create(ctx context.Context, r Request) (state.Promotion, error) {
	if err := r.API.Validate(); err != nil {
		return state.Promotion{}, protocol.Errorf(protocol.CodeInvalid, err.Error())
	}
	if !json.Valid(r.API.Definition) {
		return state.Promotion{}, protocol.Errorf(protocol.CodeInvalid, "definition is not valid JSON")
	}
	src, err := s.store.Environment(ctx, r.OrgID, r.SourceEnvID)
	if errors.Is(err, state.ErrNotFound) {
		return state.Promotion{}, protocol.Errorf(protocol.CodeNotFound, "source environment not found in this organization")
	}
	if err != nil {
		return state.Promotion{}, err
	}
	if err := s.deny(ctx, r.OrgID, r.By, src.ID, "", fmt.Sprintf("promotion of %s (crossId %s) from %s", r.API.Name, r.API.CrossID, src.Name),
		authz.NeedAPI(r.By.Perms, src, r.API.CrossID, session.APIDefUpdate)); err != nil {
		return state.Promotion{}, err
	}
	dst, err := s.store.Environment(ctx, r.OrgID, r.TargetEnvID)
	if errors.Is(err, state.ErrNotFound) {
		s.record(ctx, audit.Event{OrgID: r.OrgID, Event: audit.PromotionRefused, Actor: r.By.Name, EnvID: src.ID,
			Detail: fmt.Sprintf("promotion of %q refused: target environment %q is not in this organization", r.API.Name, r.TargetEnvID)})
		return state.Promotion{}, protocol.Errorf(protocol.CodeNotFound, "target environment not found in this organization; promotion is only between environments of the same organization")
	}
	if err != nil {
		return state.Promotion{}, err
	}
	if dst.ID == src.ID {
		return state.Promotion{}, protocol.Errorf(protocol.CodeInvalid, "target environment must differ from the source")
	}
	if err := s.refuseSecrets(ctx, r, src, dst); err != nil {
		return state.Promotion{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	p := state.Promotion{
		ID: ids.New("prm"), OrgID: r.OrgID, SourceEnvID: src.ID, TargetEnvID: dst.ID, APIID: r.API.APIID, CrossID: r.API.CrossID,
		APIName: r.API.Name, APIVersion: r.API.Version, Definition: r.API.Definition,
		Requester: r.By.Name, RequesterID: r.By.UserID, Status: protocol.PromotionCreated, CreatedAt: now, UpdatedAt: now,
		IdempotencyKey: r.IdempotencyKey, RequestHash: r.RequestHash,
	}
	// Fail closed (row E3): the creation is audited before it is stored,
	// and a promotion whose record cannot be written is not created. A
	// promotion already active for the target is refused first, so that
	// the usual 409 leaves no record of a creation.
	active, err := s.store.ListPromotions(ctx, state.PromotionFilter{OrgID: p.OrgID, TargetEnvID: p.TargetEnvID, CrossID: p.CrossID, Status: undecided, Limit: 1})
	if err != nil {
		return state.Promotion{}, fmt.Errorf("check active promotions: %w", err)
	}
	if len(active) > 0 {
		return state.Promotion{}, &ActiveError{ID: active[0].ID}
	}
	if err := s.checkBacklog(ctx, dst); err != nil {
		return state.Promotion{}, err
	}
	if _, err := s.audit.Record(ctx, audit.Event{OrgID: p.OrgID, Event: audit.PromotionCreated, Actor: p.Requester, EnvID: src.ID, PromotionID: p.ID,
		Detail: fmt.Sprintf("%s %s (crossId %s) from %s to %s", p.APIName, p.APIVersion, p.CrossID, src.Name, dst.Name)}); err != nil {
		s.log.Error("audit entry could not be written; the promotion was not created", "promotion_id", p.ID, "actor", p.Requester, "err", err)
		return state.Promotion{}, protocol.Errorf(protocol.CodeUnavailable, "the audit trail cannot be written, so the promotion was not created; retry shortly")
	}
	activeID, err := s.store.CreatePromotion(ctx, p)
	if errors.Is(err, state.ErrConflict) {
		// Lost a race to another request: the record above names a
		// promotion that was not stored; say so.
		s.record(ctx, audit.Event{OrgID: p.OrgID, Event: audit.PromotionRefused, Actor: p.Requester, EnvID: src.ID, PromotionID: p.ID,
			Detail: fmt.Sprintf("%s was not created after all: %s", p.ID, conflictReason(activeID))})
		if activeID == "" {
			return state.Promotion{}, errKeyTaken
		}
		if _, gerr := s.store.Promotion(ctx, activeID); errors.Is(gerr, state.ErrNotFound) {
			// The lock's holder is being stored by another request, or
			// its hub died before storing it (the lock is recovered after
			// a minute): not a promotion the caller could act on.
			return state.Promotion{}, protocol.Errorf(protocol.CodeUnavailable,
				"another request for this API and target environment is being stored, or was interrupted by a hub restart; retry in a few seconds")
		}
		return state.Promotion{}, &ActiveError{ID: activeID}
	}
	if err != nil {
		// The outcome is unknown (the store may have applied the write):
		// a retry with the same idempotency key finds out.
		return state.Promotion{}, fmt.Errorf("store promotion: %w", err)
	}
	s.m.transitions.WithLabelValues(string(protocol.PromotionCreated)).Inc()
	s.log.Info("promotion requested", "promotion_id", p.ID, "api", p.APIName, "from", src.Name, "to", dst.Name, "requester", p.Requester)
	s.deliverSoon(p)
	return p, nil
}

// refuseSecrets refuses a definition that carries a plaintext secret (row
// R33), and audits the refusal. The refusal says where each secret is and
// what it is, never its value.
func (s *Service) refuseSecrets(ctx context.Context, r Request, src, dst state.Environment) error {
	found, err := secretscan.Scan(r.API.Definition)
	if err != nil {
		return protocol.Errorf(protocol.CodeInvalid, "definition is not valid JSON")
	}
	if len(found) == 0 {
		return nil
	}
	const shown = 5
	where := make([]string, 0, shown+1)
	for i, f := range found {
		if i == shown {
			where = append(where, fmt.Sprintf("and %d more", len(found)-shown))
			break
		}
		where = append(where, clip(f.String()))
	}
	list := strings.Join(where, "; ")
	s.m.refused.WithLabelValues(string(protocol.CodeSecretInDefinition)).Inc()
	s.log.Info("promotion refused: plaintext secret in the definition", "api", r.API.Name, "from", src.Name, "to", dst.Name,
		"requester", r.By.Name, "secrets", len(found), "where", list)
	s.record(ctx, audit.Event{OrgID: r.OrgID, Event: audit.PromotionRefused, Actor: r.By.Name, EnvID: src.ID,
		Detail: fmt.Sprintf("promotion of %q from %s to %s refused: the definition holds %d plaintext secret(s): %s", r.API.Name, src.Name, dst.Name, len(found), list)})
	return protocol.Errorf(protocol.CodeSecretInDefinition, fmt.Sprintf(
		"the definition of %s holds %d plaintext secret(s), which a promotion would copy to %s: %s. "+
			"Replace each in the source environment with a secret reference such as {{secret:name}} or {#secrets.get('/vault/path', 'key')}, "+
			"or mark the API property encrypted, then promote again", r.API.Name, len(found), dst.Name, list))
}

// clip shortens s, a place in a definition (whose member names the
// definition's author chose), to keep refusals readable.
func clip(s string) string {
	const limit = 200
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}

// checkBacklog refuses a promotion to dst while MaxEnvBacklog promotions
// already wait for delivery to its agent (row R26): the hub does not queue
// without bound for an agent that is offline or slow. Concurrent requests
// may overshoot the limit by a few.
func (s *Service) checkBacklog(ctx context.Context, dst state.Environment) error {
	n, err := s.store.CountUndelivered(ctx, dst.ID)
	if err != nil {
		return fmt.Errorf("count promotions waiting for delivery: %w", err)
	}
	if n < s.maxBacklog {
		return nil
	}
	agent := "connected but has not caught up"
	if !s.disp.Online(dst.ID) {
		agent = "not connected"
	}
	s.m.refused.WithLabelValues(string(protocol.CodeBacklogFull)).Inc()
	s.log.Warn("promotion refused: the target environment's backlog is full", "to", dst.Name, "waiting", n, "max", s.maxBacklog, "agent", agent)
	return protocol.Errorf(protocol.CodeBacklogFull, fmt.Sprintf(
		"%d promotions already wait for delivery to %s, whose agent is %s (the hub holds at most %d per environment); "+
			"retry once the agent is online and has caught up, or cancel promotions to %s that are no longer wanted", n, dst.Name, agent, s.maxBacklog, dst.Name))
}

// errKeyTaken is Create's error when the request's idempotency key was
// stored by a concurrent request first.
var errKeyTaken = errors.New("idempotency key taken by a concurrent request")

func conflictReason(activeID string) string {
	if activeID == "" {
		return "its idempotency key was taken by a concurrent request"
	}
	return activeID + " became active for the same API and target first"
}

// CreateAtHubOnce is CreateAtHub for a request that carries an
// Idempotency-Key (row A11 of shared/reference/reliability.md). The key,
// scoped to the organization, is stored with the promotion under a unique
// index, so a retry of a request whose answer was lost (even one whose
// store write succeeded but reported an error) returns the promotion the
// first attempt created, with replayed true, instead of creating another
// or meeting the one-active-promotion rule. The same key with a different
// request (API, environments or requester) is an *IdempotencyMismatchError.
// An empty key is CreateAtHub.
func (s *Service) CreateAtHubOnce(ctx context.Context, orgID, apiID, sourceEnv, targetEnv string, by Caller, key string) (p state.Promotion, replayed bool, err error) {
	if key == "" {
		p, err = s.CreateAtHub(ctx, orgID, apiID, sourceEnv, targetEnv, by)
		return p, false, err
	}
	keyHash, reqHash := digest(orgID, key), digest(orgID, apiID, sourceEnv, targetEnv, by.Name, by.UserID)
	if p, replayed, err := s.replay(ctx, orgID, keyHash, reqHash); replayed || err != nil {
		return p, replayed, err
	}
	p, err = s.createAtHub(ctx, orgID, apiID, sourceEnv, targetEnv, by, keyHash, reqHash)
	var ae *ActiveError
	if errors.As(err, &ae) || errors.Is(err, errKeyTaken) {
		// A concurrent attempt with the same key may have won.
		if p2, replayed, rerr := s.replay(ctx, orgID, keyHash, reqHash); replayed || rerr != nil {
			return p2, replayed, rerr
		}
	}
	if errors.Is(err, errKeyTaken) {
		return state.Promotion{}, false, protocol.Errorf(protocol.CodeUnavailable, "a request with this Idempotency-Key is being processed; retry shortly")
	}
	return p, false, err
}

// replay returns the organization's promotion stored under keyHash (replayed
// true), an *IdempotencyMismatchError when it was made by another request,
// or nothing when there is none.
func (s *Service) replay(ctx context.Context, orgID, keyHash, reqHash string) (state.Promotion, bool, error) {
	p, err := s.store.PromotionByIdempotencyKey(ctx, orgID, keyHash)
	switch {
	case errors.Is(err, state.ErrNotFound):
		return state.Promotion{}, false, nil
	case err != nil:
		return state.Promotion{}, false, fmt.Errorf("look up idempotency key: %w", err)
	case p.RequestHash != reqHash:
		return state.Promotion{}, false, &IdempotencyMismatchError{ID: p.ID}
	}
	s.log.Info("promotion request replayed", "promotion_id", p.ID)
	return p, true, nil
}

// digest is the hex SHA-256 of parts, each length-prefixed.
func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// CreateAtHub asks the source environment's agent to export the API, then
// creates the promotion (the CLI/CI path). The permission is checked after
// the export, which tells the API's crossId; a caller who holds
// API_DEFINITION[UPDATE] on no API of the source environment is refused
// before it, without troubling the agent.
func (s *Service) CreateAtHub(ctx context.Context, orgID, apiID, sourceEnv, targetEnv string, by Caller) (state.Promotion, error) {
	return s.createAtHub(ctx, orgID, apiID, sourceEnv, targetEnv, by, "", "")
}

// createAtHub is CreateAtHub storing keyHash and reqHash on the promotion.
func (s *Service) createAtHub(ctx context.Context, orgID, apiID, sourceEnv, targetEnv string, by Caller, keyHash, reqHash string) (state.Promotion, error) {
	src, err := s.store.Environment(ctx, orgID, sourceEnv)
	if errors.Is(err, state.ErrNotFound) {
		return state.Promotion{}, protocol.Errorf(protocol.CodeNotFound, "source environment not found in this organization")
	}
	if err != nil {
		return state.Promotion{}, err
	}
	if !by.Trusted && !authz.HoldsAnywhere(by.Perms, src.ID, session.APIDefUpdate) {
		return state.Promotion{}, s.deny(ctx, orgID, by, src.ID, "", fmt.Sprintf("promotion of API %s from %s", apiID, src.Name),
			authz.Forbidden(fmt.Sprintf("needs %s on API %s in %s", authz.Label(session.APIDefUpdate), apiID, src.Name)))
	}
	// A full target backlog refuses the request before the source agent
	// exports what would not be stored (Create checks again).
	if dst, err := s.store.Environment(ctx, orgID, targetEnv); err == nil && dst.ID != src.ID {
		if err := s.checkBacklog(ctx, dst); err != nil {
			return state.Promotion{}, err
		}
	}
	var api protocol.ExportedAPI
	if err := s.disp.CallEnv(ctx, src.ID, protocol.OpExportAPI, protocol.ExportRequest{APIID: apiID}, &api); err != nil {
		if protocol.CodeOf(err) == protocol.CodeUnavailable {
			return state.Promotion{}, protocol.Errorf(protocol.CodeUnavailable, "the source environment's agent is not connected, so the API cannot be exported; retry when it is online")
		}
		return state.Promotion{}, err
	}
	if api.APIID == "" {
		api.APIID = apiID
	}
	return s.Create(ctx, Request{OrgID: orgID, SourceEnvID: src.ID, TargetEnvID: targetEnv, By: by, API: api,
		IdempotencyKey: keyHash, RequestHash: reqHash})
}

// Get returns one of the organization's promotions; another organization's
// promotion is not found.
func (s *Service) Get(ctx context.Context, orgID, id string) (state.Promotion, error) {
	p, err := s.store.Promotion(ctx, id)
	if err != nil {
		return state.Promotion{}, err
	}
	if p.OrgID != orgID {
		return state.Promotion{}, state.ErrNotFound
	}
	return p, nil
}

// List returns promotions matching f (f.OrgID must be set).
func (s *Service) List(ctx context.Context, f state.PromotionFilter) ([]state.Promotion, error) {
	if f.OrgID == "" {
		return nil, errors.New("promotion: list needs an organization")
	}
	return s.store.ListPromotions(ctx, f)
}

// Waiting reports whether an undelivered promotion's target is offline.
func (s *Service) Waiting(p state.Promotion) bool {
	return p.Status == protocol.PromotionCreated && !p.Delivered && !s.disp.Online(p.TargetEnvID)
}

var undecided = []protocol.PromotionStatus{protocol.PromotionCreated, protocol.PromotionToBeValidated}

// Cancel withdraws an undecided promotion and removes its task at the
// target. Only its requester or an organization admin may.
func (s *Service) Cancel(ctx context.Context, orgID, id string, by Caller) (state.Promotion, error) {
	p, err := s.Get(ctx, orgID, id)
	if err != nil {
		return state.Promotion{}, err
	}
	var refusal error
	if !(by.Perms != nil && by.Perms.OrgAdmin) && (by.UserID == "" || by.UserID != p.RequesterID) {
		refusal = authz.Forbidden("only the requester or an organization admin may cancel this promotion")
	}
	if err := s.deny(ctx, orgID, by, p.SourceEnvID, id, "cancel of "+p.APIName, refusal); err != nil {
		return state.Promotion{}, err
	}
	actor := by.Name
	if p.Status.Terminal() {
		return state.Promotion{}, protocol.Errorf(protocol.CodeConflict, "promotion is already "+string(p.Status)+"; only undecided promotions can be cancelled")
	}
	// Fail closed (row E3): audited first; a cancel that then fails is
	// followed by an entry saying so.
	ev := audit.Event{OrgID: orgID, Event: audit.PromotionCancelled, Actor: actor, EnvID: p.SourceEnvID, PromotionID: id,
		Detail: fmt.Sprintf("%s cancelled before a decision", p.APIName)}
	if _, err := s.audit.Record(ctx, ev); err != nil {
		s.log.Error("audit entry could not be written; the promotion was not cancelled", "promotion_id", id, "actor", actor, "err", err)
		return state.Promotion{}, protocol.Errorf(protocol.CodeUnavailable, "the audit trail cannot be written, so the promotion was not cancelled; retry shortly")
	}
	p, err = s.store.UpdatePromotion(ctx, id, state.PromotionUpdate{From: undecided, To: protocol.PromotionCancelled, Reason: "cancelled by " + actor, At: s.now().UTC()})
	if err != nil {
		why := "the store failed (if it applied the change anyway, the promotion shows it)"
		if errors.Is(err, state.ErrConflict) {
			why = "it was decided meanwhile"
			err = protocol.Errorf(protocol.CodeConflict, "promotion was decided meanwhile; it can no longer be cancelled")
		}
		s.record(ctx, audit.Event{OrgID: orgID, Event: audit.ActionNotDone, Actor: actor, EnvID: ev.EnvID, PromotionID: id,
			Detail: audit.PromotionCancelled + " (" + ev.Detail + ") was not done: " + why})
		return state.Promotion{}, err
	}
	s.m.transitions.WithLabelValues(string(protocol.PromotionCancelled)).Inc()
	// Best effort now; an agent that misses this drops the task when it
	// reconciles on its next connection.
	if err := s.disp.CallEnv(ctx, p.TargetEnvID, protocol.OpCancelPromotion, protocol.CancelRequest{PromotionID: id}, nil); err != nil {
		s.log.Info("target agent not told of the cancellation yet; it will drop the task when it reconnects", "promotion_id", id, "err", err)
	}
	s.Kick()
	return p, nil
}

// Decide records a target agent's decision. servedEnvs are the environments
// the reporting installation serves; a decision for another environment's
// promotion is refused as not found and audited. by is the deciding user
// (from the decision's session) or the trusted installation; a user needs
// ENVIRONMENT_API[CREATE] and ENVIRONMENT_API[UPDATE] on the target
// environment, for every outcome.
func (s *Service) Decide(ctx context.Context, orgID, installationID string, servedEnvs []string, d protocol.Decision, by Caller) (state.Promotion, error) {
	if err := d.Validate(); err != nil {
		return state.Promotion{}, protocol.Errorf(protocol.CodeInvalid, err.Error())
	}
	p, err := s.store.Promotion(ctx, d.PromotionID)
	if errors.Is(err, state.ErrNotFound) || (err == nil && (p.OrgID != orgID || !contains(servedEnvs, p.TargetEnvID))) {
		if err == nil {
			s.record(ctx, audit.Event{OrgID: orgID, Event: audit.AccessDenied, Actor: "installation:" + installationID, PromotionID: d.PromotionID,
				Detail: "decision reported for a promotion that does not target an environment this installation serves"})
		}
		return state.Promotion{}, protocol.Errorf(protocol.CodeNotFound, "no such promotion for this environment")
	}
	if err != nil {
		return state.Promotion{}, err
	}
	if by.Name != "" {
		d.Actor = by.Name
	}
	if !by.Trusted {
		dst, err := s.store.Environment(ctx, orgID, p.TargetEnvID)
		if err != nil {
			return state.Promotion{}, fmt.Errorf("load target environment: %w", err)
		}
		if err := s.deny(ctx, orgID, by, dst.ID, p.ID, fmt.Sprintf("decision %s on %s", d.Outcome, p.APIName),
			authz.NeedEnv(by.Perms, dst, session.EnvAPICreate, session.EnvAPIUpdate)); err != nil {
			return state.Promotion{}, err
		}
	}
	to := protocol.PromotionStatus(d.Outcome)
	if p.Status.Terminal() {
		return s.decided(ctx, p, to, d)
	}
	now := s.now().UTC()
	upd := state.PromotionUpdate{From: undecided, To: to, TargetAPIID: d.TargetAPIID, Reason: d.Reason, At: now}
	// A decision on a promotion the hub has not seen delivered proves the
	// agent stored the task: the delivery's answer was lost, or is late on
	// a slow link. The decision then records the delivery too, in the same
	// write, only if the promotion is still CREATED (else the delivery was
	// recorded meanwhile, with its own audit entry).
	deliveredNow := false
	var p2 state.Promotion
	if p.Status == protocol.PromotionCreated && p.DeliveredAt.IsZero() {
		first := upd
		first.From, first.Delivered = []protocol.PromotionStatus{protocol.PromotionCreated}, true
		p2, err = s.store.UpdatePromotion(ctx, p.ID, first)
		deliveredNow = err == nil
		if errors.Is(err, state.ErrConflict) {
			p2, err = s.store.UpdatePromotion(ctx, p.ID, upd)
		}
	} else {
		p2, err = s.store.UpdatePromotion(ctx, p.ID, upd)
	}
	if errors.Is(err, state.ErrConflict) {
		cur, gerr := s.store.Promotion(ctx, p.ID)
		if gerr != nil {
			return state.Promotion{}, gerr
		}
		return s.decided(ctx, cur, to, d)
	}
	if err != nil {
		return state.Promotion{}, err
	}
	s.m.transitions.WithLabelValues(string(to)).Inc()
	if !p.DeliveredAt.IsZero() {
		s.m.decision.Observe(s.now().Sub(p.DeliveredAt).Seconds())
	}
	if deliveredNow {
		s.m.transitions.WithLabelValues(string(protocol.PromotionToBeValidated)).Inc()
		s.m.taskRaised.Observe(now.Sub(p.CreatedAt).Seconds())
		s.log.Info("promotion's delivery confirmed by the target's decision (the delivery's own answer was lost or late)", "promotion_id", p.ID)
		s.record(ctx, audit.Event{OrgID: p.OrgID, Event: audit.PromotionDelivered, Actor: "hub", EnvID: p.TargetEnvID, PromotionID: p.ID,
			Detail: fmt.Sprintf("task raised for %s in the target environment; confirmed by the agent's decision, the delivery's own answer was lost or late", p.APIName)})
	}
	s.log.Info("promotion decided", "promotion_id", p.ID, "status", to, "actor", d.Actor)
	// Fail closed (row E3): the decision is acknowledged only once its
	// audit entry is written. If it cannot be, the agent reports the
	// decision again, and decided writes the entry then.
	ev, detail := decisionEntry(p, d)
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if _, err := s.audit.Record(actx, audit.Event{OrgID: p.OrgID, Event: ev, Actor: d.Actor, EnvID: p.TargetEnvID, PromotionID: p.ID, Detail: detail}); err != nil {
		s.log.Error("audit entry of a decision could not be written; the decision is stored but not acknowledged, and the agent reports it again",
			"promotion_id", p.ID, "event", ev, "actor", d.Actor, "err", err)
		s.Kick()
		return state.Promotion{}, errDecisionNotAudited
	}
	s.Kick()
	return p2, nil
}

// errDecisionNotAudited answers a decision whose audit entry is not written.
var errDecisionNotAudited = protocol.Errorf(protocol.CodeUnavailable,
	"the decision is stored but the audit trail cannot be written, so it is not acknowledged yet; report it again shortly")

// decisionEntry is the audit event and detail of decision d on p.
func decisionEntry(p state.Promotion, d protocol.Decision) (event, detail string) {
	switch d.Outcome {
	case protocol.OutcomeRejected:
		return audit.PromotionRejected, fmt.Sprintf("%s rejected: %s", p.APIName, orNone(d.Reason))
	case protocol.OutcomeFailed:
		return audit.PromotionFailed, fmt.Sprintf("%s accepted but the import failed: %s", p.APIName, orNone(d.Reason))
	}
	verb := "updated"
	if d.Created {
		verb = "created"
	}
	return audit.PromotionAccepted, fmt.Sprintf("%s accepted; target API %s %s", p.APIName, d.TargetAPIID, verb)
}

// decisionSettle is how long after a decision was stored its own audit
// write may still be under way (it gives up after auditTimeout).
const decisionSettle = auditTimeout + 5*time.Second

// ensureDecisionAudited writes the audit entry of p's decision, d, if it
// is missing: the first report of d stored it but could not audit it. A
// decision stored less than decisionSettle ago may still be being audited
// by that first report; the answer is then to report again later, so the
// entry is never written twice.
func (s *Service) ensureDecisionAudited(ctx context.Context, p state.Promotion, d protocol.Decision) error {
	unlock, err := s.lockRepair(ctx, p.ID)
	if err != nil {
		return errDecisionNotAudited
	}
	defer unlock()
	ev, detail := decisionEntry(p, d)
	have, err := s.audited(ctx, p, ev)
	if err != nil {
		return fmt.Errorf("read the promotion's audit entries: %w", err)
	}
	if have {
		return nil
	}
	if s.now().Sub(p.UpdatedAt) < decisionSettle {
		return errDecisionNotAudited
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if _, err := s.audit.Record(actx, audit.Event{OrgID: p.OrgID, Event: ev, Actor: d.Actor, EnvID: p.TargetEnvID, PromotionID: p.ID,
		Detail: detail + "; recorded when the agent reported the decision again"}); err != nil {
		s.log.Error("audit entry of a decision still cannot be written; the agent reports it again", "promotion_id", p.ID, "event", ev, "err", err)
		return errDecisionNotAudited
	}
	s.log.Warn("audit entry of a decision written late", "promotion_id", p.ID, "event", ev, "changed_at", p.UpdatedAt)
	return nil
}

// audited reports whether p's trail has an entry of event ev.
func (s *Service) audited(ctx context.Context, p state.Promotion, ev string) (bool, error) {
	es, err := s.store.ListAudit(ctx, state.AuditFilter{OrgID: p.OrgID, PromotionID: p.ID, Event: ev, Limit: 1})
	return len(es) > 0, err
}

// lockRepair waits until no one else writes late audit entries of
// promotion id, then holds it until unlock is called. It gives up when ctx
// ends.
func (s *Service) lockRepair(ctx context.Context, id string) (unlock func(), err error) {
	for {
		s.mu.Lock()
		held, busy := s.repairing[id]
		if !busy {
			done := make(chan struct{})
			s.repairing[id] = done
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.repairing, id)
				s.mu.Unlock()
				close(done)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// decided answers a decision for a promotion that is already terminal: the
// same outcome again is a harmless duplicate; another is a conflict.
func (s *Service) decided(ctx context.Context, p state.Promotion, to protocol.PromotionStatus, d protocol.Decision) (state.Promotion, error) {
	if p.Status == to {
		// The same decision again (a retry, or a report whose answer was
		// lost): acknowledged once it is audited.
		if err := s.ensureDecisionAudited(ctx, p, d); err != nil {
			return state.Promotion{}, err
		}
		return p, nil
	}
	s.record(ctx, audit.Event{OrgID: p.OrgID, Event: audit.DecisionConflict, Actor: d.Actor, EnvID: p.TargetEnvID, PromotionID: p.ID,
		Detail: fmt.Sprintf("decision %s arrived for a promotion already %s; the first result stands (target API %s)", to, p.Status, orNone(d.TargetAPIID))})
	return state.Promotion{}, protocol.Errorf(protocol.CodeConflict, "promotion is already "+string(p.Status))
}

// Targets lists the environments of the organization an installation may
// promote to: all but the ones it serves.
func (s *Service) Targets(ctx context.Context, orgID string, served []string) ([]protocol.Target, error) {
	envs, err := s.store.ListEnvironments(ctx, orgID)
	if err != nil {
		return nil, err
	}
	out := []protocol.Target{}
	for _, e := range envs {
		if contains(served, e.ID) {
			continue
		}
		out = append(out, protocol.Target{Environment: protocol.Environment{ID: e.ID, Name: e.Name}, Online: s.disp.Online(e.ID)})
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "(none given)"
	}
	return s
}
