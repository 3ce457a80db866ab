package protocol

import (
	"encoding/json"
	"errors"
	"log/slog"
	"time"
)

// Op names a command operation. Append-only.
type Op string

// Operations. The arrow says who sends the command.
const (
	// OpListTargets (agent → hub): the environments of the agent's
	// organization it may promote to. Body: none. Reply: TargetList.
	OpListTargets Op = "targets.list"
	// OpRequestPromotion (agent → hub): request a promotion of an API the
	// agent has already exported. Body: PromotionRequest. Reply: Promotion.
	OpRequestPromotion Op = "promotion.request"
	// OpExportAPI (hub → source agent): export an API for a promotion
	// requested at the hub. Body: ExportRequest. Reply: ExportedAPI.
	OpExportAPI Op = "api.export"
	// OpDeliverPromotion (hub → target agent): raise a task. The agent
	// answers ok only after the task is stored; a duplicate delivery answers
	// ok and raises nothing. Body: Promotion (with Definition). Reply: none.
	OpDeliverPromotion Op = "promotion.deliver"
	// OpReportDecision (target agent → hub): the admin's decision and the
	// import's outcome. Idempotent by promotion id. Body: Decision. Reply:
	// Promotion.
	OpReportDecision Op = "promotion.decision"
	// OpPromotionUpdate (hub → agent): a promotion's status changed. Body:
	// Promotion (without Definition). Reply: none.
	OpPromotionUpdate Op = "promotion.update"
	// OpCancelPromotion (hub → target agent): withdraw an undecided task.
	// Body: CancelRequest. Reply: none.
	OpCancelPromotion Op = "promotion.cancel"
	// OpListPromotions (agent → hub): promotions from or to the agent's
	// environments. Body: none. Reply: PromotionList.
	OpListPromotions Op = "promotions.list"
	// OpRotateCredential (hub → agent): the installation's credential was
	// rotated; this is the new one. The agent keeps it durably before it
	// answers ok and presents it from its next connection on; the link it
	// arrived on stays open. The same credential sent again is answered ok
	// and changes nothing. An error reply means the agent still holds its
	// old credential. Body: CredentialRotation. Reply: none. Added in
	// version 1 (2026-11-27).
	OpRotateCredential Op = "credential.rotate"
)

// PromotionStatus is a promotion's state. Append-only.
type PromotionStatus string

// Promotion statuses. ACCEPTED, REJECTED, ERROR and CANCELLED are terminal.
const (
	PromotionCreated       PromotionStatus = "CREATED"
	PromotionToBeValidated PromotionStatus = "TO_BE_VALIDATED"
	PromotionAccepted      PromotionStatus = "ACCEPTED"
	PromotionRejected      PromotionStatus = "REJECTED"
	PromotionError         PromotionStatus = "ERROR"
	PromotionCancelled     PromotionStatus = "CANCELLED"
)

// Terminal reports whether s never changes again.
func (s PromotionStatus) Terminal() bool {
	switch s {
	case PromotionAccepted, PromotionRejected, PromotionError, PromotionCancelled:
		return true
	}
	return false
}

// Target is an environment a promotion may go to.
type Target struct {
	Environment
	// Online is true when an agent serving it is connected.
	Online bool `json:"online"`
}

// TargetList is the reply to OpListTargets.
type TargetList struct {
	// SourceEnvID is the environment the asking agent serves.
	SourceEnvID string   `json:"source_env_id"`
	Targets     []Target `json:"targets"`
}

// ExportRequest is the body of OpExportAPI.
type ExportRequest struct {
	// APIID is the API's id in the source APIM. Required.
	APIID string `json:"api_id"`
}

// Validate checks required fields.
func (r *ExportRequest) Validate() error {
	if r.APIID == "" || len(r.APIID) > 256 {
		return errors.New("export request: api_id is required (at most 256 bytes)")
	}
	return nil
}

// ExportedAPI is a sanitized API definition: no members, no groups, no
// environment-local ids.
type ExportedAPI struct {
	// APIID is the API's id in the source APIM.
	APIID string `json:"api_id"`
	// CrossID identifies the API across environments. Required.
	CrossID string `json:"cross_id"`
	// Name and Version are the API's display name and version.
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// Definition is the sanitized export (Gravitee ExportApiV4 shape).
	Definition json.RawMessage `json:"definition"`
}

// Validate checks required fields.
func (a *ExportedAPI) Validate() error {
	if a.APIID == "" || a.CrossID == "" || a.Name == "" {
		return errors.New("exported api: api_id, cross_id and name are required")
	}
	if len(a.Definition) == 0 {
		return errors.New("exported api: definition is required")
	}
	return nil
}

// PromotionRequest is the body of OpRequestPromotion.
type PromotionRequest struct {
	// API is the exported API. Required.
	API ExportedAPI `json:"api"`
	// SourceEnvID is the environment the API comes from; it must be one the
	// agent serves. Required.
	SourceEnvID string `json:"source_env_id"`
	// TargetEnvID is the environment to promote to. Required.
	TargetEnvID string `json:"target_env_id"`
	// Requester is who asked, as the agent authenticated them. Empty means
	// the installation itself.
	Requester string `json:"requester,omitempty"`
	// Session is the requester's hub-signed session token, so the hub can
	// check the permission again. Empty when the agent has no user session.
	Session string `json:"session,omitempty"`
}

// Validate checks required fields.
func (r *PromotionRequest) Validate() error {
	if err := r.API.Validate(); err != nil {
		return err
	}
	if r.SourceEnvID == "" || r.TargetEnvID == "" {
		return errors.New("promotion request: source_env_id and target_env_id are required")
	}
	return nil
}

// Promotion is a promotion as the hub records it.
type Promotion struct {
	ID          string          `json:"id"`
	OrgID       string          `json:"org_id"`
	SourceEnvID string          `json:"source_env_id"`
	SourceEnv   string          `json:"source_env_name"`
	TargetEnvID string          `json:"target_env_id"`
	TargetEnv   string          `json:"target_env_name"`
	APIID       string          `json:"api_id"`
	CrossID     string          `json:"cross_id"`
	APIName     string          `json:"api_name"`
	APIVersion  string          `json:"api_version,omitempty"`
	Requester   string          `json:"requester"`
	Status      PromotionStatus `json:"status"`
	// TargetAPIID is the API created or updated in the target. Empty until
	// accepted.
	TargetAPIID string `json:"target_api_id,omitempty"`
	// Reason is the reject reason or error detail. Empty when none.
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Definition is the sanitized export; only sent with OpDeliverPromotion.
	Definition json.RawMessage `json:"definition,omitempty"`
}

// Validate checks the fields an agent relies on.
func (p *Promotion) Validate() error {
	if p.ID == "" || p.TargetEnvID == "" || p.Status == "" {
		return errors.New("promotion: id, target_env_id and status are required")
	}
	return nil
}

// PromotionList is the reply to OpListPromotions.
type PromotionList struct {
	Promotions []Promotion `json:"promotions"`
}

// DecisionOutcome is what the target agent did. Append-only.
type DecisionOutcome string

// Decision outcomes.
const (
	OutcomeAccepted DecisionOutcome = "ACCEPTED" // imported into the target APIM
	OutcomeRejected DecisionOutcome = "REJECTED" // admin rejected; APIM untouched
	OutcomeFailed   DecisionOutcome = "ERROR"    // admin accepted but the import failed
)

// Decision is the body of OpReportDecision.
type Decision struct {
	// PromotionID is the promotion decided. Required.
	PromotionID string `json:"promotion_id"`
	// Outcome is required.
	Outcome DecisionOutcome `json:"outcome"`
	// Actor is who decided. Required.
	Actor string `json:"actor"`
	// TargetAPIID is the API created or updated; set when accepted.
	TargetAPIID string `json:"target_api_id,omitempty"`
	// Created is true when the import created a new API, false on update.
	Created bool `json:"created,omitempty"`
	// Reason is the reject reason or the import error. Empty when none.
	Reason string `json:"reason,omitempty"`
	// DecidedAt is when the admin decided, by the agent's clock.
	DecidedAt time.Time `json:"decided_at"`
	// Session is the deciding admin's hub-signed session token, valid at
	// DecidedAt, so the hub can check the permission again. Empty when the
	// agent has no user session.
	Session string `json:"session,omitempty"`
}

// Validate checks required fields.
func (d *Decision) Validate() error {
	if d.PromotionID == "" || d.Actor == "" {
		return errors.New("decision: promotion_id and actor are required")
	}
	switch d.Outcome {
	case OutcomeAccepted:
		if d.TargetAPIID == "" {
			return errors.New("decision: accepted without target_api_id")
		}
	case OutcomeRejected, OutcomeFailed:
	default:
		return errors.New("decision: unknown outcome")
	}
	if len(d.Reason) > 4096 {
		return errors.New("decision: reason longer than 4096 bytes")
	}
	return nil
}

// CancelRequest is the body of OpCancelPromotion.
type CancelRequest struct {
	// PromotionID is the promotion withdrawn. Required.
	PromotionID string `json:"promotion_id"`
}

// Validate checks required fields.
func (c *CancelRequest) Validate() error {
	if c.PromotionID == "" {
		return errors.New("cancel: promotion_id is required")
	}
	return nil
}

// CredentialRotation is the body of OpRotateCredential.
type CredentialRotation struct {
	// Credential is the installation's new credential, a bearer secret
	// that goes in the Authorization header of the agent's link upgrades.
	// Required: 1 to 256 printable ASCII characters, no spaces.
	Credential string `json:"credential"`
}

// Validate checks that the credential can travel in a header.
func (r *CredentialRotation) Validate() error {
	if r.Credential == "" || len(r.Credential) > 256 {
		return errors.New("credential rotation: credential is required (at most 256 bytes)")
	}
	for i := 0; i < len(r.Credential); i++ {
		if c := r.Credential[i]; c <= ' ' || c > '~' {
			return errors.New("credential rotation: credential must be printable ASCII without spaces")
		}
	}
	return nil
}

// LogValue keeps the credential out of logs.
func (r CredentialRotation) LogValue() slog.Value {
	return slog.StringValue("[redacted credential]")
}
