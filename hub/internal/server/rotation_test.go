package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"ferry.dev/hub/internal/agenttest"
	"ferry.dev/hub/internal/api"
	"ferry.dev/hub/internal/auth"
	"ferry.dev/shared/protocol"
)

// rotationHub is a real hub on a clock the test moves, driven over REST,
// with agent stand-ins on its real link endpoint.
type rotationHub struct {
	*refusalsHub
}

// enroll trades a new link token of env for an installation credential.
func (h *rotationHub) enroll(env string) (id, credential string) {
	h.t.Helper()
	var lt struct{ Token string }
	h.must(http.StatusCreated, "POST", "/api/v1/orgs/acme/environments/"+env+"/link-tokens", newIdempotencyKey(), `{}`, &lt)
	req, _ := http.NewRequestWithContext(h.t.Context(), "POST", h.base+"/api/v1/link/enroll", strings.NewReader(`{"agentVersion":"test","hostname":"apim-`+env+`"}`))
	req.Header.Set("Authorization", "Bearer "+lt.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.EnrollResponse
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusCreated {
		h.t.Fatalf("enroll %s: %d %v", env, resp.StatusCode, err)
	}
	return e.InstallationID, e.Credential
}

// rotationAgent is an agent stand-in whose answer to a new credential the
// test scripts; every credential it is sent arrives on got.
type rotationAgent struct {
	got    chan string
	answer func() *protocol.Reply // nil answers ok
}

func newRotationAgent() *rotationAgent { return &rotationAgent{got: make(chan string, 8)} }

// dial links with credential; the hub has registered the link when it
// returns.
func (a *rotationAgent) dial(h *rotationHub, credential string) (*agenttest.Conn, error) {
	ag := &agenttest.Agent{Credential: credential, OnCommand: func(_ *agenttest.Conn, cmd *protocol.Command) *protocol.Reply {
		if cmd.Op != protocol.OpRotateCredential {
			return protocol.ErrorReply(protocol.CodeUnsupported, "not in this test")
		}
		var r protocol.CredentialRotation
		if err := json.Unmarshal(cmd.Body, &r); err != nil || r.Validate() != nil {
			return protocol.ErrorReply(protocol.CodeInvalid, "bad rotation")
		}
		a.got <- r.Credential
		if a.answer != nil {
			return a.answer()
		}
		return &protocol.Reply{Status: protocol.StatusOK}
	}}
	ctx, cancel := context.WithTimeout(h.t.Context(), 10*time.Second)
	defer cancel()
	c, err := ag.Dial(ctx, h.base)
	if err != nil {
		return nil, err
	}
	h.t.Cleanup(c.Close)
	// The hub reads a link's commands once it has registered it.
	if r, err := c.Call(ctx, protocol.OpListPromotions, nil); err != nil || r.Status != protocol.StatusOK {
		h.t.Fatalf("first call on a new link: %+v, %v", r, err)
	}
	return c, nil
}

// mustDial links with credential or fails the test.
func (a *rotationAgent) mustDial(h *rotationHub, what, credential string) *agenttest.Conn {
	h.t.Helper()
	c, err := a.dial(h, credential)
	if err != nil {
		h.t.Fatalf("%s: %v", what, err)
	}
	return c
}

// next is the next credential the agent was sent.
func (a *rotationAgent) next(t *testing.T, what string) string {
	t.Helper()
	select {
	case c := <-a.got:
		if err := auth.Check(auth.KindCredential, c); err != nil {
			t.Fatalf("%s: the agent was sent %q, not an installation credential", what, c)
		}
		return c
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no credential reached the agent", what)
		return ""
	}
}

// rotate asks for a new credential of installation id.
func (h *rotationHub) rotate(id string, want int) (api.CredentialRotationDTO, string) {
	h.t.Helper()
	st, _, b := h.call("POST", "/api/v1/orgs/acme/installations/"+id+"/_rotate-credential", "", `{}`)
	if st != want {
		h.t.Fatalf("rotate %s: %d %s, want %d", id, st, b, want)
	}
	var r api.CredentialRotationDTO
	if st == http.StatusAccepted {
		if err := json.Unmarshal([]byte(b), &r); err != nil {
			h.t.Fatal(err)
		}
	}
	return r, b
}

// installation reads one installation from the list.
func (h *rotationHub) installation(id string) api.InstallationDTO {
	h.t.Helper()
	var out struct{ Items []api.InstallationDTO }
	h.must(http.StatusOK, "GET", "/api/v1/orgs/acme/installations", "", "", &out)
	for _, i := range out.Items {
		if i.ID == id {
			return i
		}
	}
	h.t.Fatalf("no installation %s", id)
	return api.InstallationDTO{}
}

// alive checks that a link still carries calls.
func alive(t *testing.T, what string, c *agenttest.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if r, err := c.Call(ctx, protocol.OpListPromotions, nil); err != nil || r.Status != protocol.StatusOK {
		t.Errorf("%s: the link no longer carries calls: %+v, %v", what, r, err)
	}
}

// refused checks that a link with credential is refused with 401 and
// returns the problem.
func (a *rotationAgent) refused(h *rotationHub, what, credential string) api.Problem {
	h.t.Helper()
	_, err := a.dial(h, credential)
	var he *agenttest.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
		h.t.Fatalf("%s: %v, want 401", what, err)
	}
	var p api.Problem
	if err := json.Unmarshal([]byte(he.Body), &p); err != nil {
		h.t.Fatalf("%s: problem %q: %v", what, he.Body, err)
	}
	return p
}

// TestCredentialRotation is catalogue row C7's rotation, on the real hub
// and its link: the new credential works at once; the old one keeps its open
// links and opens new ones until the overlap (1 h) ends, then is refused
// with 401 credential_expired; an agent offline at the rotation gets its new
// credential when it links with the old one; the new credential is never in
// an answer or the audit trail.
func TestCredentialRotation(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	s := startRESTHub(t, nil, func(s *Server) { s.now = clk.now })
	h := &rotationHub{refusalsHub: &refusalsHub{t: t, base: "http://" + s.Addr()}}
	h.must(http.StatusCreated, "POST", "/api/v1/orgs", "org-acme", `{"name":"acme"}`, nil)
	for _, env := range []string{"Dev", "Prod", "QA"} {
		h.must(http.StatusCreated, "POST", "/api/v1/orgs/acme/environments", "env-"+env, `{"name":"`+env+`"}`, nil)
	}

	// Connected: the agent is sent the new credential and acknowledges it
	// before the answer; its link stays open.
	devID, devOld := h.enroll("Dev")
	dev := newRotationAgent()
	conn1 := dev.mustDial(h, "Dev's first link", devOld)
	rotatedAt := clk.now()
	r, body := h.rotate(devID, http.StatusAccepted)
	devNew := dev.next(t, "rotation of a connected agent")
	if !r.AgentNotified || r.Installation.ID != devID || r.Installation.Status != "online" || r.Installation.CredentialPending {
		t.Errorf("rotation answer = %+v, want the agent notified, online, nothing pending", r)
	}
	if exp := r.PreviousCredentialExpiresAt; exp.Before(rotatedAt.Add(time.Hour-time.Second)) || exp.After(rotatedAt.Add(time.Hour+time.Minute)) {
		t.Errorf("old credential expires at %v, want an hour after %v", exp, rotatedAt)
	}
	if strings.Contains(body, devNew) || strings.Contains(body, "ferry_ic_") {
		t.Errorf("the rotation answer shows a credential: %s", body)
	}
	if devNew == devOld {
		t.Error("the new credential is the old one")
	}
	alive(t, "Dev's link opened with the old credential, after the rotation", conn1)

	// Within the overlap, the old link stays open and the old credential
	// still links; the new one links at once. (A new link of the same
	// installation supersedes the one before: that is the registry's rule,
	// not the rotation's.)
	clk.advance(59 * time.Minute)
	alive(t, "Dev's old link 59 minutes after the rotation", conn1)
	conn2 := dev.mustDial(h, "the new credential", devNew)
	if code, _ := conn1.Wait(t.Context()); code != protocol.CloseSuperseded {
		t.Errorf("Dev's first link closed with %d when its agent linked again, want %d (superseded)", code, protocol.CloseSuperseded)
	}
	oldLink := dev.mustDial(h, "the old credential within the overlap", devOld)
	if code, _ := conn2.Wait(t.Context()); code != protocol.CloseSuperseded {
		t.Errorf("Dev's second link closed with %d, want %d (superseded)", code, protocol.CloseSuperseded)
	}

	// After the overlap the old credential opens nothing, but the link it
	// opened stays open; the new one still links.
	clk.advance(2 * time.Minute)
	p := dev.refused(h, "the old credential after the overlap", devOld)
	if p.Code != "credential_expired" || !strings.Contains(p.Detail, "rotated") || !strings.Contains(p.Detail, "re-enroll") ||
		!strings.Contains(p.Detail, r.PreviousCredentialExpiresAt.UTC().Format(time.RFC3339)) {
		t.Errorf("refusal of the expired credential = %+v, want credential_expired saying when and what to do", p)
	}
	// The refusal is audited once in the installation's organization,
	// not once per redial.
	dev.refused(h, "the old credential after the overlap, again", devOld)
	var expiredTrail struct {
		Items []struct{ Event, Actor, Detail string }
	}
	h.must(http.StatusOK, "GET", "/api/v1/orgs/acme/audit?event=LINK_CREDENTIAL_EXPIRED", "", "", &expiredTrail)
	if len(expiredTrail.Items) != 1 || expiredTrail.Items[0].Actor != "installation:"+devID || !strings.Contains(expiredTrail.Items[0].Detail, "re-enrolled") {
		t.Errorf("audit of two refused expired-credential links: %+v, want one LINK_CREDENTIAL_EXPIRED by installation:%s saying what to do", expiredTrail.Items, devID)
	}
	alive(t, "the link the old credential opened within the overlap, after it", oldLink)
	dev.mustDial(h, "the new credential after the overlap", devNew)
	select {
	case c := <-dev.got:
		t.Errorf("Dev, which had confirmed its new credential, was sent another: %.12s…", c)
	default:
	}

	// Offline at the rotation: the credential goes out when the agent
	// next links with its old one. A first delivery the agent fails is
	// followed by another on its next link.
	clk.set(0)
	prodID, prodOld := h.enroll("Prod")
	r, _ = h.rotate(prodID, http.StatusAccepted)
	if r.AgentNotified || !strings.Contains(r.Detail, "not connected") || !r.Installation.CredentialPending {
		t.Errorf("rotation of an offline agent = %+v, want not notified, pending", r)
	}
	prod := newRotationAgent()
	prod.answer = func() *protocol.Reply { return protocol.ErrorReply(protocol.CodeUnavailable, "disk full") }
	failed := prod.mustDial(h, "Prod's old credential, offline at the rotation", prodOld)
	lost := prod.next(t, "Prod linked with its old credential")
	// Close waits for the stand-in's answer; the next link gets another.
	failed.Close()
	prod.answer = nil
	prod.mustDial(h, "Prod's old credential again", prodOld)
	prodNew := prod.next(t, "Prod linked with its old credential again")
	if prodNew == lost {
		t.Error("the second delivery sent the credential the agent failed to keep; the hub keeps no secret, it makes a new one")
	}
	prod.mustDial(h, "Prod's delivered credential", prodNew)
	if p := prod.refused(h, "the credential Prod failed to keep", lost); p.Code != "unauthorized" {
		t.Errorf("the replaced undelivered credential = %+v, want unknown", p)
	}
	if i := h.installation(prodID); i.CredentialPending || i.CredentialRotatedAt == nil || i.PreviousCredentialExpiresAt == nil {
		t.Errorf("Prod after its delivery = %+v, want rotated and confirmed", i)
	}

	// An agent that cannot take a new credential: the rotation is undone.
	qaID, qaOld := h.enroll("QA")
	qa := newRotationAgent()
	qa.answer = func() *protocol.Reply {
		return protocol.ErrorReply(protocol.CodeUnsupported, "operation credential.rotate is not supported by this agent")
	}
	qaLink := qa.mustDial(h, "QA's first link", qaOld)
	st, _, b := h.call("POST", "/api/v1/orgs/acme/installations/"+qaID+"/_rotate-credential", "", "")
	if st != http.StatusConflict || !strings.Contains(b, "cannot take a new credential") {
		t.Errorf("rotation of an agent without the operation: %d %s, want 409", st, b)
	}
	qa.next(t, "QA's refused credential")
	if i := h.installation(qaID); i.CredentialRotatedAt != nil || i.CredentialPending {
		t.Errorf("QA after the undone rotation = %+v, want never rotated", i)
	}
	alive(t, "QA's link after the undone rotation", qaLink)
	clk.advance(2 * time.Hour)
	qa.mustDial(h, "QA's credential, hours after the undone rotation", qaOld)

	// The trail names the admin and each rotation, never a credential.
	var trail struct{ Items []api.AuditEntryDTO }
	h.must(http.StatusOK, "GET", "/api/v1/orgs/acme/audit?event=CREDENTIAL_ROTATED", "", "", &trail)
	rotated := map[string]bool{}
	for _, e := range trail.Items {
		for _, id := range []string{devID, prodID, qaID} {
			if strings.Contains(e.Detail, id) {
				rotated[id] = true
			}
		}
		if e.Actor == "" || strings.Contains(e.Detail, "ferry_ic_") {
			t.Errorf("audit entry %+v: want an actor and no credential", e)
		}
	}
	if len(trail.Items) != 3 || len(rotated) != 3 {
		t.Errorf("CREDENTIAL_ROTATED entries %+v, want one for each of the three rotations", trail.Items)
	}
	h.must(http.StatusOK, "GET", "/api/v1/orgs/acme/audit?event=ACTION_NOT_DONE", "", "", &trail)
	if len(trail.Items) != 1 || !strings.Contains(trail.Items[0].Detail, qaID) {
		t.Errorf("ACTION_NOT_DONE entries %+v, want the undone rotation of QA's credential", trail.Items)
	}
}
