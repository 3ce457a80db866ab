package faultstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// TestDecisionFailClosed is E3 for decisions: a decision whose audit entry
// cannot be written is stored (the agent has already imported the API) but
// not acknowledged, so the agent reports it again. The report that finds
// the entry missing writes it, once, after the first attempt's audit write
// can no longer be under way; until then it is not acknowledged either.
func TestDecisionFailClosed(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Now().UTC()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	st, promos, trail := newWorkflow(t, clock)

	p, err := promos.CreateAtHub(ctx, "o1", "api-1", "Dev", "Prod", admin)
	if err != nil {
		t.Fatal(err)
	}
	d := protocol.Decision{PromotionID: p.ID, Outcome: protocol.OutcomeAccepted, Actor: "user:ada", TargetAPIID: "prod-api-1", Created: true, DecidedAt: now}
	report := func() error {
		_, err := promos.Decide(ctx, "o1", "ins_prod", []string{"env-Prod"}, d, admin)
		return err
	}
	accepted := func() []state.AuditEntry {
		t.Helper()
		es, err := trail.List(ctx, state.AuditFilter{OrgID: "o1", PromotionID: p.ID, Event: audit.PromotionAccepted})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}

	st.FailOnly(nil, "AppendAudit")
	if err := report(); protocol.CodeOf(err) != protocol.CodeUnavailable {
		t.Fatalf("decision while the trail fails: %v, want unavailable (not acknowledged)", err)
	}
	stored, err := st.Promotion(ctx, p.ID)
	if err != nil || stored.Status != protocol.PromotionAccepted {
		t.Fatalf("promotion after the unaudited decision: %s, %v; want ACCEPTED (the import happened)", stored.Status, err)
	}
	// Reported again at once, with the trail back: the first attempt's
	// write might still land, so no second entry is written yet.
	st.Recover()
	if err := report(); protocol.CodeOf(err) != protocol.CodeUnavailable {
		t.Errorf("report again within the settle time: %v, want unavailable", err)
	}
	if es := accepted(); len(es) != 0 {
		t.Fatalf("entries within the settle time: %+v, want none", es)
	}
	// Refused reports add entries to the promotion's trail meanwhile, more
	// than a page of them.
	for i := range 120 {
		if _, err := trail.Record(ctx, audit.Event{OrgID: "o1", Event: audit.DecisionConflict, Actor: "user:mallory", EnvID: "env-Prod", PromotionID: p.ID,
			Detail: fmt.Sprintf("conflicting report %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Later, while the trail fails again: still not acknowledged.
	advance(time.Minute)
	st.FailOnly(nil, "AppendAudit")
	if err := report(); protocol.CodeOf(err) != protocol.CodeUnavailable {
		t.Errorf("report again while the trail fails: %v, want unavailable", err)
	}
	// With the trail back: the entry is written and the decision
	// acknowledged; another report writes nothing more.
	st.Recover()
	for i := range 2 {
		if err := report(); err != nil {
			t.Fatalf("report %d with the trail back: %v", i+1, err)
		}
	}
	es := accepted()
	if len(es) != 1 || es[0].Actor != admin.Name || !strings.Contains(es[0].Detail, "prod-api-1 created") {
		t.Fatalf("accepted entries: %+v, want exactly one, by the caller, naming prod-api-1", es)
	}
	// Another report, later, writes nothing more, though the promotion
	// has more entries than a page before its decision's. The catch-up
	// writes one: the delivery the first report recorded (no agent took
	// this promotion, so the decision was its proof of delivery), whose
	// entry failed with the trail; never a second decision entry.
	advance(time.Hour)
	if err := report(); err != nil {
		t.Fatalf("report after the entry: %v", err)
	}
	if n, err := promos.CatchUp(ctx, time.Time{}, clock().Add(time.Second)); err != nil || n != 1 {
		t.Errorf("catch-up wrote %d entries, %v; want 1 (the delivery's)", n, err)
	}
	if es, err := trail.List(ctx, state.AuditFilter{OrgID: "o1", PromotionID: p.ID, Event: audit.PromotionDelivered}); err != nil || len(es) != 1 {
		t.Errorf("delivery entries: %+v, %v; want one, written by the catch-up", es, err)
	}
	if n, err := promos.CatchUp(ctx, time.Time{}, clock().Add(time.Second)); err != nil || n != 0 {
		t.Errorf("catch-up again wrote %d entries, %v; want none", n, err)
	}
	if es := accepted(); len(es) != 1 {
		t.Fatalf("accepted entries at the end: %d, want 1", len(es))
	}
	if b, _, err := trail.Verify(ctx, "o1"); b != nil || err != nil {
		t.Errorf("audit chain: %+v, %v", b, err)
	}
}

// TestCancelFailClosed is E3 for a cancel: while the trail cannot be
// written the promotion stays as it is and the caller hears unavailable
// (503); with the trail back it is cancelled, with one entry.
func TestCancelFailClosed(t *testing.T) {
	ctx := context.Background()
	st, promos, trail := newWorkflow(t)
	p, err := promos.CreateAtHub(ctx, "o1", "api-1", "Dev", "Prod", admin)
	if err != nil {
		t.Fatal(err)
	}
	st.FailOnly(nil, "AppendAudit")
	if _, err := promos.Cancel(ctx, "o1", p.ID, admin); protocol.CodeOf(err) != protocol.CodeUnavailable {
		t.Fatalf("cancel while the trail fails: %v, want unavailable", err)
	}
	st.Recover()
	if got, err := st.Promotion(ctx, p.ID); err != nil || got.Status != protocol.PromotionCreated {
		t.Fatalf("promotion after the refused cancel: %s, %v; want CREATED", got.Status, err)
	}
	if _, err := promos.Cancel(ctx, "o1", p.ID, admin); err != nil {
		t.Fatalf("cancel with the trail back: %v", err)
	}
	es, err := trail.List(ctx, state.AuditFilter{OrgID: "o1", PromotionID: p.ID, Event: audit.PromotionCancelled})
	if err != nil || len(es) != 1 {
		t.Fatalf("cancel entries: %d, %v; want 1", len(es), err)
	}
}
