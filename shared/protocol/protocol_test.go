package protocol

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// Golden returns one example envelope per message type, keyed by golden file
// name. Both modules decode the files these produce.
func golden(t *testing.T) map[string]*Envelope {
	t.Helper()
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	mk := func(typ Type, id, replyTo string, p any) *Envelope {
		e, err := New(typ, id, replyTo, p)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	cmd := func(op Op, body any) *Command {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		return &Command{Op: op, Body: b}
	}
	okReply := func(v any) *Reply {
		r, err := OKReply(v)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	promo := Promotion{
		ID: "prm_01", OrgID: "org_1", SourceEnvID: "env_dev", SourceEnv: "Dev", TargetEnvID: "env_prod",
		TargetEnv: "Prod", APIID: "api-1", CrossID: "x-1", APIName: "Petstore", APIVersion: "1.0",
		Requester: "alice", Status: PromotionCreated, CreatedAt: at, UpdatedAt: at,
		Definition: json.RawMessage(`{"api":{"name":"Petstore","crossId":"x-1"}}`),
	}
	return map[string]*Envelope{
		"hello.json": mk(TypeHello, "m1", "", &Hello{AgentVersion: "0.1.0", Hostname: "apim-dev", APIMURL: "http://127.0.0.1:8083/management/v2"}),
		"hello_reply.json": mk(TypeHelloReply, "h1", "m1", &HelloReply{InstallationID: "ins_1", OrgID: "org_1", OrgName: "Acme",
			Environments: []Environment{{ID: "env_dev", Name: "Dev"}}, Status: InstallationAccepted, HubVersion: "0.1.0", HeartbeatSeconds: 10}),
		// A hub that sizes its agents' reconnect spread; hello_reply.json
		// stays the frame of a hub that does not.
		"hello_reply_spread.json": mk(TypeHelloReply, "h1", "m1", &HelloReply{InstallationID: "ins_1", OrgID: "org_1", OrgName: "Acme",
			Environments: []Environment{{ID: "env_dev", Name: "Dev"}}, Status: InstallationAccepted, HubVersion: "0.1.0", HeartbeatSeconds: 10,
			ReconnectSpreadMs: 10000}),
		"health_check.json":       mk(TypeHealthCheck, "h2", "", &HealthCheck{}),
		"health_reply.json":       mk(TypeReply, "m2", "h2", okReply(&Health{Healthy: true})),
		"goodbye.json":            mk(TypeGoodbye, "", "", &Goodbye{Reason: "hub shutting down", Reconnect: true}),
		"command_deliver.json":    mk(TypeCommand, "h3", "", cmd(OpDeliverPromotion, promo)),
		"command_export.json":     mk(TypeCommand, "h4", "", cmd(OpExportAPI, ExportRequest{APIID: "api-1"})),
		"command_decision.json":   mk(TypeCommand, "m3", "", cmd(OpReportDecision, Decision{PromotionID: "prm_01", Outcome: OutcomeAccepted, Actor: "bob", TargetAPIID: "api-9", Created: true, DecidedAt: at})),
		"reply_ok.json":           mk(TypeReply, "m4", "h3", okReply(nil)),
		"reply_error.json":        mk(TypeReply, "m5", "h4", ErrorReply(CodeNotFound, "API api-1 does not exist in this environment")),
		"command_request.json":    mk(TypeCommand, "m6", "", cmd(OpRequestPromotion, PromotionRequest{API: ExportedAPI{APIID: "api-1", CrossID: "x-1", Name: "Petstore", Definition: json.RawMessage(`{}`)}, SourceEnvID: "env_dev", TargetEnvID: "env_prod", Requester: "alice"})),
		"command_cancel.json":     mk(TypeCommand, "h5", "", cmd(OpCancelPromotion, CancelRequest{PromotionID: "prm_01"})),
		"command_targets.json":    mk(TypeCommand, "m7", "", &Command{Op: OpListTargets}),
		"command_update.json":     mk(TypeCommand, "h6", "", cmd(OpPromotionUpdate, Promotion{ID: "prm_01", TargetEnvID: "env_prod", Status: PromotionAccepted, TargetAPIID: "api-9", CreatedAt: at, UpdatedAt: at})),
		"command_promotions.json": mk(TypeCommand, "m8", "", &Command{Op: OpListPromotions}),
		"error.json":              mk(TypeError, "", "", &Error{Code: CodeBadMessage, Message: "envelope: missing type", Ref: "a7"}),
		"settings.json":           mk(TypeSettings, "", "", &Settings{ReconnectSpreadMs: 12500}),
		// An example of the form only; not a credential any hub issued.
		"command_rotate_credential.json": mk(TypeCommand, "h7", "", cmd(OpRotateCredential, CredentialRotation{Credential: "ferry_ic_EXAMPLEnotAcredentialEXAMPLEnotAcrede000000"})),
	}
}

func TestGolden(t *testing.T) {
	for name, env := range golden(t) {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(env, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run go test -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s changed; the protocol is additive. got:\n%s\nwant:\n%s", name, got, want)
			}
			dec, err := Decode(want)
			if err != nil {
				t.Fatalf("Decode(%s): %v", name, err)
			}
			if dec.Type != env.Type {
				t.Errorf("type = %q, want %q", dec.Type, env.Type)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := map[string]string{
		"not json":         `{`,
		"array":            `[]`,
		"no version":       `{"type":"hello","id":"1"}`,
		"no type":          `{"v":1,"id":"1"}`,
		"hello no id":      `{"v":1,"type":"hello"}`,
		"reply no replyTo": `{"v":1,"type":"reply","id":"2"}`,
		"long id":          `{"v":1,"type":"command","id":"` + string(bytes.Repeat([]byte("a"), 129)) + `"}`,
	}
	for name, frame := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode([]byte(frame)); err == nil {
				t.Errorf("Decode(%s) succeeded, want error", frame)
			}
		})
	}
	big := make([]byte, MaxFrameBytes+1)
	if _, err := Decode(big); err == nil {
		t.Error("Decode accepted a frame over MaxFrameBytes")
	}
}

func TestUnknownTypeDecodes(t *testing.T) {
	e, err := Decode([]byte(`{"v":1,"type":"teleport","id":"9"}`))
	if err != nil {
		t.Fatalf("unknown type must decode so the receiver can answer unsupported: %v", err)
	}
	if e.Type.Known() {
		t.Error("teleport reported as known")
	}
}

func TestReplyValidate(t *testing.T) {
	if err := (&Reply{Status: StatusError}).Validate(); err == nil {
		t.Error("error reply without code accepted")
	}
	if err := ErrorReply(CodeConflict, "x").Validate(); err != nil {
		t.Error(err)
	}
	if !CodeUnavailable.Temporary() || CodeConflict.Temporary() {
		t.Error("Temporary flags wrong")
	}
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"v":1,"type":"command","id":"x","payload":{"op":""}}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		e, err := Decode(frame)
		if err != nil {
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("Decode returned an invalid envelope: %v", err)
		}
		var c Command
		_ = e.DecodePayload(&c)
	})
}
