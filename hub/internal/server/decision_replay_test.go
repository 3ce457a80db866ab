package server

import (
	"testing"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// TestStaleAndConflictingDecisions is catalogue rows A9, W20 and W21: once
// a promotion is decided, the same decision again changes nothing and
// writes nothing, and a decision with another outcome is refused as a
// conflict, leaves the first result standing and is audited.
func TestStaleAndConflictingDecisions(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme := h.newOrg("acme")
	p := h.fixture(acme, "Prod", "orders", "", "someone")

	if err := h.linkDecide(acme, p, "Prod", protocol.OutcomeAccepted, "", h.clock.now()); err != nil {
		t.Fatalf("first decision: %v", err)
	}
	first, err := h.store.Promotion(t.Context(), p.ID)
	if err != nil || first.Status != protocol.PromotionAccepted {
		t.Fatalf("after the first decision: %+v, %v", first, err)
	}

	mark := h.auditMark(acme).Audit
	if err := h.linkDecide(acme, p, "Prod", protocol.OutcomeAccepted, "", h.clock.now()); err != nil {
		t.Errorf("the same decision again: %v, want it acknowledged as a duplicate", err)
	}
	if es := h.audits(acme, mark); len(es) != 0 {
		t.Errorf("a duplicate decision wrote %d audit entries: %+v", len(es), es)
	}

	for _, outcome := range []protocol.DecisionOutcome{protocol.OutcomeRejected, protocol.OutcomeFailed} {
		mark := h.auditMark(acme).Audit
		err := h.linkDecide(acme, p, "Prod", outcome, "", h.clock.now())
		if protocol.CodeOf(err) != protocol.CodeConflict {
			t.Errorf("a %s decision after ACCEPTED: %v, want conflict", outcome, err)
		}
		es := h.audits(acme, mark)
		if len(es) != 1 || es[0].Event != audit.DecisionConflict || es[0].PromotionID != p.ID {
			t.Errorf("audit after a conflicting %s decision: %+v, want one %s", outcome, es, audit.DecisionConflict)
		}
	}
	got, err := h.store.Promotion(t.Context(), p.ID)
	if err != nil || got.Status != first.Status || got.TargetAPIID != first.TargetAPIID || !got.UpdatedAt.Equal(first.UpdatedAt) {
		t.Errorf("promotion after the replays = %+v, %v; want it as first decided: %+v", got, err, first)
	}
}

// TestDecisionConfirmsALostDelivery is the A6 finding: on a slow link the
// hub's delivery call can time out after the agent stored the task, and
// the admin's decision then arrives for a promotion the hub still holds
// CREATED. The decision records the delivery too, and the trail has its
// PROMOTION_DELIVERED entry before the decision's; a promotion the hub saw
// delivered gets no second delivery entry.
func TestDecisionConfirmsALostDelivery(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme := h.newOrg("acme")

	lost := h.fixture(acme, "Prod", "orders", "", "someone")
	mark := h.auditMark(acme).Audit
	if err := h.linkDecide(acme, lost, "Prod", protocol.OutcomeAccepted, "", h.clock.now()); err != nil {
		t.Fatalf("decision on a promotion whose delivery answer was lost: %v", err)
	}
	got, err := h.store.Promotion(t.Context(), lost.ID)
	if err != nil || got.Status != protocol.PromotionAccepted || !got.Delivered || got.DeliveredAt.IsZero() {
		t.Errorf("after the decision: status %s, delivered %v at %v (%v); want ACCEPTED and delivered", got.Status, got.Delivered, got.DeliveredAt, err)
	}
	es := h.audits(acme, mark)
	if len(es) != 2 || es[0].Event != audit.PromotionDelivered || es[1].Event != audit.PromotionAccepted || es[0].PromotionID != lost.ID {
		t.Errorf("audit after the decision: %+v; want %s then %s", es, audit.PromotionDelivered, audit.PromotionAccepted)
	}
	mark = h.auditMark(acme).Audit
	if err := h.linkDecide(acme, lost, "Prod", protocol.OutcomeAccepted, "", h.clock.now()); err != nil {
		t.Errorf("the same decision again: %v", err)
	}
	if es := h.audits(acme, mark); len(es) != 0 {
		t.Errorf("the decision again wrote %+v", es)
	}

	seen := h.fixture(acme, "Prod", "billing", "", "someone")
	if _, err := h.store.UpdatePromotion(t.Context(), seen.ID, state.PromotionUpdate{
		From: []protocol.PromotionStatus{protocol.PromotionCreated}, To: protocol.PromotionToBeValidated, Delivered: true, At: h.clock.now(),
	}); err != nil {
		t.Fatal(err)
	}
	mark = h.auditMark(acme).Audit
	if err := h.linkDecide(acme, seen, "Prod", protocol.OutcomeRejected, "", h.clock.now()); err != nil {
		t.Fatalf("decision on a delivered promotion: %v", err)
	}
	if es := h.audits(acme, mark); len(es) != 1 || es[0].Event != audit.PromotionRejected {
		t.Errorf("audit after deciding a delivered promotion: %+v; want only %s", es, audit.PromotionRejected)
	}
}
