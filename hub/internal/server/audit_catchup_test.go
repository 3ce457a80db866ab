package server

import (
	"strings"
	"testing"
	"time"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// TestAuditCatchUp covers rows E1 and E3 for state changes: a promotion
// changed without its audit entry (the hub died between the two writes, or
// the audit write failed) gets the entry from the catch-up, once, and the
// chain still verifies.
func TestAuditCatchUp(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme := h.newOrg("acme")
	p := h.fixture(acme, "Prod", "orders", "", "someone")

	// The change is stored; its entry never is.
	if _, err := h.store.UpdatePromotion(t.Context(), p.ID, state.PromotionUpdate{
		From: undecided, To: protocol.PromotionAccepted, TargetAPIID: "api-9", At: h.clock.now(),
	}); err != nil {
		t.Fatal(err)
	}
	mark := h.auditMark(acme).Audit
	window := func() (int, error) {
		return h.svc.CatchUp(t.Context(), time.Time{}, h.clock.now().Add(time.Second))
	}
	n, err := window()
	if err != nil || n != 1 {
		t.Fatalf("catch-up wrote %d entries, %v; want 1", n, err)
	}
	es := h.audits(acme, mark)
	if len(es) != 1 || es[0].Event != audit.PromotionAccepted || es[0].PromotionID != p.ID || !strings.Contains(es[0].Detail, "recorded late") {
		t.Fatalf("entries after the catch-up: %+v, want one late %s for %s", es, audit.PromotionAccepted, p.ID)
	}
	if n, err := window(); err != nil || n != 0 {
		t.Errorf("second catch-up wrote %d entries, %v; want none", n, err)
	}
	// A change newer than the window's end is left for a later pass.
	q := h.fixture(acme, "QA", "billing", "", "someone")
	if _, err := h.store.UpdatePromotion(t.Context(), q.ID, state.PromotionUpdate{
		From: undecided, To: protocol.PromotionCancelled, At: h.clock.now().Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := window(); err != nil || n != 0 {
		t.Errorf("catch-up of a change after the window wrote %d entries, %v; want none", n, err)
	}
	if b, checked, err := h.trail.Verify(t.Context(), acme.ID); err != nil || b != nil {
		t.Errorf("chain after the catch-up (%d checked): broken %+v, %v", checked, b, err)
	}
}
