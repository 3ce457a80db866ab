package promotion

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// Run delivers undelivered promotions to their targets and tells sources of
// final statuses, retrying until each succeeds. It returns when ctx ends,
// after its deliveries have finished.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	s.mu.Lock()
	s.runCtx, s.runWG = ctx, &wg
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.runCtx, s.runWG = nil, nil
		s.mu.Unlock()
		wg.Wait()
	}()
	wg.Add(1)
	go func() { defer wg.Done(); s.runCatchUp(ctx) }()
	t := time.NewTicker(s.retry)
	defer t.Stop()
	for {
		s.pass(ctx, &wg)
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-t.C:
			s.gauges(ctx)
		}
	}
}

// deliverSoon starts delivering a new promotion at once when its target is
// online and a delivery slot is free, instead of waiting for the loop's next
// pass; otherwise it wakes the loop.
func (s *Service) deliverSoon(p state.Promotion) {
	s.mu.Lock()
	ctx, wg := s.runCtx, s.runWG
	if ctx != nil && ctx.Err() == nil {
		wg.Add(1) // under mu, so Run cannot be waiting on wg yet
	}
	s.mu.Unlock()
	if ctx == nil || ctx.Err() != nil {
		s.Kick()
		return
	}
	if !s.disp.Online(p.TargetEnvID) || !s.claim(p.ID, p.TargetEnvID) {
		wg.Done()
		s.Kick()
		return
	}
	select {
	case s.inflight <- struct{}{}:
	default:
		s.release(p.ID, p.TargetEnvID)
		wg.Done()
		s.Kick()
		return
	}
	go func() {
		defer func() { <-s.inflight; s.release(p.ID, p.TargetEnvID); wg.Done() }()
		s.deliver(ctx, p)
	}()
}

// claim marks a promotion busy with a call to environment envID's agents;
// false when it already is, or when envID has DeliverySlotsPerEnv calls in flight.
func (s *Service) claim(id, envID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.busy[id]; ok || s.envBusy[envID] >= DeliverySlotsPerEnv {
		return false
	}
	s.busy[id] = struct{}{}
	s.envBusy[envID]++
	return true
}

// release undoes claim. When envID was at its limit, work for it may have
// been passed over, so the loop looks again now rather than at its next
// tick.
func (s *Service) release(id, envID string) {
	s.mu.Lock()
	full := s.envBusy[envID] >= DeliverySlotsPerEnv
	delete(s.busy, id)
	if s.envBusy[envID]--; s.envBusy[envID] <= 0 {
		delete(s.envBusy, envID)
	}
	s.mu.Unlock()
	if full {
		s.Kick()
	}
}

// pass starts a delivery for every undelivered promotion whose target is
// online, and a notification for every decided one whose source was not
// told.
func (s *Service) pass(ctx context.Context, wg *sync.WaitGroup) {
	work := []struct {
		f  state.PromotionFilter
		do func(context.Context, state.Promotion)
		to func(state.Promotion) string
	}{
		{state.PromotionFilter{Undelivered: true, Limit: 500}, s.deliver, func(p state.Promotion) string { return p.TargetEnvID }},
		{state.PromotionFilter{Unnotified: true, Limit: 500}, s.notify, func(p state.Promotion) string { return p.SourceEnvID }},
	}
	for _, w := range work {
		list, err := s.store.ListPromotions(ctx, w.f)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("could not list pending promotion work; retrying", "err", err)
			}
			return
		}
		for _, p := range list {
			env := w.to(p)
			if !s.disp.Online(env) || !s.claim(p.ID, env) {
				continue
			}
			select {
			case s.inflight <- struct{}{}:
			case <-ctx.Done():
				s.release(p.ID, env)
				return
			}
			wg.Add(1)
			go func() {
				defer func() { <-s.inflight; s.release(p.ID, env); wg.Done() }()
				w.do(ctx, p)
			}()
		}
	}
}

// deliver hands the task to the target agent, which acknowledges only after
// storing it, then marks the promotion TO_BE_VALIDATED. The call has the
// link's deadline, which grows with the definition's size: timing a large
// delivery out while it is still on a slow link would send it again behind
// itself, and every later delivery would queue behind both (row A6).
func (s *Service) deliver(ctx context.Context, p state.Promotion) {
	if len(p.Definition) == 0 {
		// From a list, which leaves definitions out: read this one now,
		// so that only deliveries in flight hold a definition in memory.
		full, err := s.store.Promotion(ctx, p.ID)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("could not read a promotion to deliver; will retry", "promotion_id", p.ID, "err", err)
			}
			return
		}
		if full.Status != protocol.PromotionCreated || full.Delivered {
			return // delivered, decided or cancelled since the list was read
		}
		p = full
	}
	msg := s.Wire(ctx, p)
	msg.Definition = p.Definition
	if err := s.disp.CallEnv(ctx, p.TargetEnvID, protocol.OpDeliverPromotion, msg, nil); err != nil {
		if ctx.Err() == nil {
			s.m.deliveryRetries.Inc()
			s.log.Warn("promotion not delivered to the target agent yet; will retry", "promotion_id", p.ID, "err", err)
		}
		return
	}
	now := s.now().UTC()
	up, err := s.store.UpdatePromotion(ctx, p.ID, state.PromotionUpdate{
		From: []protocol.PromotionStatus{protocol.PromotionCreated}, To: protocol.PromotionToBeValidated, Delivered: true, At: now,
	})
	if errors.Is(err, state.ErrConflict) {
		return // decided or cancelled meanwhile: nothing left to do
	}
	if err != nil {
		s.log.Warn("task stored at the target but the hub could not record it; delivery will repeat harmlessly", "promotion_id", p.ID, "err", err)
		return
	}
	s.m.transitions.WithLabelValues(string(protocol.PromotionToBeValidated)).Inc()
	s.m.taskRaised.Observe(now.Sub(p.CreatedAt).Seconds())
	s.record(ctx, audit.Event{OrgID: p.OrgID, Event: audit.PromotionDelivered, Actor: "hub", EnvID: p.TargetEnvID, PromotionID: p.ID,
		Detail: fmt.Sprintf("task raised for %s in the target environment", p.APIName)})
	// Tell the source right away; this is informational, not tracked, and
	// is not made in the target's delivery slot: a source agent that stops
	// reading would hold it for the call's deadline.
	go func() {
		cctx, cancel := context.WithTimeout(ctx, sourceUpdateTimeout)
		defer cancel()
		_ = s.disp.CallEnv(cctx, p.SourceEnvID, protocol.OpPromotionUpdate, s.Wire(cctx, up), nil)
	}()
}

// sourceUpdateTimeout bounds telling a source agent that its promotion was
// delivered (informational; the final status is told by notify, tracked).
const sourceUpdateTimeout = 10 * time.Second

// notify tells the source agent a promotion's final status.
func (s *Service) notify(ctx context.Context, p state.Promotion) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.disp.CallEnv(cctx, p.SourceEnvID, protocol.OpPromotionUpdate, s.Wire(ctx, p), nil); err != nil {
		if ctx.Err() == nil {
			s.log.Debug("source agent not told of the final status yet; will retry", "promotion_id", p.ID, "err", err)
		}
		return
	}
	if _, err := s.store.UpdatePromotion(ctx, p.ID, state.PromotionUpdate{From: []protocol.PromotionStatus{p.Status}, Notified: true, At: s.now().UTC()}); err != nil && ctx.Err() == nil {
		s.log.Debug("could not record that the source was told; it will be told again", "promotion_id", p.ID, "err", err)
	}
}

// gauges refreshes the active and waiting gauges.
func (s *Service) gauges(ctx context.Context) {
	active, err := s.store.ListPromotions(ctx, state.PromotionFilter{Status: undecided, Limit: 1000})
	if err != nil {
		return
	}
	waiting := 0
	for _, p := range active {
		if s.Waiting(p) {
			waiting++
		}
	}
	s.m.active.Set(float64(len(active)))
	s.m.waiting.Set(float64(waiting))
}

// Wire converts a stored promotion to its protocol form, without the
// definition, with environment names filled in.
func (s *Service) Wire(ctx context.Context, p state.Promotion) protocol.Promotion {
	w := protocol.Promotion{
		ID: p.ID, OrgID: p.OrgID, SourceEnvID: p.SourceEnvID, TargetEnvID: p.TargetEnvID, APIID: p.APIID, CrossID: p.CrossID,
		APIName: p.APIName, APIVersion: p.APIVersion, Requester: p.Requester, Status: p.Status, TargetAPIID: p.TargetAPIID,
		Reason: p.Reason, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	w.SourceEnv = s.envName(ctx, p.OrgID, p.SourceEnvID)
	w.TargetEnv = s.envName(ctx, p.OrgID, p.TargetEnvID)
	return w
}

// EnvName returns an environment's name, or its id when it cannot be read.
// Environments are never renamed, so names are cached.
func (s *Service) envName(ctx context.Context, orgID, envID string) string {
	s.mu.Lock()
	n, ok := s.names[envID]
	s.mu.Unlock()
	if ok {
		return n
	}
	e, err := s.store.Environment(ctx, orgID, envID)
	if err != nil {
		return envID
	}
	s.mu.Lock()
	s.names[envID] = e.Name
	s.mu.Unlock()
	return e.Name
}
