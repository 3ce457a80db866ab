package promotion

import (
	"context"
	"fmt"
	"time"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// The audit catch-up.
//
// A promotion changes state first and is audited right after, in a second
// write: the store engines share no transaction (MongoDB needs a replica
// set for one, and the create path is made crash-safe with a lock
// protocol instead). If the hub dies between the two writes, or the audit
// write fails, the change stands without its entry. The catch-up finds
// such promotions by their update time and writes the missing entries,
// saying they were written late, so that every transition is in the trail
// once (catalogue rows E1 and E3). It runs when the hub starts and then
// every catchUpEvery, over promotions changed at least catchUpSettle ago,
// by which time the regular entry has been written or has failed.
const (
	catchUpEvery  = 15 * time.Second
	catchUpSettle = 15 * time.Second
	// catchUpOverlap widens each window backwards, so that a promotion
	// updated just before a window closed is looked at again.
	catchUpOverlap = time.Minute
	// catchUpStartBack is how far before the organizations' newest audit
	// entry the first window starts: entries are written in update order,
	// so a change missing its entry is newer than the last entry written.
	catchUpStartBack = 5 * time.Minute
)

// expectedEvents are the audit events a promotion in p's state has had.
func expectedEvents(p state.Promotion) []string {
	evs := []string{audit.PromotionCreated}
	if !p.DeliveredAt.IsZero() {
		evs = append(evs, audit.PromotionDelivered)
	}
	switch p.Status {
	case protocol.PromotionAccepted:
		evs = append(evs, audit.PromotionAccepted)
	case protocol.PromotionRejected:
		evs = append(evs, audit.PromotionRejected)
	case protocol.PromotionError:
		evs = append(evs, audit.PromotionFailed)
	case protocol.PromotionCancelled:
		evs = append(evs, audit.PromotionCancelled)
	}
	return evs
}

// catchUpStart returns where the first catch-up window starts.
func (s *Service) catchUpStart(ctx context.Context) (time.Time, error) {
	orgs, err := s.store.ListOrgs(ctx)
	if err != nil {
		return time.Time{}, err
	}
	var newest time.Time
	for _, o := range orgs {
		e, err := s.store.LastAudit(ctx, o.ID)
		if err != nil {
			continue // no trail yet, or unreadable: the window below covers it
		}
		if e.Time.After(newest) {
			newest = e.Time
		}
	}
	if newest.IsZero() {
		return time.Time{}, nil // no trail anywhere: look at everything
	}
	return newest.Add(-catchUpStartBack), nil
}

// CatchUp writes the missing audit entries of promotions updated in
// [since, until) and returns how many it wrote. Run calls it periodically.
func (s *Service) CatchUp(ctx context.Context, since, until time.Time) (int, error) {
	written := 0
	for offset := 0; ; {
		page, err := s.store.ListPromotions(ctx, state.PromotionFilter{UpdatedSince: since, Limit: 500, Offset: offset})
		if err != nil {
			return written, err
		}
		for _, p := range page {
			if !p.UpdatedAt.Before(until) {
				continue // too recent: its entry may still be on its way
			}
			n, err := s.catchUpOne(ctx, p)
			written += n
			if err != nil {
				return written, err
			}
		}
		if len(page) < 500 {
			return written, nil
		}
		offset += len(page)
	}
}

func (s *Service) catchUpOne(ctx context.Context, p state.Promotion) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, auditTimeout)
	defer cancel()
	unlock, err := s.lockRepair(ctx, p.ID)
	if err != nil {
		return 0, err
	}
	defer unlock()
	// One read usually tells; a promotion with more entries than a page
	// (refusals, conflicting reports) is asked event by event.
	const page = 100
	entries, err := s.store.ListAudit(ctx, state.AuditFilter{OrgID: p.OrgID, PromotionID: p.ID, Limit: page})
	if err != nil {
		return 0, err
	}
	have := map[string]bool{}
	for _, e := range entries {
		have[e.Event] = true
	}
	for _, ev := range expectedEvents(p) {
		if have[ev] || len(entries) < page {
			continue
		}
		if have[ev], err = s.audited(ctx, p, ev); err != nil {
			return 0, err
		}
	}
	written := 0
	for _, ev := range expectedEvents(p) {
		if have[ev] {
			continue
		}
		actor := "hub"
		if ev == audit.PromotionCreated {
			actor = p.Requester
		}
		detail := fmt.Sprintf("%s %s; recorded late by the hub's audit catch-up: the change was made at %s but its entry was not written then (the hub stopped, or the audit write failed)",
			p.APIName, p.Status, p.UpdatedAt.UTC().Format(time.RFC3339Nano))
		if _, err := s.audit.Record(ctx, audit.Event{OrgID: p.OrgID, Event: ev, Actor: actor, EnvID: p.TargetEnvID, PromotionID: p.ID, Detail: detail}); err != nil {
			return written, err
		}
		written++
		s.m.auditCaughtUp.Inc()
		s.log.Warn("audit entry written late", "promotion_id", p.ID, "event", ev, "changed_at", p.UpdatedAt)
	}
	return written, nil
}

// runCatchUp runs the catch-up until ctx ends.
func (s *Service) runCatchUp(ctx context.Context) {
	var since time.Time
	for {
		start, err := s.catchUpStart(ctx)
		if err == nil {
			since = start
			break
		}
		s.log.Warn("audit catch-up cannot start yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(catchUpEvery):
		}
	}
	for {
		until := s.now().Add(-catchUpSettle)
		if _, err := s.CatchUp(ctx, since, until); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("audit catch-up failed; it runs again shortly", "err", err)
		} else {
			since = until.Add(-catchUpOverlap)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(catchUpEvery):
		}
	}
}
