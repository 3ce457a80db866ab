package task

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"ferry.dev/agent/apimsim"
	"ferry.dev/agent/internal/apim"
	"ferry.dev/agent/internal/taskstore"
	"ferry.dev/shared/protocol"
)

func TestDeliveryStoresThenAcksAndDuplicatesRaiseNothing(t *testing.T) {
	r := newRig(t)
	san := sample(t, membersSample)
	r.deliver("prm_1", san)
	// The reply came after the store: the task is there, durably.
	r.open(nil)
	got, err := r.runner.Task(context.Background(), "prm_1")
	if err != nil {
		t.Fatalf("task after restart: %v", err)
	}
	if got.Task.State != taskstore.StatePending || got.Task.CrossID != san.CrossID || string(got.Task.Definition) != string(san.JSON) {
		t.Errorf("stored task = %+v", got.Task)
	}
	if got.Plan == nil || got.Plan.Action != ActionCreate {
		t.Errorf("plan = %+v, want create", got.Plan)
	}
	r.deliver("prm_1", san)
	list, err := r.runner.Tasks(context.Background())
	if err != nil || len(list) != 1 {
		t.Fatalf("pending tasks after a duplicate delivery = %d (%v), want 1", len(list), err)
	}
	if v := testutil.ToFloat64(r.runner.m.tasksPending); v != 1 {
		t.Errorf("tasks_pending = %v, want 1", v)
	}
}

// failingStore fails chosen operations, standing for a broken disk or a
// crash at that point.
type failingStore struct {
	Store
	failAdd    bool
	failDecide int // Decide calls still to fail
}

var errDisk = errors.New("disk I/O error")

func (f *failingStore) AddTask(ctx context.Context, t taskstore.Task) (bool, error) {
	if f.failAdd {
		return false, errDisk
	}
	return f.Store.AddTask(ctx, t)
}

func (f *failingStore) Decide(ctx context.Context, d taskstore.Decision, from taskstore.State, at time.Time) error {
	if f.failDecide > 0 {
		f.failDecide--
		return errDisk
	}
	return f.Store.Decide(ctx, d, from, at)
}

func TestDeliveryNotAcknowledgedWhenNotStored(t *testing.T) {
	r := newRig(t)
	r.open(func(s Store) Store { return &failingStore{Store: s, failAdd: true} })
	san := sample(t, membersSample)
	b, _ := json.Marshal(protocol.Promotion{ID: "prm_1", TargetEnvID: envProd, CrossID: san.CrossID, Status: protocol.PromotionToBeValidated, Definition: san.JSON})
	_, err := r.runner.HandleDeliver(context.Background(), b)
	if code := protocol.CodeOf(err); code != protocol.CodeUnavailable {
		t.Errorf("delivery with a failing store = %v, want an unavailable error (no ok reply)", err)
	}
}

func TestDeliveryRefusesBadPromotions(t *testing.T) {
	r := newRig(t)
	san := sample(t, membersSample)
	tests := []struct {
		name string
		p    protocol.Promotion
	}{
		{"no definition", protocol.Promotion{ID: "p", TargetEnvID: envProd, Status: "TO_BE_VALIDATED", CrossID: san.CrossID}},
		{"other environment", protocol.Promotion{ID: "p", TargetEnvID: "env_qa", Status: "TO_BE_VALIDATED", CrossID: san.CrossID, Definition: san.JSON}},
		{"crossId mismatch", protocol.Promotion{ID: "p", TargetEnvID: envProd, Status: "TO_BE_VALIDATED", CrossID: "other", Definition: san.JSON}},
		{"not a V4 definition", protocol.Promotion{ID: "p", TargetEnvID: envProd, Status: "TO_BE_VALIDATED", CrossID: "x", Definition: json.RawMessage(`{"gravitee":"2.0.0"}`)}},
		{"no id", protocol.Promotion{TargetEnvID: envProd, Status: "TO_BE_VALIDATED", Definition: san.JSON}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := json.Marshal(tt.p)
			_, err := r.runner.HandleDeliver(context.Background(), b)
			if c := protocol.CodeOf(err); c != protocol.CodeInvalid && c != protocol.CodeNotFound {
				t.Errorf("error = %v, want invalid or not_found", err)
			}
		})
	}
	if list, _ := r.runner.Tasks(context.Background()); len(list) != 0 {
		t.Errorf("bad deliveries raised %d tasks", len(list))
	}
}

func TestAcceptCreatesWithCrossIDAndWithoutMembersOrGroups(t *testing.T) {
	r := newRig(t)
	r.hub.ackDecisions()
	r.run()
	san := sample(t, membersSample)
	r.deliver("prm_1", san)

	d, err := r.runner.Accept(context.Background(), "prm_1", admin)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	if d.Outcome != taskstore.OutcomeAccepted || !d.Created || d.TargetAPIID == "" || d.Actor != actor {
		t.Fatalf("decision = %+v", d)
	}
	apis := r.sim.APIs(apimEnv)
	if len(apis) != 1 || apis[0].CrossID != san.CrossID || apis[0].ID != d.TargetAPIID {
		t.Fatalf("APIM holds %+v, want one API with crossId %s and id %s", apis, san.CrossID, d.TargetAPIID)
	}
	bodies := r.imports.all()
	if len(bodies) != 1 {
		t.Fatalf("APIM received %d imports, want 1", len(bodies))
	}
	var doc struct {
		API     map[string]any `json:"api"`
		Members any            `json:"members"`
	}
	if err := json.Unmarshal(bodies[0], &doc); err != nil {
		t.Fatal(err)
	}
	if doc.API["crossId"] != san.CrossID {
		t.Errorf("imported crossId = %v, want %s", doc.API["crossId"], san.CrossID)
	}
	for _, key := range []string{`"members"`, `"groups"`, `"primaryOwner"`, `"api-id"`} {
		if strings.Contains(string(bodies[0]), key) {
			t.Errorf("the import sent to APIM contains %s", key)
		}
	}
	// The task left the pending list at once; the decision reaches the hub.
	if list, _ := r.runner.Tasks(context.Background()); len(list) != 0 {
		t.Errorf("pending tasks after accept: %d", len(list))
	}
	eventually(t, "the decision to be acknowledged", func() bool {
		dec, err := r.store.Decision(context.Background(), "prm_1")
		return err == nil && dec.ReportState == taskstore.ReportDone
	})
	var sent protocol.Decision
	_ = json.Unmarshal(r.hub.callsOf(protocol.OpReportDecision)[0], &sent)
	if sent.PromotionID != "prm_1" || sent.Outcome != protocol.OutcomeAccepted || !sent.Created || sent.TargetAPIID != d.TargetAPIID || sent.Actor != actor {
		t.Errorf("reported decision = %+v", sent)
	}
	if sent.Session != admin.Token.Reveal() {
		t.Errorf("reported decision carries session %q, want the accepting user's", sent.Session)
	}
	if v := testutil.ToFloat64(r.runner.m.imports.WithLabelValues("created")); v != 1 {
		t.Errorf("imports_total{outcome=created} = %v, want 1", v)
	}
	// The hub's reply refreshed the local view.
	view, _ := r.runner.Promotions(context.Background(), "ACCEPTED")
	if len(view) != 1 || view[0].TargetAPIID != d.TargetAPIID {
		t.Errorf("promotions view = %+v", view)
	}
	// Accepting again is refused (invalid_state), not a second import.
	if _, err := r.runner.Accept(context.Background(), "prm_1", admin); protocol.CodeOf(err) != protocol.CodeInvalidState {
		t.Errorf("second accept error = %v, want invalid_state", err)
	}
	if _, err := r.runner.Accept(context.Background(), "prm_nope", admin); protocol.CodeOf(err) != protocol.CodeNotFound {
		t.Errorf("accept of an unknown task error = %v, want not_found", err)
	}
}

func TestSecondPromotionOfSameCrossIDUpdates(t *testing.T) {
	r := newRig(t)
	san := sample(t, membersSample)
	r.deliver("prm_1", san)
	first, err := r.runner.Accept(context.Background(), "prm_1", admin)
	if err != nil || !first.Created {
		t.Fatalf("first accept = %+v, %v", first, err)
	}
	r.deliver("prm_2", san)
	detail, err := r.runner.Task(context.Background(), "prm_2")
	if err != nil {
		t.Fatal(err)
	}
	if detail.Plan == nil || detail.Plan.Action != ActionUpdate || detail.Plan.ExistingAPIID != first.TargetAPIID || detail.Plan.MatchedBy != MatchedByCrossID {
		t.Errorf("plan = %+v, want update of %s by crossId", detail.Plan, first.TargetAPIID)
	}
	second, err := r.runner.Accept(context.Background(), "prm_2", admin)
	if err != nil {
		t.Fatal(err)
	}
	if second.Outcome != taskstore.OutcomeAccepted || second.Created || second.TargetAPIID != first.TargetAPIID {
		t.Errorf("second decision = %+v, want an update of %s", second, first.TargetAPIID)
	}
	if c, u := r.sim.Creates(san.CrossID), r.sim.Updates(san.CrossID); c != 1 || u != 1 {
		t.Errorf("APIM creates = %d, updates = %d; want 1 and 1", c, u)
	}
	if n := len(r.sim.APIs(apimEnv)); n != 1 {
		t.Errorf("APIM holds %d APIs, want 1", n)
	}
}

// lostCrossID stands for a target API whose crossId someone changed: the
// search by crossId finds nothing.
type lostCrossID struct{ APIM }

func (lostCrossID) FindByCrossID(context.Context, string) (apim.API, bool, error) {
	return apim.API{}, false, nil
}

func TestEarlierPromotionFindsTargetWhenCrossIDSearchFails(t *testing.T) {
	r := newRig(t)
	san := sample(t, membersSample)
	r.deliver("prm_1", san)
	first, err := r.runner.Accept(context.Background(), "prm_1", admin)
	if err != nil {
		t.Fatal(err)
	}
	r.runner.apim = lostCrossID{r.client}
	r.deliver("prm_2", san)
	detail, _ := r.runner.Task(context.Background(), "prm_2")
	if detail.Plan == nil || detail.Plan.MatchedBy != MatchedByPrevious || detail.Plan.ExistingAPIID != first.TargetAPIID {
		t.Errorf("plan = %+v, want update of %s found by the earlier promotion", detail.Plan, first.TargetAPIID)
	}
	second, err := r.runner.Accept(context.Background(), "prm_2", admin)
	if err != nil || second.Created || second.TargetAPIID != first.TargetAPIID {
		t.Errorf("second decision = %+v, %v; want an update of %s", second, err, first.TargetAPIID)
	}
	if c := r.sim.Creates(san.CrossID); c != 1 {
		t.Errorf("creates = %d, want 1", c)
	}
}

func TestRejectLeavesAPIMUnchanged(t *testing.T) {
	r := newRig(t)
	r.hub.ackDecisions()
	r.run()
	r.deliver("prm_1", sample(t, membersSample))
	d, err := r.runner.Reject(context.Background(), "prm_1", admin, "not this week")
	if err != nil {
		t.Fatal(err)
	}
	if d.Outcome != taskstore.OutcomeRejected || d.Reason != "not this week" {
		t.Errorf("decision = %+v", d)
	}
	if h := r.sim.Hits(apimsim.OpImportCreate) + r.sim.Hits(apimsim.OpImportUpdate); h != 0 || len(r.sim.APIs(apimEnv)) != 0 {
		t.Errorf("reject touched APIM: %d imports, %d APIs", h, len(r.sim.APIs(apimEnv)))
	}
	if list, _ := r.runner.Tasks(context.Background()); len(list) != 0 {
		t.Errorf("pending tasks after reject: %d", len(list))
	}
	eventually(t, "the rejection to be reported", func() bool { return len(r.hub.callsOf(protocol.OpReportDecision)) > 0 })
	for _, op := range []func() error{
		func() error { _, err := r.runner.Reject(context.Background(), "prm_1", admin, ""); return err },
		func() error { _, err := r.runner.Accept(context.Background(), "prm_1", admin); return err },
	} {
		if err := op(); protocol.CodeOf(err) != protocol.CodeInvalidState {
			t.Errorf("deciding a rejected task again = %v, want invalid_state", err)
		}
	}
	if _, err := r.runner.Reject(context.Background(), "nope", admin, ""); protocol.CodeOf(err) != protocol.CodeNotFound {
		t.Errorf("reject unknown = %v, want not_found", err)
	}
}

func TestCrashBetweenImportAndRecordResumesWithoutDuplicate(t *testing.T) {
	r := newRig(t)
	san := sample(t, membersSample)
	r.deliver("prm_1", san)
	// The import succeeds, then the agent "dies" before the decision is
	// recorded: Decide fails, the task stays ACCEPTING.
	r.open(func(s Store) Store { return &failingStore{Store: s, failDecide: 1} })
	if _, err := r.runner.Accept(context.Background(), "prm_1", admin); err == nil {
		t.Fatal("accept succeeded although the decision could not be stored")
	}
	if got, _ := r.store.Task(context.Background(), "prm_1"); got.State != taskstore.StateAccepting {
		t.Fatalf("task state after the crash = %s, want ACCEPTING", got.State)
	}
	if n := len(r.sim.APIs(apimEnv)); n != 1 {
		t.Fatalf("APIM holds %d APIs after the import, want 1", n)
	}

	// Restart: a new store handle and a new Runner resume the accept.
	r.open(nil)
	r.hub.ackDecisions()
	r.run()
	eventually(t, "the accept to be resumed and decided", func() bool {
		d, err := r.store.Decision(context.Background(), "prm_1")
		return err == nil && d.ReportState == taskstore.ReportDone
	})
	d, _ := r.store.Decision(context.Background(), "prm_1")
	apis := r.sim.APIs(apimEnv)
	if len(apis) != 1 || r.sim.Creates(san.CrossID) != 1 || r.sim.Updates(san.CrossID) != 0 {
		t.Fatalf("APIM holds %d APIs (%d creates, %d updates), want exactly 1 create and nothing else", len(apis), r.sim.Creates(san.CrossID), r.sim.Updates(san.CrossID))
	}
	if d.Outcome != taskstore.OutcomeAccepted || d.TargetAPIID != apis[0].ID || !d.Created || d.Actor != actor {
		t.Errorf("resumed decision = %+v, want ACCEPTED, created, %s", d, apis[0].ID)
	}
	var sent protocol.Decision
	_ = json.Unmarshal(r.hub.callsOf(protocol.OpReportDecision)[0], &sent)
	if sent.Session != admin.Token.Reveal() || sent.Actor != actor {
		t.Errorf("the resumed accept reported actor %q and session %q, want the accepting user's", sent.Actor, sent.Session)
	}
}

func TestLostCreateResponseFindsTheAPI(t *testing.T) {
	r := newRig(t)
	san := sample(t, membersSample)
	r.deliver("prm_1", san)
	r.sim.DropResponseAfterApply(1)
	d, err := r.runner.Accept(context.Background(), "prm_1", admin)
	if err != nil {
		t.Fatal(err)
	}
	if d.Outcome != taskstore.OutcomeAccepted || !d.Created || len(r.sim.APIs(apimEnv)) != 1 {
		t.Errorf("decision = %+v with %d APIs; want ACCEPTED, created, one API", d, len(r.sim.APIs(apimEnv)))
	}
}

func TestAPIMFailureEndsInError(t *testing.T) {
	r := newRig(t)
	r.hub.ackDecisions()
	r.run()
	r.deliver("prm_1", sample(t, membersSample))
	r.sim.FailNext(100, http.StatusServiceUnavailable)
	d, err := r.runner.Accept(context.Background(), "prm_1", admin)
	if err != nil {
		t.Fatal(err)
	}
	if d.Outcome != taskstore.OutcomeFailed || !strings.Contains(d.Reason, "503") || d.TargetAPIID != "" {
		t.Errorf("decision = %+v, want ERROR with the 503 in the reason", d)
	}
	eventually(t, "the failure to be reported", func() bool { return len(r.hub.callsOf(protocol.OpReportDecision)) > 0 })
	var sent protocol.Decision
	_ = json.Unmarshal(r.hub.callsOf(protocol.OpReportDecision)[0], &sent)
	if sent.Outcome != protocol.OutcomeFailed || sent.Reason == "" {
		t.Errorf("reported = %+v, want ERROR with a reason", sent)
	}
	if v := testutil.ToFloat64(r.runner.m.imports.WithLabelValues("failed")); v != 1 {
		t.Errorf("imports_total{outcome=failed} = %v", v)
	}
}

func TestReportRetriedUntilAcknowledged(t *testing.T) {
	r := newRig(t)
	fails := 3
	r.hub.handle(protocol.OpReportDecision, func(json.RawMessage) (any, error) {
		if fails > 0 {
			fails--
			return nil, protocol.Errorf(protocol.CodeUnavailable, "hub store down")
		}
		return protocol.Promotion{ID: "prm_1", TargetEnvID: envProd, Status: protocol.PromotionRejected}, nil
	})
	r.deliver("prm_1", sample(t, membersSample))
	if _, err := r.runner.Reject(context.Background(), "prm_1", admin, ""); err != nil {
		t.Fatal(err)
	}
	r.run()
	eventually(t, "the report to be acknowledged", func() bool {
		d, err := r.store.Decision(context.Background(), "prm_1")
		return err == nil && d.ReportState == taskstore.ReportDone
	})
	if n := len(r.hub.callsOf(protocol.OpReportDecision)); n != 4 {
		t.Errorf("reports sent = %d, want 4 (3 failures, then the ack)", n)
	}
	if v := testutil.ToFloat64(r.runner.m.reportRetries); v != 3 {
		t.Errorf("report retries = %v, want 3", v)
	}
	eventually(t, "reports pending to drop to 0", func() bool { return testutil.ToFloat64(r.runner.m.reportsPending) == 0 })
}

func TestReportSurvivesRestartAndHubOutage(t *testing.T) {
	r := newRig(t)
	r.hub.handle(protocol.OpReportDecision, func(json.RawMessage) (any, error) {
		return nil, protocol.Errorf(protocol.CodeUnavailable, "not connected to the hub")
	})
	r.deliver("prm_1", sample(t, membersSample))
	if _, err := r.runner.Reject(context.Background(), "prm_1", admin, ""); err != nil {
		t.Fatal(err)
	}
	r.open(nil) // restart while the hub is still down
	r.hub.ackDecisions()
	r.run()
	r.runner.Connected(hello)
	eventually(t, "the report after restart", func() bool {
		d, err := r.store.Decision(context.Background(), "prm_1")
		return err == nil && d.ReportState == taskstore.ReportDone
	})
}

func TestReportConflictStopsRetrying(t *testing.T) {
	r := newRig(t)
	r.hub.handle(protocol.OpReportDecision, func(json.RawMessage) (any, error) {
		return nil, protocol.Errorf(protocol.CodeConflict, "promotion is CANCELLED")
	})
	r.deliver("prm_1", sample(t, membersSample))
	if _, err := r.runner.Reject(context.Background(), "prm_1", admin, ""); err != nil {
		t.Fatal(err)
	}
	r.run()
	eventually(t, "the report to be abandoned", func() bool {
		d, err := r.store.Decision(context.Background(), "prm_1")
		return err == nil && d.ReportState == taskstore.ReportAbandoned
	})
	time.Sleep(50 * time.Millisecond) // several report intervals
	if n := len(r.hub.callsOf(protocol.OpReportDecision)); n != 1 {
		t.Errorf("reports sent = %d, want 1", n)
	}
	if !strings.Contains(r.logs.String(), "level=WARN") || !strings.Contains(r.logs.String(), "promotion_id=prm_1") {
		t.Errorf("no warning about the refused decision:\n%s", r.logs.String())
	}
}

func TestCancel(t *testing.T) {
	r := newRig(t)
	san := sample(t, membersSample)
	r.deliver("prm_1", san)
	r.deliver("prm_2", san)
	cancel := func(id string) error {
		b, _ := json.Marshal(protocol.CancelRequest{PromotionID: id})
		_, err := r.runner.HandleCancel(context.Background(), b)
		return err
	}
	if err := cancel("prm_1"); err != nil {
		t.Fatalf("cancel pending: %v", err)
	}
	if err := cancel("prm_1"); err != nil {
		t.Errorf("cancel again: %v", err)
	}
	if err := cancel("prm_unknown"); err != nil {
		t.Errorf("cancel unknown: %v", err)
	}
	list, _ := r.runner.Tasks(context.Background())
	if len(list) != 1 || list[0].ID != "prm_2" {
		t.Errorf("pending after cancel = %+v", list)
	}
	if _, err := r.runner.Accept(context.Background(), "prm_1", admin); protocol.CodeOf(err) != protocol.CodeInvalidState {
		t.Errorf("accept cancelled = %v, want invalid_state", err)
	}
	if _, err := r.runner.Accept(context.Background(), "prm_2", admin); err != nil {
		t.Fatal(err)
	}
	if err := cancel("prm_2"); protocol.CodeOf(err) != protocol.CodeConflict {
		t.Errorf("cancel decided = %v, want conflict", err)
	}
}

func TestReconcileOnConnect(t *testing.T) {
	r := newRig(t)
	san := sample(t, membersSample)
	r.deliver("prm_1", san)
	r.deliver("prm_2", san)
	r.hub.handle(protocol.OpListPromotions, func(json.RawMessage) (any, error) {
		return protocol.PromotionList{Promotions: []protocol.Promotion{
			{ID: "prm_1", TargetEnvID: envProd, Status: protocol.PromotionCancelled, CreatedAt: t0, UpdatedAt: t0.Add(time.Minute)},
			{ID: "prm_2", TargetEnvID: envProd, Status: protocol.PromotionToBeValidated, CreatedAt: t0, UpdatedAt: t0},
			{ID: "prm_out", SourceEnvID: envProd, TargetEnvID: envDev, Status: protocol.PromotionAccepted, CreatedAt: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Hour)},
		}}, nil
	})
	r.run()
	r.runner.Connected(hello)
	eventually(t, "the cancelled promotion's task to be withdrawn", func() bool {
		list, _ := r.runner.Tasks(context.Background())
		return len(list) == 1 && list[0].ID == "prm_2"
	})
	view, _ := r.runner.Promotions(context.Background(), "")
	var ids []string
	for _, p := range view {
		ids = append(ids, p.ID+":"+p.Status)
	}
	if got := strings.Join(ids, ","); got != "prm_out:ACCEPTED,prm_2:TO_BE_VALIDATED,prm_1:CANCELLED" {
		t.Errorf("promotions view newest first = %s", got)
	}
}

func TestPromotionUpdatePush(t *testing.T) {
	r := newRig(t)
	r.deliver("prm_1", sample(t, membersSample))
	b, _ := json.Marshal(protocol.Promotion{ID: "prm_1", TargetEnvID: envProd, Status: protocol.PromotionCancelled, CreatedAt: t0, UpdatedAt: t0.Add(time.Minute)})
	if _, err := r.runner.HandleUpdate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if list, _ := r.runner.Tasks(context.Background()); len(list) != 0 {
		t.Errorf("a terminal update left the task pending")
	}
	view, _ := r.runner.Promotions(context.Background(), "CANCELLED")
	if len(view) != 1 {
		t.Errorf("view = %+v", view)
	}
}

// TestAPIAppearedSinceTheIndexUpdates covers the one thing the client's
// crossId index can miss: an API created in APIM by someone else after the
// last listing. APIM refuses the create (the stand-in by crossId, APIM by
// context path), and the accept updates that API instead of failing or
// creating a second one.
func TestAPIAppearedSinceTheIndexUpdates(t *testing.T) {
	r := newRig(t)
	san := sample(t, membersSample)
	r.deliver("prm_1", san)
	// The plan lists APIM and indexes it: no API with this crossId yet.
	if d, err := r.runner.Task(context.Background(), "prm_1"); err != nil || d.Plan == nil || d.Plan.Action != ActionCreate {
		t.Fatalf("plan = %+v, %v; want a create", d.Plan, err)
	}
	behind, err := r.sim.Import(apimEnv, san.JSON)
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.runner.Accept(context.Background(), "prm_1", admin)
	if err != nil {
		t.Fatal(err)
	}
	if d.Outcome != taskstore.OutcomeAccepted || d.Created || d.TargetAPIID != behind.ID {
		t.Errorf("decision = %+v, want an update of %s", d, behind.ID)
	}
	if c, u, n := r.sim.Creates(san.CrossID), r.sim.Updates(san.CrossID), len(r.sim.APIs(apimEnv)); c != 1 || u != 1 || n != 1 {
		t.Errorf("APIM creates = %d, updates = %d, APIs = %d; want 1, 1, 1", c, u, n)
	}
}
