package task

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry.dev/agent/internal/definition"
	"ferry.dev/shared/protocol"
)

// rawExport serves one fixed export, as APIM would for an API without a
// crossId.
type rawExport struct {
	APIM
	raw []byte
}

func (e rawExport) Export(context.Context, string) ([]byte, error) { return e.raw, nil }

func TestRequestPromotion(t *testing.T) {
	r := newRig(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "shared", "reference", "gravitee", "samples", membersSample+".json"))
	if err != nil {
		t.Fatal(err)
	}
	r.runner.apim = rawExport{r.client, raw}
	r.hub.handle(protocol.OpListTargets, func(json.RawMessage) (any, error) {
		return protocol.TargetList{SourceEnvID: envProd, Targets: []protocol.Target{
			{Environment: protocol.Environment{ID: envDev, Name: "Dev"}, Online: true},
			{Environment: protocol.Environment{ID: "env_qa", Name: "QA"}},
		}}, nil
	})
	var got protocol.PromotionRequest
	r.hub.handle(protocol.OpRequestPromotion, func(b json.RawMessage) (any, error) {
		if err := json.Unmarshal(b, &got); err != nil {
			return nil, err
		}
		if err := got.Validate(); err != nil {
			return nil, protocol.Errorf(protocol.CodeInvalid, err.Error())
		}
		return protocol.Promotion{ID: "prm_9", SourceEnvID: got.SourceEnvID, TargetEnvID: got.TargetEnvID, CrossID: got.API.CrossID,
			APIName: got.API.Name, Status: protocol.PromotionCreated, CreatedAt: t0, UpdatedAt: t0}, nil
	})

	p, err := r.runner.RequestPromotion(context.Background(), "api-id", "qa", admin)
	if err != nil {
		t.Fatalf("RequestPromotion: %v", err)
	}
	if p.ID != "prm_9" || p.Status != "CREATED" {
		t.Errorf("promotion = %+v", p)
	}
	wantCross := definition.StableCrossID(envProd, "api-id")
	if got.SourceEnvID != envProd || got.TargetEnvID != "env_qa" || got.Requester != actor || got.Session != admin.Token.Reveal() ||
		got.API.CrossID != wantCross || got.API.APIID != "api-id" || got.API.Name != "My Api" {
		t.Errorf("request = %+v (crossId want %s)", got, wantCross)
	}
	for _, key := range []string{`"members"`, `"groups"`, `"primaryOwner"`} {
		if strings.Contains(string(got.API.Definition), key) {
			t.Errorf("the promoted definition contains %s", key)
		}
	}
	// The same API promoted again gets the same crossId.
	again, _ := r.runner.Export(context.Background(), "api-id")
	if again.CrossID != wantCross {
		t.Errorf("second export crossId = %s, want %s", again.CrossID, wantCross)
	}
	if view, _ := r.runner.Promotions(context.Background(), ""); len(view) != 1 || view[0].ID != "prm_9" {
		t.Errorf("view = %+v", view)
	}

	tests := []struct {
		target string
		hub    error
		want   protocol.Code
	}{
		{"Mars", nil, protocol.CodeNotFound},
		{"Prod", nil, protocol.CodeNotFound}, // not a target of itself
		{envDev, protocol.Errorf(protocol.CodeConflict, "this API already has an active promotion to that environment (prm_1); accept, reject or cancel it first"), protocol.CodeConflict},
		{envDev, protocol.Errorf(protocol.CodeUnavailable, "not connected to the hub"), protocol.CodeUnavailable},
	}
	for _, tt := range tests {
		if tt.hub != nil {
			r.hub.handle(protocol.OpRequestPromotion, func(json.RawMessage) (any, error) { return nil, tt.hub })
		}
		_, err := r.runner.RequestPromotion(context.Background(), "api-id", tt.target, admin)
		if c := protocol.CodeOf(err); c != tt.want {
			t.Errorf("target %s, hub %v: code %s (%v), want %s", tt.target, tt.hub, c, err, tt.want)
		}
	}
}

func TestHandleExport(t *testing.T) {
	r := newRig(t)
	src, err := r.sim.Import(apimEnv, sample(t, membersSample).JSON)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(protocol.ExportRequest{APIID: src.ID})
	out, err := r.runner.HandleExport(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	api := out.(protocol.ExportedAPI)
	if err := api.Validate(); err != nil || api.CrossID != src.CrossID {
		t.Errorf("exported = %+v (%v)", api, err)
	}
	if strings.Contains(string(api.Definition), `"members"`) || strings.Contains(string(api.Definition), src.ID) {
		t.Errorf("export carries members or the source id")
	}
	b, _ = json.Marshal(protocol.ExportRequest{APIID: "missing"})
	if _, err := r.runner.HandleExport(context.Background(), b); protocol.CodeOf(err) != protocol.CodeNotFound {
		t.Errorf("export of a missing API = %v, want not_found", err)
	}
}
