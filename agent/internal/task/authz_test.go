package task

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry.dev/agent/apimsim"
	"ferry.dev/agent/internal/definition"
	"ferry.dev/agent/internal/taskstore"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// wantForbidden checks that err is a forbidden *protocol.Error with msg.
func wantForbidden(t *testing.T, err error, msg string) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeForbidden || pe.Message != msg {
		t.Errorf("err = %v, want forbidden %q", err, msg)
	}
}

// TestDecidingNeedsCreateAndUpdateOnTheTarget: without ENVIRONMENT_API
// CREATE and UPDATE on the task's target environment an accept or a reject
// is refused before anything is recorded: the task stays pending with no
// actor, APIM receives nothing, the outbox stays empty.
func TestDecidingNeedsCreateAndUpdateOnTheTarget(t *testing.T) {
	r := newRig(t)
	r.hub.ackDecisions()
	r.run()
	san := sample(t, membersSample)
	r.deliver("prm_1", san)
	tests := []struct {
		name string
		u    func() error
		want string
	}{
		{"reader accepts", func() error {
			_, err := r.runner.Accept(context.Background(), "prm_1", user("usr_r", "Rita", map[string][]session.Permission{envProd: {session.EnvAPIRead}}, nil))
			return err
		}, "needs ENVIRONMENT_API[CREATE,UPDATE] on Prod"},
		{"creator without update accepts", func() error {
			_, err := r.runner.Accept(context.Background(), "prm_1", user("usr_c", "Carl", map[string][]session.Permission{envProd: {session.EnvAPICreate}}, nil))
			return err
		}, "needs ENVIRONMENT_API[UPDATE] on Prod"},
		{"dev admin accepts", func() error {
			_, err := r.runner.Accept(context.Background(), "prm_1", user("usr_d", "Dora", map[string][]session.Permission{envDev: {session.EnvAPICreate, session.EnvAPIUpdate}}, nil))
			return err
		}, "needs ENVIRONMENT_API[CREATE,UPDATE] on Prod"},
		{"API owner of the source rejects", func() error {
			_, err := r.runner.Reject(context.Background(), "prm_1", user("usr_o", "Olga", nil,
				map[string][]session.Permission{session.APIKey(envDev, san.CrossID): {session.APIDefUpdate}}), "no")
			return err
		}, "needs ENVIRONMENT_API[CREATE,UPDATE] on Prod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantForbidden(t, tt.u(), tt.want)
		})
	}
	got, err := r.store.Task(context.Background(), "prm_1")
	if err != nil || got.State != taskstore.StatePending || got.Actor != "" || got.Session != "" {
		t.Errorf("task after refusals = %+v, %v; want untouched", got, err)
	}
	if n := len(r.imports.all()); n != 0 || r.sim.Hits(apimsim.OpImportCreate)+r.sim.Hits(apimsim.OpImportUpdate)+r.sim.Hits(apimsim.OpListAPIs) != 0 {
		t.Errorf("APIM was called after refusals (%d imports)", n)
	}
	if ds, _ := r.store.Unreported(context.Background()); len(ds) != 0 {
		t.Errorf("outbox after refusals = %+v", ds)
	}
	if n := len(r.hub.callsOf(protocol.OpReportDecision)); n != 0 {
		t.Errorf("the hub received %d reports after refusals", n)
	}

	// An organization admin holds everything.
	orgAdmin := user("usr_root", "Root", nil, nil)
	orgAdmin.Claims.OrgAdmin = true
	if _, err := r.runner.Accept(context.Background(), "prm_1", orgAdmin); err != nil {
		t.Fatalf("org admin accept: %v", err)
	}
}

// TestPromotingNeedsUpdateOnTheSourceAPI: the permission is checked on the
// crossId the export yields, before the hub is asked anything.
func TestPromotingNeedsUpdateOnTheSourceAPI(t *testing.T) {
	r := newRig(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "shared", "reference", "gravitee", "samples", membersSample+".json"))
	if err != nil {
		t.Fatal(err)
	}
	r.runner.apim = rawExport{r.client, raw}
	cross := definition.StableCrossID(envProd, "api-id")
	r.hub.handle(protocol.OpListTargets, func(json.RawMessage) (any, error) {
		return protocol.TargetList{SourceEnvID: envProd, Targets: []protocol.Target{{Environment: protocol.Environment{ID: envDev, Name: "Dev"}, Online: true}}}, nil
	})
	var got protocol.PromotionRequest
	r.hub.handle(protocol.OpRequestPromotion, func(b json.RawMessage) (any, error) {
		_ = json.Unmarshal(b, &got)
		return protocol.Promotion{ID: "prm_9", SourceEnvID: got.SourceEnvID, TargetEnvID: got.TargetEnvID, CrossID: got.API.CrossID,
			Status: protocol.PromotionCreated, CreatedAt: t0, UpdatedAt: t0}, nil
	})
	refused := map[string]map[string][]session.Permission{
		"environment reader":   {session.APIKey("x", "y"): nil},
		"owner of another API": {session.APIKey(envProd, "other"): {session.APIDefUpdate}},
		"owner in another env": {session.APIKey(envDev, cross): {session.APIDefUpdate}},
		"API reader":           {session.APIKey(envProd, cross): {session.APIDefRead}},
	}
	for name, api := range refused {
		t.Run(name, func(t *testing.T) {
			u := user("usr_x", "Xavier", map[string][]session.Permission{envProd: {session.EnvAPIRead, session.EnvAPICreate}}, api)
			_, err := r.runner.RequestPromotion(context.Background(), "api-id", "Dev", u)
			wantForbidden(t, err, "needs API_DEFINITION[UPDATE] on API My Api (crossId "+cross+") in Prod")
		})
	}
	if n := len(r.hub.callsOf(protocol.OpRequestPromotion)) + len(r.hub.callsOf(protocol.OpListTargets)); n != 0 {
		t.Errorf("the hub was asked %d times for refused requests", n)
	}
	if view, _ := r.runner.Promotions(context.Background(), ""); len(view) != 0 {
		t.Errorf("refused requests changed the view: %+v", view)
	}

	// The API's owner (an API role, no environment role) may promote it.
	owner := user("usr_o", "Olga", nil, map[string][]session.Permission{session.APIKey(envProd, cross): {session.APIDefUpdate}})
	if _, err := r.runner.RequestPromotion(context.Background(), "api-id", "Dev", owner); err != nil {
		t.Fatalf("owner's request: %v", err)
	}
	if got.Requester != "Olga (usr_o)" || got.Session != "tok-usr_o" {
		t.Errorf("request carries requester %q and session %q", got.Requester, got.Session)
	}
	if strings.Contains(r.logs.String(), "tok-usr_o") {
		t.Error("the session token reached the log")
	}
}
