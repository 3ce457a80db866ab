package link_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"ferry.dev/hub/internal/agenttest"
	"ferry.dev/hub/internal/link"
	"ferry.dev/shared/protocol"
)

// sendCommand sends a command with a chosen id and waits for the hub's
// reply to it.
func sendCommand(t *testing.T, c *agenttest.Conn, id string, op protocol.Op) *protocol.Reply {
	t.Helper()
	env, err := protocol.New(protocol.TypeCommand, id, "", &protocol.Command{Op: op, Body: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	return sendAndWait(t, c, env)
}

func sendAndWait(t *testing.T, c *agenttest.Conn, env *protocol.Envelope) *protocol.Reply {
	t.Helper()
	isReply := func(e *protocol.Envelope) bool { return e.Type == protocol.TypeReply && e.ReplyTo == env.ID }
	before := 0
	for _, e := range c.Received() {
		if isReply(e) {
			before++
		}
	}
	if err := c.Send(env); err != nil {
		t.Fatalf("send: %v", err)
	}
	n := 0
	got, err := c.WaitFrame(ctxTimeout(t, 5*time.Second), func(e *protocol.Envelope) bool {
		if isReply(e) {
			n++
		}
		return isReply(e) && n > before
	})
	if err != nil {
		t.Fatalf("no reply to %s (%d frames before): %v", env.ID, before, err)
	}
	var r protocol.Reply
	if err := got.DecodePayload(&r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func replyCode(r *protocol.Reply) protocol.Code {
	if r.Error == nil {
		return ""
	}
	return r.Error.Code
}

// TestViolations checks that each kind of violation is refused with its
// code and without side effects, that a connection survives two, and that
// the third closes it with 1008 and is counted.
func TestViolations(t *testing.T) {
	t.Parallel()
	var ran atomic.Int32
	handlers := map[protocol.Op]link.HandlerFunc{
		protocol.OpListTargets: func(context.Context, link.Peer, json.RawMessage) (any, error) {
			ran.Add(1)
			return protocol.TargetList{}, nil
		},
		protocol.OpReportDecision: func(context.Context, link.Peer, json.RawMessage) (any, error) {
			return nil, link.Violation(protocol.Errorf(protocol.CodeNotFound, "no such promotion for this environment"))
		},
	}
	helloReply := func(id string) *protocol.Envelope {
		env, err := protocol.New(protocol.TypeHelloReply, id, "a1", &protocol.HelloReply{InstallationID: "ins_x"})
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	tests := []struct {
		name string
		// violate commits one violation with id and checks the refusal.
		violate func(t *testing.T, c *agenttest.Conn, id string)
	}{
		{"hub-only operation", func(t *testing.T, c *agenttest.Conn, id string) {
			if r := sendCommand(t, c, id, protocol.OpDeliverPromotion); replyCode(r) != protocol.CodeInvalid {
				t.Errorf("promotion.deliver from an agent: %+v, want invalid", r)
			}
		}},
		{"hello_reply from an agent", func(t *testing.T, c *agenttest.Conn, id string) {
			if r := sendAndWait(t, c, helloReply(id)); replyCode(r) != protocol.CodeInvalid {
				t.Errorf("hello_reply from an agent: %+v, want invalid", r)
			}
		}},
		{"settings from an agent", func(t *testing.T, c *agenttest.Conn, id string) {
			env, err := protocol.New(protocol.TypeSettings, id, "", &protocol.Settings{ReconnectSpreadMs: 1})
			if err != nil {
				t.Fatal(err)
			}
			if r := sendAndWait(t, c, env); replyCode(r) != protocol.CodeInvalid {
				t.Errorf("settings from an agent: %+v, want invalid", r)
			}
		}},
		{"refused by the handler as a violation", func(t *testing.T, c *agenttest.Conn, id string) {
			if r := sendCommand(t, c, id, protocol.OpReportDecision); replyCode(r) != protocol.CodeNotFound {
				t.Errorf("decision on another environment: %+v, want not_found", r)
			}
		}},
	}
	// Subtests run one after another: they share the ran counter.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHub(t, link.Config{}, handlers)
			c, _ := h.connect(t, &agenttest.Agent{Credential: cred1})
			tc.violate(t, c, "v1")
			tc.violate(t, c, "v2")
			// Still open after two: an honest command works.
			if r := sendCommand(t, c, "ok1", protocol.OpListTargets); r.Status != protocol.StatusOK {
				t.Fatalf("after two violations: %+v", r)
			}
			env, _ := protocol.New(protocol.TypeCommand, "v3", "", &protocol.Command{Op: protocol.OpCancelPromotion})
			if err := c.Send(env); err != nil {
				t.Fatal(err)
			}
			code, err := c.Wait(ctxTimeout(t, 5*time.Second))
			if code != websocket.ClosePolicyViolation {
				t.Errorf("third violation: close %d (%v), want 1008", code, err)
			}
			h.waitDisconnected(t, 5*time.Second)
			if n := metric(t, h.reg, "ferry_hub_link_policy_closes_total"); n != 1 {
				t.Errorf("policy closes metric = %v, want 1", n)
			}
		})
	}
}

// TestDuplicateCommandGetsTheFirstReply is catalogue rows A8 and W20: a
// copy of a command the link already received (a frame the network
// duplicated) does not run again and is answered with the first reply, as
// often as it comes, without counting against the agent.
func TestDuplicateCommandGetsTheFirstReply(t *testing.T) {
	t.Parallel()
	var ran atomic.Int32
	handlers := map[protocol.Op]link.HandlerFunc{
		protocol.OpListTargets: func(context.Context, link.Peer, json.RawMessage) (any, error) {
			n := ran.Add(1)
			return protocol.TargetList{SourceEnvID: fmt.Sprintf("run-%d", n)}, nil
		},
	}
	h := newTestHub(t, link.Config{}, handlers)
	c, _ := h.connect(t, &agenttest.Agent{Credential: cred1})
	first := sendCommand(t, c, "c1", protocol.OpListTargets)
	if first.Status != protocol.StatusOK {
		t.Fatalf("first: %+v", first)
	}
	for i := range 5 { // more than the violation limit
		again := sendCommand(t, c, "c1", protocol.OpListTargets)
		if again.Status != protocol.StatusOK || string(again.Body) != string(first.Body) || !again.Duplicate {
			t.Errorf("copy %d: %+v, want the first reply %s", i+1, again, first.Body)
		}
	}
	if n := ran.Load(); n != 1 {
		t.Errorf("the command ran %d times, want once", n)
	}
	if r := sendCommand(t, c, "c2", protocol.OpListTargets); r.Status != protocol.StatusOK {
		t.Errorf("a new command after the copies: %+v; the link should be open and in good standing", r)
	}
	if n := metric(t, h.reg, "ferry_hub_link_duplicate_commands_total"); n != 5 {
		t.Errorf("duplicate commands metric = %v, want 5", n)
	}
	if n := metric(t, h.reg, "ferry_hub_link_policy_closes_total"); n != 0 {
		t.Errorf("policy closes = %v, want 0", n)
	}
}

// TestReplyToUnsentCommand checks that replies to ids the hub never issued
// count as violations, while a late reply to one it did issue does not.
func TestReplyToUnsentCommand(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, link.Config{}, nil)
	c, _ := h.connect(t, &agenttest.Agent{Credential: cred1})
	for i, to := range []string{"h999999", "bogus", "h0"} {
		r, _ := protocol.OKReply(nil)
		env, _ := protocol.New(protocol.TypeReply, "r"+string(rune('a'+i)), to, r)
		if err := c.Send(env); err != nil {
			t.Fatal(err)
		}
	}
	code, err := c.Wait(ctxTimeout(t, 5*time.Second))
	if code != websocket.ClosePolicyViolation {
		t.Errorf("close %d (%v), want 1008", code, err)
	}
	if n := metric(t, h.reg, "ferry_hub_link_violations_total", "kind", "unknown_reply"); n != 3 {
		t.Errorf("unknown_reply violations = %v, want 3", n)
	}
}
