package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"ferry.dev/agent/internal/apim"
)

// TestAcceptIfMatch is row R24: an accept that carries the ETag of the
// review is refused with 412, and changes nothing, once the target API has
// appeared or changed since; with the current ETag it goes through.
func TestAcceptIfMatch(t *testing.T) {
	s := newServer(t)
	san := s.deliver("prm_1")

	first := s.get("/api/v1/tasks/prm_1")
	detail := decodeBody[TaskDetail](t, first, http.StatusOK)
	if detail.Plan == nil || detail.Plan.Action != "create" || detail.Plan.ETag == "" {
		t.Fatalf("plan = %+v", detail.Plan)
	}
	reviewed := first.header.Get("ETag")
	if reviewed != `"`+detail.Plan.ETag+`"` {
		t.Fatalf("ETag header %q, plan.etag %q", reviewed, detail.Plan.ETag)
	}
	if again := s.get("/api/v1/tasks/prm_1").header.Get("ETag"); again != reviewed {
		t.Fatalf("ETag moved with nothing changed: %s then %s", reviewed, again)
	}

	// Someone creates the API in Prod meanwhile: accepting would now update
	// it, not create the API the admin reviewed.
	existing, err := s.sim.Import(apimEnv, san.JSON)
	if err != nil {
		t.Fatal(err)
	}
	p := wantProblem(t, s.acceptIf("prm_1", reviewed), http.StatusPreconditionFailed, "precondition_failed")
	if !strings.Contains(p.Detail, existing.ID) {
		t.Errorf("412 detail %q does not name the API accepting would now update (%s)", p.Detail, existing.ID)
	}
	if c, u := s.sim.Creates(san.CrossID), s.sim.Updates(san.CrossID); c != 1 || u != 0 {
		t.Errorf("after the refused accept APIM saw %d creates and %d updates, want the test's 1 and 0", c, u)
	}
	if d := decodeBody[TaskDetail](t, s.get("/api/v1/tasks/prm_1"), http.StatusOK); d.State != "PENDING" {
		t.Fatalf("task after the refused accept is %s, want PENDING", d.State)
	}

	// Reviewed again: an update, with another ETag, which the accept holds.
	second := s.get("/api/v1/tasks/prm_1")
	detail = decodeBody[TaskDetail](t, second, http.StatusOK)
	if detail.Plan.Action != "update" || detail.Plan.ExistingAPIID != existing.ID || second.header.Get("ETag") == reviewed {
		t.Fatalf("plan after the API appeared = %+v, ETag %s", detail.Plan, second.header.Get("ETag"))
	}
	d := decodeBody[Decision](t, s.acceptIf("prm_1", second.header.Get("ETag")), http.StatusOK)
	if d.Outcome != "ACCEPTED" || d.TargetAPIID != existing.ID || d.Created {
		t.Fatalf("decision = %+v", d)
	}

	// A second promotion reviewed, then the target API edited in APIM.
	s.deliver("prm_2")
	reviewed = s.get("/api/v1/tasks/prm_2").header.Get("ETag")
	client, err := apim.New(apim.Config{BaseURL: s.apimURL, EnvID: apimEnv, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(san.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	doc["api"].(map[string]any)["description"] = "edited by hand in Prod"
	edited, _ := json.Marshal(doc)
	if _, err := client.ImportUpdate(context.Background(), existing.ID, edited); err != nil {
		t.Fatal(err)
	}
	updates := s.sim.Updates(san.CrossID)
	wantProblem(t, s.acceptIf("prm_2", "W/"+reviewed), http.StatusPreconditionFailed, "precondition_failed")
	if u := s.sim.Updates(san.CrossID); u != updates {
		t.Errorf("the refused accept updated the API (%d updates, want %d)", u, updates)
	}
	// A list holding the current ETag passes.
	current := s.get("/api/v1/tasks/prm_2").header.Get("ETag")
	if current == reviewed {
		t.Fatal("the ETag did not change when the target API did")
	}
	decodeBody[Decision](t, s.acceptIf("prm_2", reviewed+", "+current), http.StatusOK)
}

// TestAcceptIfMatchForms checks the If-Match forms an accept takes.
func TestAcceptIfMatchForms(t *testing.T) {
	s := newServer(t)
	s.deliver("prm_1")
	for _, bad := range []string{"abc", `"abc`, `W/abc`, `"a"b"`} {
		wantProblem(t, s.acceptIf("prm_1", bad), http.StatusBadRequest, "invalid")
	}
	wantProblem(t, s.acceptIf("prm_1", `"`+strings.Repeat("0", 32)+`"`), http.StatusPreconditionFailed, "precondition_failed")
	if d := decodeBody[TaskDetail](t, s.get("/api/v1/tasks/prm_1"), http.StatusOK); d.State != "PENDING" {
		t.Fatalf("task after refused accepts is %s", d.State)
	}
	// "*" is no condition.
	decodeBody[Decision](t, s.acceptIf("prm_1", "*"), http.StatusOK)
}

// acceptIf accepts task id with the If-Match header ifMatch.
func (s *server) acceptIf(id, ifMatch string) response {
	s.t.Helper()
	return s.do(http.MethodPost, "/api/v1/tasks/"+id+"/_accept", "application/json", strings.NewReader("{}"), "If-Match", ifMatch)
}
