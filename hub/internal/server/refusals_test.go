package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ferry.dev/hub/internal/agenttest"
	"ferry.dev/hub/internal/api"
	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/config"
	"ferry.dev/hub/internal/testbed"
	"ferry.dev/shared/protocol"
)

// refusalsHub is a real hub driven through its REST API, with agent
// stand-ins that link over its real link endpoint.
type refusalsHub struct {
	t    *testing.T
	base string
}

// call makes a REST request as the platform admin (with an Idempotency-Key
// when key is not empty) and returns the status, the headers and the body.
func (h *refusalsHub) call(method, path, key, body string) (int, http.Header, string) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.base+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+restAdminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// must makes a REST request that must answer want, and decodes its body
// into out (when not nil).
func (h *refusalsHub) must(want int, method, path, key, body string, out any) {
	h.t.Helper()
	st, _, b := h.call(method, path, key, body)
	if st != want {
		h.t.Fatalf("%s %s: %d %s, want %d", method, path, st, b, want)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(b), out); err != nil {
			h.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// link enrolls an installation for env and connects an agent stand-in that
// answers the hub's commands with answer. It returns once the hub serves
// the agent: the hub reads an agent's commands only after registering it.
func (h *refusalsHub) link(env string, answer func(*protocol.Command) *protocol.Reply) *agenttest.Conn {
	h.t.Helper()
	var lt struct{ Token string }
	h.must(http.StatusCreated, "POST", "/api/v1/orgs/acme/environments/"+env+"/link-tokens", "lt-"+env, `{}`, &lt)
	var enrolled struct{ Credential string }
	req, _ := http.NewRequestWithContext(h.t.Context(), "POST", h.base+"/api/v1/link/enroll", strings.NewReader(`{"agentVersion":"test"}`))
	req.Header.Set("Authorization", "Bearer "+lt.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&enrolled); err != nil || resp.StatusCode != http.StatusCreated {
		h.t.Fatalf("enroll %s: %d %v", env, resp.StatusCode, err)
	}
	ag := &agenttest.Agent{Credential: enrolled.Credential, OnCommand: func(_ *agenttest.Conn, cmd *protocol.Command) *protocol.Reply {
		return answer(cmd)
	}}
	ctx, cancel := context.WithTimeout(h.t.Context(), 10*time.Second)
	defer cancel()
	c, err := ag.Dial(ctx, h.base)
	if err != nil {
		h.t.Fatalf("link %s: %v", env, err)
	}
	h.t.Cleanup(c.Close)
	if r, err := c.Call(ctx, protocol.OpListPromotions, nil); err != nil || r.Status != protocol.StatusOK {
		h.t.Fatalf("%s agent's first call: %+v, %v", env, r, err)
	}
	return c
}

// promote asks for a promotion of apiID from Dev to Prod.
func (h *refusalsHub) promote(apiID, key string) (int, http.Header, api.Problem, string) {
	h.t.Helper()
	st, hdr, b := h.call("POST", "/api/v1/orgs/acme/promotions", key, `{"apiId":"`+apiID+`","sourceEnv":"Dev","targetEnv":"Prod"}`)
	var p api.Problem
	_ = json.Unmarshal([]byte(b), &p)
	return st, hdr, p, b
}

// promotions lists the organization's promotions.
func (h *refusalsHub) promotions() []api.PromotionDTO {
	h.t.Helper()
	var out struct{ Items []api.PromotionDTO }
	h.must(http.StatusOK, "GET", "/api/v1/orgs/acme/promotions", "", "", &out)
	return out.Items
}

// TestCreateRefusals drives the real hub's REST API through the refusals at
// promotion creation: a definition holding a plaintext secret (R33) and a
// target environment whose agent is away with a full backlog (R26).
func TestCreateRefusals(t *testing.T) {
	t.Parallel()
	s := startRESTHub(t, func(c *config.Config) { c.MaxEnvBacklog = 2 })
	h := &refusalsHub{t: t, base: "http://" + s.Addr()}
	h.must(http.StatusCreated, "POST", "/api/v1/orgs", "org-acme", `{"name":"acme"}`, nil)
	for _, env := range []string{"Dev", "Prod"} {
		h.must(http.StatusCreated, "POST", "/api/v1/orgs/acme/environments", "env-"+env, `{"name":"`+env+`"}`, nil)
	}

	// The Dev agent exports API "api-<x>" with crossId <x>; api-secret
	// has a plaintext Authorization header, the others a reference.
	const secret = "Basic c2VydmljZTpodW50ZXIy"
	var exports atomic.Int64
	export := func(req protocol.ExportRequest) *protocol.Reply {
		exports.Add(1)
		auth := "{{secret:backend-auth}}"
		if req.APIID == "api-secret" {
			auth = secret
		}
		def := fmt.Sprintf(`{"api":{"definitionVersion":"V4","type":"PROXY","name":%q,"endpointGroups":[{"name":"default","type":"http-proxy",`+
			`"sharedConfiguration":{"headers":[{"name":"Accept","value":"*/*"},{"name":"Authorization","value":%q}]}}]}}`, req.APIID, auth)
		r, _ := protocol.OKReply(protocol.ExportedAPI{APIID: req.APIID, CrossID: strings.TrimPrefix(req.APIID, "api-"), Name: req.APIID, Version: "1", Definition: json.RawMessage(def)})
		return r
	}
	h.link("Dev", func(cmd *protocol.Command) *protocol.Reply {
		if cmd.Op != protocol.OpExportAPI {
			r, _ := protocol.OKReply(nil) // promotion updates
			return r
		}
		var req protocol.ExportRequest
		if err := json.Unmarshal(cmd.Body, &req); err != nil {
			return protocol.ErrorReply(protocol.CodeInvalid, err.Error())
		}
		return export(req)
	})

	t.Run("plaintext secret", func(t *testing.T) {
		st, _, p, body := h.promote("api-secret", "k-secret")
		const ptr = "/api/endpointGroups/0/sharedConfiguration/headers/1/value"
		if st != http.StatusUnprocessableEntity || p.Code != string(protocol.CodeSecretInDefinition) ||
			!strings.Contains(p.Detail, "authorization header at "+ptr) || !strings.Contains(p.Detail, "{{secret:name}}") {
			t.Errorf("promotion with a plaintext secret: %d %s; want 422 secret_in_definition naming %s and a reference to use", st, body, ptr)
		}
		if strings.Contains(body, "c2VydmljZTpodW50ZXIy") {
			t.Errorf("the refusal echoes the secret: %s", body)
		}
		if ps := h.promotions(); len(ps) != 0 {
			t.Errorf("%d promotions stored after the refusal, want none", len(ps))
		}
		var trail struct{ Items []api.AuditEntryDTO }
		h.must(http.StatusOK, "GET", "/api/v1/orgs/acme/audit?event="+audit.PromotionRefused, "", "", &trail)
		if len(trail.Items) != 1 || !strings.Contains(trail.Items[0].Detail, ptr) || trail.Items[0].Actor == "" {
			t.Errorf("audit of the refusal: %+v, want one %s entry naming %s", trail.Items, audit.PromotionRefused, ptr)
		}
		_, _, all := h.call("GET", "/api/v1/orgs/acme/audit", "", "")
		if strings.Contains(all, "c2VydmljZTpodW50ZXIy") {
			t.Errorf("the audit trail holds the secret")
		}
	})

	t.Run("backlog full", func(t *testing.T) {
		// Prod has no agent: two promotions with secret references are
		// accepted and wait; the third is refused until they are delivered.
		for _, a := range []string{"api-orders", "api-billing"} {
			if st, _, _, body := h.promote(a, "k-"+a); st != http.StatusCreated {
				t.Fatalf("promotion of %s: %d %s, want 201", a, st, body)
			}
		}
		before := exports.Load()
		st, hdr, p, body := h.promote("api-users", "k-users")
		if n := exports.Load() - before; n != 0 {
			t.Errorf("the refused promotion had the Dev agent export %d times; a full backlog refuses before the export", n)
		}
		if st != http.StatusServiceUnavailable || p.Code != string(protocol.CodeBacklogFull) || hdr.Get("Retry-After") == "" ||
			!strings.Contains(p.Detail, "2 promotions already wait for delivery to Prod, whose agent is not connected") {
			t.Fatalf("third promotion: %d (Retry-After %q) %s; want 503 environment_backlog_full with Retry-After, saying 2 wait for Prod's agent, not connected",
				st, hdr.Get("Retry-After"), body)
		}
		ps := h.promotions()
		if len(ps) != 2 || ps[0].Status != string(protocol.PromotionCreated) || ps[1].Status != string(protocol.PromotionCreated) {
			t.Fatalf("promotions after the refusal: %+v, want the first two, CREATED", ps)
		}

		// Prod's agent links and stores both tasks: the backlog is
		// empty, and the refused request, retried with its key, succeeds.
		h.link("Prod", func(cmd *protocol.Command) *protocol.Reply {
			r, _ := protocol.OKReply(nil)
			return r
		})
		testbed.WaitFor(t, 15*time.Second, "both promotions delivered", func() bool {
			n := 0
			for _, p := range h.promotions() {
				if p.Status == string(protocol.PromotionToBeValidated) {
					n++
				}
			}
			return n == 2
		})
		if st, _, _, body := h.promote("api-users", "k-users"); st != http.StatusCreated {
			t.Errorf("third promotion retried after delivery: %d %s, want 201", st, body)
		}
	})

	_, _, metrics := h.call("GET", "/metrics", "", "")
	for _, want := range []string{`ferry_hub_promotions_refused_total{reason="secret_in_definition"} 1`, `ferry_hub_promotions_refused_total{reason="environment_backlog_full"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
