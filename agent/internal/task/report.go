package task

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"ferry.dev/agent/internal/taskstore"
	"ferry.dev/shared/protocol"
)

// flush reports every unacknowledged decision whose backoff has passed. It
// stops at the first failure that says the hub cannot be reached.
func (r *Runner) flush(ctx context.Context) {
	defer r.refreshGauges(ctx)
	list, err := r.store.Unreported(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("could not read the decisions to report", "err", err)
		}
		return
	}
	for _, d := range list {
		if ctx.Err() != nil {
			return
		}
		if !r.due(d.PromotionID) {
			continue
		}
		if !r.report(ctx, d) {
			return
		}
	}
}

// report sends one decision to the hub and records the result. It returns
// false when the hub is unreachable, so that the caller stops for now.
func (r *Runner) report(ctx context.Context, d taskstore.Decision) bool {
	cctx, cancel := context.WithTimeout(ctx, r.hubTO)
	defer cancel()
	var p protocol.Promotion
	err := r.hub.Call(cctx, protocol.OpReportDecision, toWireDecision(d), &p)
	if ctx.Err() != nil {
		return false
	}
	code := protocol.CodeOf(err)
	switch {
	case err == nil, code == protocol.CodeDuplicate:
		if p.ID != "" {
			if err := r.store.UpsertPromotions(ctx, fromWire(p)); err != nil {
				r.log.Warn("could not update the local promotions view", "promotion_id", p.ID, "err", err)
			}
		}
		if err := r.store.MarkReported(ctx, d.PromotionID, r.now().UTC()); err != nil {
			r.log.Error("could not record the hub's acknowledgement; the decision will be reported again", "promotion_id", d.PromotionID, "err", err)
			return true
		}
		r.forget(d.PromotionID)
		r.log.Info("decision reported to the hub", "promotion_id", d.PromotionID, "outcome", d.Outcome)
		return true
	case code == protocol.CodeConflict:
		r.abandon(ctx, d, err)
		r.log.Warn("the hub refused this decision because the promotion changed meanwhile (cancelled or decided elsewhere); it will not be reported again. "+
			"Check the promotion at the hub; if the API was imported here, keep or delete it, and request a new promotion if it is still wanted",
			"promotion_id", d.PromotionID, "outcome", d.Outcome, "target_api_id", d.TargetAPIID, "err", err)
		return true
	case code == protocol.CodeInvalid, code == protocol.CodeNotFound, code == protocol.CodeForbidden,
		code == protocol.CodeUnsupported, code == protocol.CodeTooLarge:
		r.abandon(ctx, d, err)
		r.log.Error("the hub refused this decision for good; it will not be reported again. Check the promotion at the hub and this agent's version",
			"promotion_id", d.PromotionID, "outcome", d.Outcome, "target_api_id", d.TargetAPIID, "err", err)
		return true
	}
	// Temporary (or unclassified) failure: retry with backoff.
	r.m.reportRetries.Inc()
	wait := r.backoff(d.PromotionID)
	if serr := r.store.ReportFailed(ctx, d.PromotionID, clip(err.Error(), maxReasonBytes)); serr != nil && ctx.Err() == nil {
		r.log.Error("could not record a failed report", "promotion_id", d.PromotionID, "err", serr)
	}
	unreachable := code == protocol.CodeUnavailable || code == protocol.CodeDisconnected || code == protocol.CodeTimeout
	r.log.Debug("decision not reported yet; will retry", "promotion_id", d.PromotionID, "err", err, "retry_in", wait)
	return !unreachable
}

func (r *Runner) abandon(ctx context.Context, d taskstore.Decision, why error) {
	if err := r.store.MarkAbandoned(ctx, d.PromotionID, clip(why.Error(), maxReasonBytes)); err != nil && ctx.Err() == nil {
		r.log.Error("could not record an abandoned report", "promotion_id", d.PromotionID, "err", err)
	}
	r.forget(d.PromotionID)
}

// due reports whether a decision's backoff has passed.
func (r *Runner) due(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.now().Before(r.nextAt[id])
}

// backoff records a failed report and returns the wait before the next.
func (r *Runner) backoff(id string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.tries[id]
	r.tries[id] = n + 1
	wait := r.interval << min(n, 10)
	if wait > r.maxWait || wait <= 0 {
		wait = r.maxWait
	}
	r.nextAt[id] = r.now().Add(wait)
	return wait
}

func (r *Runner) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.tries, id)
	delete(r.nextAt, id)
}

// resetBackoff makes every pending report due: the link just came back.
func (r *Runner) resetBackoff() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.tries)
	clear(r.nextAt)
}

// reconcile fetches the hub's promotions of this environment, refreshes the
// local view and withdraws pending tasks whose promotion is already terminal.
func (r *Runner) reconcile(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, r.hubTO)
	defer cancel()
	var list protocol.PromotionList
	if err := r.hub.Call(cctx, protocol.OpListPromotions, nil, &list); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("could not reconcile promotions with the hub; will try on the next connection", "err", err)
		}
		return
	}
	view := make([]taskstore.Promotion, 0, len(list.Promotions))
	for _, p := range list.Promotions {
		view = append(view, fromWire(p))
	}
	if err := r.store.UpsertPromotions(ctx, view...); err != nil {
		r.log.Error("could not update the local promotions view", "err", err)
	}
	pending, err := r.store.Tasks(ctx, taskstore.StatePending)
	if err != nil {
		r.log.Error("could not list pending tasks to reconcile", "err", err)
		return
	}
	status := make(map[string]protocol.PromotionStatus, len(list.Promotions))
	for _, p := range list.Promotions {
		status[p.ID] = p.Status
	}
	for _, t := range pending {
		if st, ok := status[t.ID]; ok && st.Terminal() {
			r.withdraw(ctx, t.ID, st)
		}
	}
	r.refreshGauges(ctx)
}

// withdraw cancels a pending task whose promotion is terminal at the hub.
func (r *Runner) withdraw(ctx context.Context, id string, st protocol.PromotionStatus) {
	changed, err := r.store.Cancel(ctx, id, "promotion is "+string(st)+" at the hub", r.now().UTC())
	var se *taskstore.StateError
	switch {
	case errors.As(err, &se), errors.Is(err, taskstore.ErrNotFound):
		// Accepted meanwhile: its decision is reported and the hub decides.
	case err != nil:
		r.log.Error("could not withdraw a task", "task_id", id, "err", err)
	case changed:
		r.log.Info("pending task withdrawn: its promotion is terminal at the hub", "task_id", id, "status", st)
	}
}

// HandleUpdate answers OpPromotionUpdate: it refreshes the local view and, if
// the promotion became terminal while its task is still pending here,
// withdraws the task.
func (r *Runner) HandleUpdate(ctx context.Context, body json.RawMessage) (any, error) {
	var p protocol.Promotion
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, protocol.Errorf(protocol.CodeInvalid, "malformed promotion: "+err.Error())
	}
	if p.ID == "" || p.Status == "" {
		return nil, protocol.Errorf(protocol.CodeInvalid, "promotion: id and status are required")
	}
	if err := r.store.UpsertPromotions(ctx, fromWire(p)); err != nil {
		return nil, r.storeErr("update promotion", err)
	}
	if p.Status.Terminal() {
		if t, err := r.store.Task(ctx, p.ID); err == nil && t.State == taskstore.StatePending {
			r.withdraw(ctx, p.ID, p.Status)
			r.refreshGauges(ctx)
		}
	}
	return nil, nil
}

// Promotions returns this environment's promotions, outgoing and incoming,
// from the local view, newest first. status filters when not empty.
func (r *Runner) Promotions(ctx context.Context, status string) ([]taskstore.Promotion, error) {
	list, err := r.store.Promotions(ctx, taskstore.PromotionFilter{Status: status})
	if err != nil {
		return nil, r.storeErr("list promotions", err)
	}
	return list, nil
}
