// Package protocoltest checks a module's view of the wire protocol against
// the golden frames in shared/protocol/testdata. The hub and the agent each
// call it from their own tests, so both modules keep testing against the same
// files while the checking logic lives here once.
//
// Like shared/protocol it imports only the standard library (and "testing").
package protocoltest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"ferry.dev/shared/protocol"
)

// payloadOf returns the struct a message type's payload decodes into.
func payloadOf(t protocol.Type) any {
	switch t {
	case protocol.TypeHello:
		return &protocol.Hello{}
	case protocol.TypeHelloReply:
		return &protocol.HelloReply{}
	case protocol.TypeHealthCheck:
		return &protocol.HealthCheck{}
	case protocol.TypeCommand:
		return &protocol.Command{}
	case protocol.TypeReply:
		return &protocol.Reply{}
	case protocol.TypeGoodbye:
		return &protocol.Goodbye{}
	case protocol.TypeError:
		return &protocol.Error{}
	case protocol.TypeSettings:
		return &protocol.Settings{}
	}
	return nil
}

// bodyOf returns the struct a command's body decodes into; nil means the
// operation takes no body.
func bodyOf(op protocol.Op) (any, bool) {
	switch op {
	case protocol.OpListTargets, protocol.OpListPromotions:
		return nil, true
	case protocol.OpRequestPromotion:
		return &protocol.PromotionRequest{}, true
	case protocol.OpExportAPI:
		return &protocol.ExportRequest{}, true
	case protocol.OpDeliverPromotion, protocol.OpPromotionUpdate:
		return &protocol.Promotion{}, true
	case protocol.OpReportDecision:
		return &protocol.Decision{}, true
	case protocol.OpCancelPromotion:
		return &protocol.CancelRequest{}, true
	case protocol.OpRotateCredential:
		return &protocol.CredentialRotation{}, true
	}
	return nil, false
}

// replyBodies names the golden replies that carry a body, and its type.
var replyBodies = map[string]func() any{
	"health_reply.json": func() any { return &protocol.Health{} },
}

// CheckGolden decodes every golden frame (*.json) in dir the way a link does
// and checks that each payload and body decodes strictly into its struct,
// validates, and re-encodes to the same JSON, so a field the calling module
// does not know fails its test. It runs one subtest per file, named after the
// file, and fails if any message type or operation has no golden file.
func CheckGolden(t *testing.T, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files in %s (%v)", dir, err)
	}
	types := map[protocol.Type]bool{}
	ops := map[protocol.Op]bool{}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			frame, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			env, err := protocol.Decode(frame)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if env.Version != protocol.Version {
				t.Errorf("version = %d, want %d", env.Version, protocol.Version)
			}
			types[env.Type] = true
			p := payloadOf(env.Type)
			if p == nil {
				t.Fatalf("no payload type for message type %q", env.Type)
			}
			if err := env.DecodePayload(p); err != nil {
				t.Fatalf("DecodePayload: %v", err)
			}
			strictRoundTrip(t, "payload", env.Payload, payloadOf(env.Type))
			switch v := p.(type) {
			case *protocol.Command:
				ops[v.Op] = true
				body, known := bodyOf(v.Op)
				if !known {
					t.Fatalf("no body type for operation %q", v.Op)
				}
				if body == nil {
					if len(v.Body) != 0 {
						t.Errorf("%s takes no body, golden has %s", v.Op, v.Body)
					}
					return
				}
				strictRoundTrip(t, string(v.Op)+" body", v.Body, body)
			case *protocol.Reply:
				mk, ok := replyBodies[name]
				if !ok {
					if len(v.Body) != 0 {
						t.Errorf("reply body %s not expected; add %s to replyBodies in protocoltest", v.Body, name)
					}
					return
				}
				strictRoundTrip(t, "reply body", v.Body, mk())
			}
		})
	}
	for _, typ := range []protocol.Type{protocol.TypeHello, protocol.TypeHelloReply, protocol.TypeHealthCheck, protocol.TypeCommand, protocol.TypeReply, protocol.TypeGoodbye, protocol.TypeError, protocol.TypeSettings} {
		if !types[typ] {
			t.Errorf("no golden file for message type %s", typ)
		}
	}
	for _, op := range []protocol.Op{protocol.OpListTargets, protocol.OpRequestPromotion, protocol.OpExportAPI, protocol.OpDeliverPromotion, protocol.OpReportDecision, protocol.OpPromotionUpdate, protocol.OpCancelPromotion, protocol.OpListPromotions, protocol.OpRotateCredential} {
		if !ops[op] {
			t.Errorf("no golden file for operation %s", op)
		}
	}
}

// strictRoundTrip decodes raw into v rejecting unknown fields, validates it
// when it can, and checks that it encodes back to the same JSON.
func strictRoundTrip(t *testing.T, what string, raw json.RawMessage, v any) {
	t.Helper()
	if len(raw) == 0 {
		raw = json.RawMessage(`{}`)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Errorf("%s: strict decode into %T: %v", what, v, err)
		return
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			t.Errorf("%s: %T.Validate: %v", what, v, err)
		}
	}
	again, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s: encode %T: %v", what, v, err)
	}
	var want, got any
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(again, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(want, got) {
		t.Errorf("%s: %T does not re-encode to the golden JSON\ngolden:     %s\nre-encoded: %s", what, v, canonical(want), canonical(got))
	}
}

// canonical renders a decoded JSON value with sorted keys for a failure message.
func canonical(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err.Error()
	}
	return string(b)
}
