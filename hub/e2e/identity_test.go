package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"ferry.dev/hub/internal/testbed"
)

// TestRolesEndToEnd runs the scenario on real processes: a user
// with API_PUBLISHER on Prod but no role on the Dev API cannot promote it;
// the Dev API's OWNER can promote (through the Dev agent, with a hub-signed
// session) but cannot accept in Prod; an organization admin accepts. With
// the hub stopped, the Prod agent still verifies a valid session and
// refuses a forged one.
func TestRolesEndToEnd(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	devID := importAPI(t, w.devAPIM, testbed.Sample(t, "v4-http-proxy-no-ids-plan-with-flows.json"))
	var crossID string
	for _, a := range listAPIs(t, w.devAPIM) {
		if a.ID == devID {
			crossID = a.CrossID
		}
	}
	if crossID == "" {
		t.Fatal("imported API has no crossId")
	}
	h := w.hub
	h.user(t, "demo", "pat", "pat-password-123", map[string]string{"scope": "ENVIRONMENT", "env": "Prod", "role": "API_PUBLISHER"})
	h.user(t, "demo", "olga", "olga-password-123", map[string]string{"scope": "API", "env": "Dev", "crossId": crossID, "role": "OWNER"})
	publisher := h.signIn(t, "demo", "pat", "pat-password-123")
	owner := h.signIn(t, "demo", "olga", "olga-password-123")
	admin := w.prodAgnt.session // an organization admin's
	promote := map[string]string{"apiId": devID, "sourceEnv": "Dev", "targetEnv": "Prod"}

	// The publisher: refused at the hub, and by the Dev agent itself.
	if st := doJSON(t, "POST", h.url+"/api/v1/orgs/demo/promotions", publisher, promote, nil); st != http.StatusForbidden {
		t.Errorf("publisher promotes at the hub: %d, want 403", st)
	}
	if st := doJSON(t, "POST", w.devAgent.url+"/api/v1/apis/"+devID+"/_promote", publisher, map[string]string{"targetEnv": "Prod"}, nil); st != http.StatusForbidden {
		t.Errorf("publisher promotes at the Dev agent: %d, want 403", st)
	}

	// The owner promotes through the Dev agent; the hub records the user.
	if st := doJSON(t, "POST", w.devAgent.url+"/api/v1/apis/"+devID+"/_promote", owner, map[string]string{"targetEnv": "Prod"}, nil); st != http.StatusCreated {
		t.Fatalf("owner promotes at the Dev agent: %d, want 201", st)
	}
	var list struct {
		Items []struct{ ID, Status, Requester string }
	}
	testbed.WaitFor(t, 15*time.Second, "the promotion at the hub", func() bool {
		h.call(t, "GET", "/api/v1/orgs/demo/promotions", nil, &list)
		return len(list.Items) == 1 && list.Items[0].Status == "TO_BE_VALIDATED"
	})
	p := list.Items[0]
	if p.Requester != "user:olga" {
		t.Errorf("requester %q, want user:olga", p.Requester)
	}
	testbed.WaitFor(t, 10*time.Second, "task at Prod", func() bool { return len(pendingTasks(t, w.prodAgnt)) == 1 })
	if st := doJSON(t, "POST", w.prodAgnt.url+"/api/v1/tasks/"+p.ID+"/_accept", owner, map[string]any{}, nil); st != http.StatusForbidden {
		t.Errorf("owner accepts at Prod: %d, want 403", st)
	}

	// With the hub stopped the Prod agent still checks sessions offline.
	h.Stop(t, stopGrace)
	forged := admin[:strings.LastIndex(admin, ".")+1] + "AAAA" + admin[strings.LastIndex(admin, ".")+5:]
	if st := doJSON(t, "GET", w.prodAgnt.url+"/api/v1/tasks", forged, nil, nil); st != http.StatusUnauthorized {
		t.Errorf("forged session at Prod with the hub down: %d, want 401", st)
	}
	if st := doJSON(t, "POST", w.prodAgnt.url+"/api/v1/tasks/"+p.ID+"/_accept", admin, map[string]any{}, nil); st != http.StatusOK {
		t.Fatalf("admin accepts at Prod with the hub down: %d, want 200", st)
	}
	w.hub = startHub(t, h.addr, h.dir)
	w.waitStatus(t, p.ID, "ACCEPTED")

	// The trail names the users, and the publisher's refusal. The
	// decision's entry is written just after its status (and before the
	// agent hears the decision acknowledged), so it may trail the status
	// by a moment.
	want := map[string]bool{"PROMOTION_CREATED by user:olga": false, "PROMOTION_ACCEPTED by user:e2e-admin": false, "ACCESS_DENIED by user:pat": false}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		for _, e := range w.hub.audit(t, "demo") {
			if _, ok := want[e.Event+" by "+e.Actor]; ok {
				want[e.Event+" by "+e.Actor] = true
			}
		}
		all := true
		for _, seen := range want {
			all = all && seen
		}
		if all || time.Now().After(end) {
			break
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("audit trail lacks %s 10 s after the promotion was ACCEPTED", k)
		}
	}
}
