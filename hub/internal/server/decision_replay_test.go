package server

import (
	"testing"

	"ferry.dev/hub/internal/audit"
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
