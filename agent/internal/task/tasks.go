package task

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"ferry.dev/agent/internal/apim"
	"ferry.dev/agent/internal/authn"
	"ferry.dev/agent/internal/definition"
	"ferry.dev/agent/internal/taskstore"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// Actions a Plan may announce.
const (
	ActionCreate  = "create"
	ActionUpdate  = "update"
	ActionUnknown = "unknown" // APIM could not be asked; Plan.Detail says why
)

// How an existing target API was found.
const (
	MatchedByCrossID   = "crossId"
	MatchedByPrevious  = "previous_promotion"
	maxReasonBytes     = 1024
	maxActorBytes      = 256
	maxDefinitionBytes = protocol.MaxFrameBytes - 64<<10 // room for the envelope
)

// Plan says what accepting a pending task would do in the local APIM.
type Plan struct {
	// Action is ActionCreate, ActionUpdate or ActionUnknown.
	Action string
	// ExistingAPIID and ExistingAPIName name the API an update would
	// change. Empty for a create.
	ExistingAPIID   string
	ExistingAPIName string
	// MatchedBy says how the existing API was found: MatchedByCrossID or
	// MatchedByPrevious. Empty for a create.
	MatchedBy string
	// Detail says why Action is unknown. Empty otherwise.
	Detail string
	// ETag names what the admin reviews: the task's definition and the
	// existing API as APIM has it now (or its absence). Accepting with
	// If-Match set to it fails if either changed since. Empty when Action
	// is unknown.
	ETag string
}

// Detail is a task with what the admin needs to decide on it.
type Detail struct {
	Task taskstore.Task
	// Plan is set for a pending task.
	Plan *Plan
	// Decision is set for a decided task.
	Decision *taskstore.Decision
}

// HandleDeliver answers OpDeliverPromotion: it stores the promotion as a
// pending task and only then answers ok. A duplicate delivery answers ok and
// stores nothing.
func (r *Runner) HandleDeliver(ctx context.Context, body json.RawMessage) (any, error) {
	var p protocol.Promotion
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, protocol.Errorf(protocol.CodeInvalid, "malformed promotion: "+err.Error())
	}
	if err := p.Validate(); err != nil {
		return nil, protocol.Errorf(protocol.CodeInvalid, err.Error())
	}
	if len(p.Definition) == 0 {
		return nil, protocol.Errorf(protocol.CodeInvalid, "promotion "+p.ID+" carries no definition")
	}
	if h := r.hub.Hello(); h != nil && !slices.ContainsFunc(h.Environments, func(e protocol.Environment) bool { return e.ID == p.TargetEnvID }) {
		return nil, protocol.Errorf(protocol.CodeNotFound, "this agent does not serve environment "+p.TargetEnvID)
	}
	// The source sanitized the definition already; doing it again here
	// guarantees that no member, group or source id reaches this APIM
	// whatever the source sent.
	san, err := definition.Sanitize(p.Definition, p.CrossID)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeInvalid, "promotion "+p.ID+": "+err.Error())
	}
	if p.CrossID != "" && san.CrossID != p.CrossID {
		return nil, protocol.Errorf(protocol.CodeInvalid, fmt.Sprintf("promotion %s: the definition's crossId %s is not the promotion's %s", p.ID, san.CrossID, p.CrossID))
	}
	t := taskstore.Task{
		ID: p.ID, OrgID: p.OrgID, SourceEnvID: p.SourceEnvID, SourceEnvName: p.SourceEnv,
		TargetEnvID: p.TargetEnvID, TargetEnvName: p.TargetEnv, APIID: p.APIID, CrossID: san.CrossID,
		APIName: p.APIName, APIVersion: p.APIVersion, Requester: p.Requester, Definition: san.JSON,
		RequestedAt: p.CreatedAt, ReceivedAt: r.now().UTC(),
	}
	if t.APIName == "" {
		t.APIName = san.Name
	}
	if t.APIVersion == "" {
		t.APIVersion = san.Version
	}
	added, err := r.store.AddTask(ctx, t)
	if err != nil {
		return nil, r.storeErr("add task", err)
	}
	if err := r.store.UpsertPromotions(ctx, fromWire(p)); err != nil {
		r.log.Warn("could not update the local promotions view", "promotion_id", p.ID, "err", err)
	}
	r.refreshGauges(ctx)
	if added {
		r.log.Info("promotion task raised", "task_id", p.ID, "api", t.APIName, "cross_id", t.CrossID, "from", p.SourceEnv, "requester", p.Requester)
	} else {
		r.log.Debug("duplicate promotion delivery ignored", "task_id", p.ID)
	}
	return nil, nil
}

// Tasks returns the pending tasks, oldest first, without definitions.
func (r *Runner) Tasks(ctx context.Context) ([]taskstore.Task, error) {
	list, err := r.store.Tasks(ctx, taskstore.StatePending)
	if err != nil {
		return nil, r.storeErr("list tasks", err)
	}
	return list, nil
}

// Task returns a task with its definition, plus, while it is pending, what
// accepting it would do, or, once decided, the decision.
func (r *Runner) Task(ctx context.Context, id string) (Detail, error) {
	t, err := r.store.Task(ctx, id)
	if err != nil {
		return Detail{}, r.storeErr("read task", err)
	}
	d := Detail{Task: t}
	switch t.State {
	case taskstore.StatePending:
		p := r.plan(ctx, t, false)
		d.Plan = &p
	case taskstore.StateDecided:
		dec, err := r.store.Decision(ctx, id)
		if err != nil {
			return Detail{}, r.storeErr("read decision", err)
		}
		d.Decision = &dec
	}
	return d, nil
}

// plan looks up the API that accepting t would update. fresh makes the
// crossId lookup ask APIM instead of the client's index.
func (r *Runner) plan(ctx context.Context, t taskstore.Task, fresh bool) Plan {
	p, _ := r.planErr(ctx, t, fresh)
	return p
}

// planErr is plan, also returning the lookup error behind ActionUnknown.
// The existing API is read with a GET whichever way it was found (a GET
// and a listing of the same API may differ, e.g. in deployment state), so
// that the ETag does not depend on the path.
func (r *Runner) planErr(ctx context.Context, t taskstore.Task, fresh bool) (Plan, error) {
	api, how, found, err := r.target(ctx, t.CrossID, fresh)
	if err == nil && found {
		api, err = r.apim.GetAPI(ctx, api.ID)
	}
	switch {
	case err != nil:
		return Plan{Action: ActionUnknown, Detail: "could not look the API up in APIM: " + clip(err.Error(), maxReasonBytes)}, err
	case found:
		return Plan{Action: ActionUpdate, ExistingAPIID: api.ID, ExistingAPIName: api.Name, MatchedBy: how, ETag: etag(t, api)}, nil
	}
	return Plan{Action: ActionCreate, ETag: etag(t, apim.API{})}, nil
}

// etag is a Plan's ETag: a digest of the task's id and definition and of
// the existing API's object (its JSON re-encoded with sorted keys, so that
// a listing and a GET of the same API agree), or of nothing for a create.
func etag(t taskstore.Task, existing apim.API) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s;", len(t.ID), t.ID)
	def := sha256.Sum256(t.Definition)
	h.Write(def[:])
	if existing.ID != "" {
		fmt.Fprintf(h, "%d:%s;", len(existing.ID), existing.ID)
		var v any
		dec := json.NewDecoder(bytes.NewReader(existing.Raw))
		dec.UseNumber()
		if dec.Decode(&v) == nil {
			canon, _ := json.Marshal(v)
			h.Write(canon)
		} else {
			h.Write(existing.Raw)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// checkPrecondition refuses an accept of t when the admin reviewed another
// version of it (row R24): ifMatch lists the ETags the caller holds
// (unquoted); empty means no condition. It asks APIM itself, not the
// client's index, so an API created or changed a moment ago counts.
func (r *Runner) checkPrecondition(ctx context.Context, t taskstore.Task, ifMatch []string) error {
	if len(ifMatch) == 0 {
		return nil
	}
	p, err := r.planErr(ctx, t, true)
	switch {
	case errors.Is(err, apim.ErrAmbiguousCrossID):
		return protocol.Errorf(protocol.CodeConflict, "cannot accept: "+p.Detail+"; give all but one of those APIs another crossId in APIM, then review the task again")
	case err != nil:
		return protocol.Errorf(protocol.CodeUnavailable, "cannot check that the target API is unchanged since the review (If-Match): "+p.Detail+"; retry shortly")
	}
	if !slices.Contains(ifMatch, p.ETag) {
		what := "no API with its crossId exists any more, so accepting would create one"
		if p.Action == ActionUpdate {
			what = "accepting would now update " + p.ExistingAPIName + " (" + p.ExistingAPIID + ") as it is now"
		}
		return protocol.Errorf(protocol.CodePreconditionFailed, "the target API changed since this task was reviewed ("+what+"); look at the changes again and decide on what is there now")
	}
	return nil
}

// target finds the API that a promotion of crossID updates: the API with
// that crossId, or else the API that an earlier accepted promotion of the
// same crossId created or updated here, if it still exists. fresh makes
// the crossId lookup ask APIM instead of the client's index.
func (r *Runner) target(ctx context.Context, crossID string, fresh bool) (apim.API, string, bool, error) {
	find := r.apim.FindByCrossID
	if fresh {
		find = r.apim.FindByCrossIDFresh
	}
	api, found, err := find(ctx, crossID)
	if err != nil {
		return apim.API{}, "", false, err
	}
	if found {
		return api, MatchedByCrossID, true, nil
	}
	prev, ok, err := r.store.LastAcceptedAPI(ctx, crossID)
	if err != nil {
		return apim.API{}, "", false, &localError{err}
	}
	if !ok {
		return apim.API{}, "", false, nil
	}
	api, err = r.apim.GetAPI(ctx, prev)
	switch {
	case apim.IsNotFound(err):
		return apim.API{}, "", false, nil
	case err != nil:
		return apim.API{}, "", false, err
	}
	return api, MatchedByPrevious, true, nil
}

// Accept records u's acceptance of a pending task, imports its definition
// into APIM and stores the decision, which Run then reports with u's
// session. u needs ENVIRONMENT_API CREATE and UPDATE on the task's target
// environment; without them Accept answers forbidden and changes nothing.
// It returns the decision; an import failure is a decision with outcome
// ERROR, not an error. If the work is interrupted (shutdown) the task stays
// ACCEPTING and is resumed on the next start.
func (r *Runner) Accept(ctx context.Context, id string, u authn.User) (taskstore.Decision, error) {
	return r.AcceptMatching(ctx, id, u, nil)
}

// AcceptMatching is Accept on condition that what accepting does is what
// the admin reviewed: ifMatch lists the Plan ETags they hold (unquoted),
// and if none is current the task stays pending and the answer is
// precondition_failed. Empty ifMatch is no condition.
func (r *Runner) AcceptMatching(ctx context.Context, id string, u authn.User, ifMatch []string) (taskstore.Decision, error) {
	actor := u.Actor()
	if actor == "" || len(actor) > maxActorBytes {
		return taskstore.Decision{}, protocol.Errorf(protocol.CodeInvalid, "actor is required (at most 256 bytes)")
	}
	t, err := r.store.Task(ctx, id)
	if err != nil {
		return taskstore.Decision{}, r.storeErr("read task", err)
	}
	if err := u.RequireEnv(t.TargetEnvID, t.TargetEnvName, decidePermissions...); err != nil {
		return taskstore.Decision{}, err
	}
	if t.State == taskstore.StatePending {
		if err := r.checkPrecondition(ctx, t, ifMatch); err != nil {
			return taskstore.Decision{}, err
		}
	}
	if !r.claim(id) {
		return taskstore.Decision{}, protocol.Errorf(protocol.CodeInvalidState, "task "+id+" is being accepted")
	}
	defer r.release(id)
	t, err = r.store.BeginAccept(ctx, id, actor, u.Token, r.now().UTC())
	if err != nil {
		return taskstore.Decision{}, r.storeErr("begin accept", err)
	}
	r.refreshGauges(ctx)
	r.log.Info("task accepted; importing", "task_id", id, "actor", actor, "cross_id", t.CrossID)
	actx, cancel := r.applyContext(ctx)
	defer cancel()
	d, err := r.apply(actx, t)
	if err != nil {
		if actx.Err() != nil {
			return taskstore.Decision{}, protocol.Errorf(protocol.CodeUnavailable, "the import was interrupted; the agent resumes it automatically (now if it is running, else on its next start)")
		}
		return taskstore.Decision{}, r.storeErr("accept", err)
	}
	return d, nil
}

// decidePermissions are what accepting or rejecting a task needs on its
// target environment.
var decidePermissions = []session.Permission{session.EnvAPICreate, session.EnvAPIUpdate}

// apply runs steps 2–4 of an accept for a task that is ACCEPTING. It returns
// an error only when the task stays ACCEPTING (context ended, store failed);
// APIM failures become an ERROR decision.
func (r *Runner) apply(ctx context.Context, t taskstore.Task) (taskstore.Decision, error) {
	res, created, ierr := r.importDef(ctx, t)
	if ctx.Err() != nil {
		return taskstore.Decision{}, ctx.Err()
	}
	var local *localError
	if errors.As(ierr, &local) {
		return taskstore.Decision{}, local.err
	}
	d := taskstore.Decision{PromotionID: t.ID, CrossID: t.CrossID, Actor: t.Actor, DecidedAt: t.DecidedAt, Session: t.Session}
	if d.DecidedAt.IsZero() {
		d.DecidedAt = r.now().UTC()
	}
	if ierr == nil && res.ID == "" {
		ierr = errors.New("APIM answered the import without the API's id")
	}
	if ierr != nil {
		d.Outcome = taskstore.OutcomeFailed
		d.Reason = clip("import into APIM failed: "+ierr.Error(), maxReasonBytes)
	} else {
		d.Outcome, d.TargetAPIID, d.Created = taskstore.OutcomeAccepted, res.ID, created
	}
	if err := r.store.Decide(ctx, d, taskstore.StateAccepting, r.now().UTC()); err != nil {
		return taskstore.Decision{}, err
	}
	switch {
	case ierr != nil:
		r.m.imports.WithLabelValues("failed").Inc()
		r.log.Warn("import failed; the promotion ends in ERROR", "task_id", t.ID, "cross_id", t.CrossID, "err", ierr)
	case created:
		r.m.imports.WithLabelValues("created").Inc()
		r.log.Info("API created from promotion", "task_id", t.ID, "api_id", res.ID, "cross_id", t.CrossID)
	default:
		r.m.imports.WithLabelValues("updated").Inc()
		r.log.Info("API updated from promotion", "task_id", t.ID, "api_id", res.ID, "cross_id", t.CrossID)
	}
	r.m.decisions.WithLabelValues(outcomeLabel(d.Outcome)).Inc()
	r.refreshGauges(ctx)
	r.kick()
	d.ReportState = taskstore.ReportPending
	return d, nil
}

// localError marks a failure of the agent's own store during an import: the
// task stays ACCEPTING and is resumed, instead of ending in ERROR.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }

// importDef updates the target API of t if there is one and creates it
// otherwise. created is true when this task created the API, including when
// an earlier, interrupted attempt did.
//
// A resumed accept whose create may have gone through looks the crossId up
// in APIM itself, not in the client's index.
func (r *Runner) importDef(ctx context.Context, t taskstore.Task) (apim.API, bool, error) {
	api, how, found, err := r.target(ctx, t.CrossID, t.CreateAttempted)
	if err != nil {
		return apim.API{}, false, err
	}
	if found && t.CreateAttempted && how == MatchedByCrossID {
		// A resumed accept whose create went through finds the API by
		// crossId: this task created it, from this very definition, so
		// there is nothing left to apply.
		r.log.Info("resumed accept: the API this task created is in APIM; not importing it again", "task_id", t.ID, "api_id", api.ID)
		return api, true, nil
	}
	if found {
		res, err := r.apim.ImportUpdate(ctx, api.ID, t.Definition)
		if err == nil && res.ID == "" {
			res.ID = api.ID
		}
		return res, false, err
	}
	if err := r.store.MarkCreateAttempt(ctx, t.ID, r.now().UTC()); err != nil {
		return apim.API{}, false, &localError{err}
	}
	res, err := r.apim.ImportCreate(ctx, t.Definition)
	switch {
	case errors.Is(err, apim.ErrOutcomeUnknown) && ctx.Err() == nil:
		// The create may have been applied: look before deciding.
		if a, ok, ferr := r.apim.FindByCrossIDFresh(ctx, t.CrossID); ferr == nil && ok {
			r.log.Warn("APIM's answer to the create was lost but the API exists; continuing", "task_id", t.ID, "api_id", a.ID)
			return a, true, nil
		}
	case apim.IsConflict(err) && ctx.Err() == nil:
		// APIM refused the create because the API exists: someone made it
		// after the index was built. Update it instead.
		if a, ok, ferr := r.apim.FindByCrossIDFresh(ctx, t.CrossID); ferr == nil && ok {
			r.log.Info("the API appeared in APIM since the last lookup; updating it instead of creating", "task_id", t.ID, "api_id", a.ID)
			res, err := r.apim.ImportUpdate(ctx, a.ID, t.Definition)
			if err == nil && res.ID == "" {
				res.ID = a.ID
			}
			return res, false, err
		}
	}
	return res, true, err
}

// Reject records u's rejection of a pending task. APIM is not touched. u
// needs ENVIRONMENT_API CREATE and UPDATE on the task's target environment;
// without them Reject answers forbidden and changes nothing. The decision is
// stored, then reported by Run with u's session.
func (r *Runner) Reject(ctx context.Context, id string, u authn.User, reason string) (taskstore.Decision, error) {
	actor := u.Actor()
	if actor == "" || len(actor) > maxActorBytes {
		return taskstore.Decision{}, protocol.Errorf(protocol.CodeInvalid, "actor is required (at most 256 bytes)")
	}
	if len(reason) > maxReasonBytes || !utf8.ValidString(reason) {
		return taskstore.Decision{}, protocol.Errorf(protocol.CodeInvalid, "reason must be UTF-8 text of at most 1024 bytes")
	}
	t, err := r.store.Task(ctx, id)
	if err != nil {
		return taskstore.Decision{}, r.storeErr("read task", err)
	}
	if err := u.RequireEnv(t.TargetEnvID, t.TargetEnvName, decidePermissions...); err != nil {
		return taskstore.Decision{}, err
	}
	if t.State != taskstore.StatePending {
		return taskstore.Decision{}, r.storeErr("reject", &taskstore.StateError{ID: id, State: t.State})
	}
	now := r.now().UTC()
	d := taskstore.Decision{PromotionID: id, CrossID: t.CrossID, Outcome: taskstore.OutcomeRejected, Actor: actor, Reason: reason,
		DecidedAt: now, Session: u.Token}
	if err := r.store.Decide(ctx, d, taskstore.StatePending, now); err != nil {
		return taskstore.Decision{}, r.storeErr("reject", err)
	}
	r.log.Info("task rejected", "task_id", id, "actor", actor)
	r.m.decisions.WithLabelValues(outcomeLabel(d.Outcome)).Inc()
	r.refreshGauges(ctx)
	r.kick()
	d.ReportState = taskstore.ReportPending
	return d, nil
}

// HandleCancel answers OpCancelPromotion: a pending task is withdrawn. A task
// the admin already accepted or decided gives conflict; an unknown or already
// cancelled one answers ok.
func (r *Runner) HandleCancel(ctx context.Context, body json.RawMessage) (any, error) {
	var c protocol.CancelRequest
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, protocol.Errorf(protocol.CodeInvalid, "malformed cancel: "+err.Error())
	}
	if err := c.Validate(); err != nil {
		return nil, protocol.Errorf(protocol.CodeInvalid, err.Error())
	}
	changed, err := r.store.Cancel(ctx, c.PromotionID, "cancelled at the hub", r.now().UTC())
	var se *taskstore.StateError
	switch {
	case errors.Is(err, taskstore.ErrNotFound):
		r.log.Debug("cancel for a promotion with no task here", "promotion_id", c.PromotionID)
		return nil, nil
	case errors.As(err, &se):
		return nil, protocol.Errorf(protocol.CodeConflict, fmt.Sprintf("task %s is %s; its decision will be reported", se.ID, stateWord(se.State)))
	case err != nil:
		return nil, r.storeErr("cancel", err)
	}
	if changed {
		r.log.Info("promotion task withdrawn by the hub", "task_id", c.PromotionID)
		r.refreshGauges(ctx)
	}
	return nil, nil
}

func outcomeLabel(o taskstore.Outcome) string {
	switch o {
	case taskstore.OutcomeAccepted:
		return "accepted"
	case taskstore.OutcomeRejected:
		return "rejected"
	}
	return "error"
}

// clip shortens s to at most n bytes without splitting a rune.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
