package server

import (
	"encoding/json"
	"testing"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/link"
	"ferry.dev/shared/protocol"
)

// TestLinkViolations checks that a decision on another environment's
// promotion, and a request from an environment the installation does not
// serve, are refused as not_found, audited, change nothing and count as
// link policy violations; a decision on a promotion that does not exist is
// a plain not_found.
func TestLinkViolations(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme := h.newOrg("acme")
	p := h.fixture(acme, "Prod", "x", "", "someone")

	before := h.snapshot(acme)
	err := h.linkDecide(acme, p, "QA", protocol.OutcomeAccepted, "", h.clock.now())
	if protocol.CodeOf(err) != protocol.CodeNotFound || !link.IsViolation(err) {
		t.Errorf("decision from QA on a Prod promotion: %v (violation %v), want a not_found violation", err, link.IsViolation(err))
	}
	if got := h.promotionStatus(p.ID); got != p.Status {
		t.Errorf("status %s, want %s unchanged", got, p.Status)
	}
	if es := h.audits(acme, before.Audit); len(es) != 1 || es[0].Event != audit.AccessDenied {
		t.Errorf("audit after the refusal: %+v, want one %s", es, audit.AccessDenied)
	}

	p.ID = "prm_nosuch"
	if err := h.linkDecide(acme, p, "Prod", protocol.OutcomeAccepted, "", h.clock.now()); protocol.CodeOf(err) != protocol.CodeNotFound || link.IsViolation(err) {
		t.Errorf("decision on a missing promotion: %v, want a plain not_found", err)
	}

	body, _ := json.Marshal(protocol.PromotionRequest{
		API:         protocol.ExportedAPI{APIID: "api-y", CrossID: "y", Name: "API y", Definition: json.RawMessage(`{}`)},
		SourceEnvID: acme.Env["Dev"].ID, TargetEnvID: acme.Env["Prod"].ID, Requester: "someone",
	})
	_, err = h.ops.request(t.Context(), acme.peer("QA"), body)
	if protocol.CodeOf(err) != protocol.CodeNotFound || !link.IsViolation(err) {
		t.Errorf("request from QA's installation for Dev: %v, want a not_found violation", err)
	}
}
