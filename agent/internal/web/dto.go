package web

import (
	"encoding/json"
	"slices"
	"time"

	"ferry.dev/agent/internal/apim"
	"ferry.dev/agent/internal/authn"
	"ferry.dev/agent/internal/task"
	"ferry.dev/agent/internal/taskstore"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// List wraps every collection response.
type List[T any] struct {
	Items []T `json:"items"`
}

// Status is GET /api/v1/status.
type Status struct {
	// Link is the link's state: connecting, connected, draining or closed.
	Link string `json:"link"`
	// HubReachable is true while the link is connected.
	HubReachable   bool   `json:"hubReachable"`
	HubURL         string `json:"hubUrl,omitempty"`
	HubVersion     string `json:"hubVersion,omitempty"`
	InstallationID string `json:"installationId,omitempty"`
	OrgID          string `json:"orgId,omitempty"`
	OrgName        string `json:"orgName,omitempty"`
	// Environments are those this agent serves; empty before the first
	// connection.
	Environments []EnvironmentRef `json:"environments"`
	AgentVersion string           `json:"agentVersion"`
	APIMURL      string           `json:"apimUrl,omitempty"`
}

// EnvironmentRef names an environment.
type EnvironmentRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// API is an API of the local APIM.
type API struct {
	ID                string     `json:"id"`
	Name              string     `json:"name"`
	Version           string     `json:"version"`
	CrossID           string     `json:"crossId,omitempty"`
	DefinitionVersion string     `json:"definitionVersion,omitempty"`
	Description       string     `json:"description,omitempty"`
	UpdatedAt         *time.Time `json:"updatedAt,omitempty"`
}

func apiDTO(a apim.API) API {
	return API{ID: a.ID, Name: a.Name, Version: a.APIVersion, CrossID: a.CrossID, DefinitionVersion: a.DefinitionVersion,
		Description: a.Description, UpdatedAt: timePtr(a.UpdatedAt)}
}

// PromoteRequest is the body of POST /api/v1/apis/{apiId}/_promote.
type PromoteRequest struct {
	// TargetEnv is the target environment's id or name. Required.
	TargetEnv string `json:"targetEnv"`
}

// Target is an environment this agent may promote to.
type Target struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Online bool   `json:"online"`
}

// Targets is GET /api/v1/promotion-targets.
type Targets struct {
	SourceEnvID string   `json:"sourceEnvId"`
	Items       []Target `json:"items"`
}

func targetsDTO(tl protocol.TargetList) Targets {
	out := Targets{SourceEnvID: tl.SourceEnvID, Items: make([]Target, 0, len(tl.Targets))}
	for _, t := range tl.Targets {
		out.Items = append(out.Items, Target{ID: t.ID, Name: t.Name, Online: t.Online})
	}
	return out
}

// Promotion is a promotion from or to this environment.
type Promotion struct {
	ID            string `json:"id"`
	OrgID         string `json:"orgId,omitempty"`
	SourceEnvID   string `json:"sourceEnvId"`
	SourceEnvName string `json:"sourceEnvName,omitempty"`
	TargetEnvID   string `json:"targetEnvId"`
	TargetEnvName string `json:"targetEnvName,omitempty"`
	// Direction is outgoing (from this environment), incoming (to it) or
	// unknown (before the first connection to the hub).
	Direction   string     `json:"direction"`
	APIID       string     `json:"apiId"`
	CrossID     string     `json:"crossId"`
	APIName     string     `json:"apiName"`
	APIVersion  string     `json:"apiVersion,omitempty"`
	Requester   string     `json:"requester,omitempty"`
	Status      string     `json:"status"`
	TargetAPIID string     `json:"targetApiId,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	CreatedAt   *time.Time `json:"createdAt,omitempty"`
	UpdatedAt   *time.Time `json:"updatedAt,omitempty"`
}

func promotionDTO(p taskstore.Promotion, ours []string) Promotion {
	dir := "unknown"
	switch {
	case slices.Contains(ours, p.SourceEnvID):
		dir = "outgoing"
	case slices.Contains(ours, p.TargetEnvID):
		dir = "incoming"
	}
	return Promotion{ID: p.ID, OrgID: p.OrgID, SourceEnvID: p.SourceEnvID, SourceEnvName: p.SourceEnvName,
		TargetEnvID: p.TargetEnvID, TargetEnvName: p.TargetEnvName, Direction: dir, APIID: p.APIID, CrossID: p.CrossID,
		APIName: p.APIName, APIVersion: p.APIVersion, Requester: p.Requester, Status: p.Status, TargetAPIID: p.TargetAPIID,
		Reason: p.Reason, CreatedAt: timePtr(p.CreatedAt), UpdatedAt: timePtr(p.UpdatedAt)}
}

// Task is a promotion delivered to this environment, waiting for (or
// having had) the admin's decision.
type Task struct {
	// ID is the task's id, which is also the promotion's id.
	ID            string     `json:"id"`
	PromotionID   string     `json:"promotionId"`
	State         string     `json:"state"` // PENDING, ACCEPTING, DECIDED, CANCELLED
	APIID         string     `json:"apiId"` // the API's id in the source environment
	APIName       string     `json:"apiName"`
	APIVersion    string     `json:"apiVersion,omitempty"`
	CrossID       string     `json:"crossId"`
	SourceEnvID   string     `json:"sourceEnvId"`
	SourceEnvName string     `json:"sourceEnvName,omitempty"`
	TargetEnvID   string     `json:"targetEnvId"`
	TargetEnvName string     `json:"targetEnvName,omitempty"`
	Requester     string     `json:"requester,omitempty"`
	RequestedAt   *time.Time `json:"requestedAt,omitempty"`
	ReceivedAt    *time.Time `json:"receivedAt,omitempty"`
	Actor         string     `json:"actor,omitempty"`
	DecidedAt     *time.Time `json:"decidedAt,omitempty"`
	// Reason says why the task was cancelled.
	Reason string `json:"reason,omitempty"`
}

func taskDTO(t taskstore.Task) Task {
	return Task{ID: t.ID, PromotionID: t.ID, State: string(t.State), APIID: t.APIID, APIName: t.APIName, APIVersion: t.APIVersion,
		CrossID: t.CrossID, SourceEnvID: t.SourceEnvID, SourceEnvName: t.SourceEnvName, TargetEnvID: t.TargetEnvID,
		TargetEnvName: t.TargetEnvName, Requester: t.Requester, RequestedAt: timePtr(t.RequestedAt), ReceivedAt: timePtr(t.ReceivedAt),
		Actor: t.Actor, DecidedAt: timePtr(t.DecidedAt), Reason: t.Reason}
}

// TaskDetail is GET /api/v1/tasks/{id}.
type TaskDetail struct {
	Task
	// Definition is the sanitized API definition that accepting imports.
	Definition json.RawMessage `json:"definition"`
	// Plan says what accepting would do; set while the task is pending.
	Plan *Plan `json:"plan,omitempty"`
	// Decision is set once the task is decided.
	Decision *Decision `json:"decision,omitempty"`
}

// Plan says whether accepting creates an API or updates an existing one.
type Plan struct {
	// Action is create, update, or unknown when APIM could not be asked.
	Action string `json:"action"`
	// ExistingAPIID and ExistingAPIName name the API an update changes.
	ExistingAPIID   string `json:"existingApiId,omitempty"`
	ExistingAPIName string `json:"existingApiName,omitempty"`
	// MatchedBy is crossId or previous_promotion.
	MatchedBy string `json:"matchedBy,omitempty"`
	// Detail says why Action is unknown.
	Detail string `json:"detail,omitempty"`
	// ETag is also the response's ETag header: send it as If-Match when
	// accepting to refuse (412) an accept of something other than what was
	// reviewed. Empty when Action is unknown.
	ETag string `json:"etag,omitempty"`
}

func detailDTO(d task.Detail) TaskDetail {
	out := TaskDetail{Task: taskDTO(d.Task), Definition: json.RawMessage(d.Task.Definition)}
	if d.Plan != nil {
		out.Plan = &Plan{Action: d.Plan.Action, ExistingAPIID: d.Plan.ExistingAPIID, ExistingAPIName: d.Plan.ExistingAPIName,
			MatchedBy: d.Plan.MatchedBy, Detail: d.Plan.Detail, ETag: d.Plan.ETag}
	}
	if d.Decision != nil {
		dec := decisionDTO(*d.Decision)
		out.Decision = &dec
	}
	return out
}

// Decision is the outcome of an accept or a reject.
type Decision struct {
	PromotionID string `json:"promotionId"`
	// Outcome is ACCEPTED, REJECTED or ERROR (accepted but the import
	// failed; Reason says why).
	Outcome string `json:"outcome"`
	Actor   string `json:"actor"`
	// TargetAPIID is the API created or updated in this environment.
	TargetAPIID string `json:"targetApiId,omitempty"`
	// Created is true when the import created the API, false on update.
	Created   bool       `json:"created"`
	Reason    string     `json:"reason,omitempty"`
	DecidedAt *time.Time `json:"decidedAt,omitempty"`
	// Report is where the report to the hub stands: PENDING, REPORTED or
	// ABANDONED (the hub refused it; see the agent's log).
	Report string `json:"report"`
}

func decisionDTO(d taskstore.Decision) Decision {
	return Decision{PromotionID: d.PromotionID, Outcome: string(d.Outcome), Actor: d.Actor, TargetAPIID: d.TargetAPIID,
		Created: d.Created, Reason: d.Reason, DecidedAt: timePtr(d.DecidedAt), Report: string(d.ReportState)}
}

// RejectRequest is the optional body of POST /api/v1/tasks/{id}/_reject.
type RejectRequest struct {
	Reason string `json:"reason"`
}

// AcceptRequest is the optional body of POST /api/v1/tasks/{id}/_accept; it
// has no fields yet.
type AcceptRequest struct{}

// SignIn is the body of POST /api/v1/session.
type SignIn struct {
	// Token is a session token from the hub. Required.
	Token string `json:"token"`
}

// Session is GET and POST /api/v1/session: who the session's user is and
// what they may do in this agent's environments. It never holds the token.
type Session struct {
	UserID    string     `json:"userId"`
	Name      string     `json:"name,omitempty"`
	OrgID     string     `json:"orgId"`
	OrgAdmin  bool       `json:"orgAdmin"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// Environments are this agent's environments with the user's
	// environment-level permissions there (an organization admin holds
	// them all).
	Environments []EnvironmentGrant `json:"environments"`
}

// EnvironmentGrant is an environment and the permissions a user holds there.
type EnvironmentGrant struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Permissions []string `json:"permissions"`
}

// knownPermissions are the permissions Session lists.
var knownPermissions = []session.Permission{session.EnvAPICreate, session.EnvAPIRead, session.EnvAPIUpdate, session.EnvAPIDelete,
	session.APIDefCreate, session.APIDefRead, session.APIDefUpdate, session.APIDefDelete}

func (h *Handler) sessionDTO(u authn.User) Session {
	out := Session{UserID: u.ID(), Name: u.Claims.Name, OrgID: u.Claims.Org, OrgAdmin: u.Claims.OrgAdmin,
		ExpiresAt: timePtr(u.ExpiresAt()), Environments: []EnvironmentGrant{}}
	for _, e := range h.environments() {
		g := EnvironmentGrant{ID: e.ID, Name: e.Name, Permissions: []string{}}
		for _, p := range knownPermissions {
			if u.Claims.CanEnv(e.ID, p) {
				g.Permissions = append(g.Permissions, string(p))
			}
		}
		out.Environments = append(out.Environments, g)
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
