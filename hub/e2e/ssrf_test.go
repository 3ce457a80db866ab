package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"ferry.dev/hub/internal/testbed"
)

// TestDefinitionURLsAreNeverCalled is catalogue row C10 (OWASP API7): an
// API definition whose backend, health check and documentation URLs all
// point at a canary listener on loopback is exported, promoted and
// accepted; neither the hub nor the agents connect to the canary. The
// agents call only their configured APIM base URL, and the hub only its
// agents' links.
func TestDefinitionURLsAreNeverCalled(t *testing.T) {
	t.Parallel()
	canary, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var dials atomic.Int32
	go func() {
		for {
			c, err := canary.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { canary.Close() })
	url := "http://" + canary.Addr().String()

	w := newWorld(t)
	var def map[string]any
	if err := json.Unmarshal(testbed.Sample(t, "v4-http-proxy-no-ids-plan-with-flows.json"), &def); err != nil {
		t.Fatal(err)
	}
	api := def["api"].(map[string]any)
	api["name"] = "canary"
	// Every URL-like field the definition has points at the canary.
	for _, g := range api["endpointGroups"].([]any) {
		for _, e := range g.(map[string]any)["endpoints"].([]any) {
			e.(map[string]any)["configuration"] = map[string]any{"target": url + "/backend"}
		}
	}
	api["definitionContext"] = map[string]any{"origin": "MANAGEMENT"}
	def["metadata"] = []any{map[string]any{"key": "docs", "name": "docs", "format": "URL", "value": url + "/docs"}}
	def["pages"] = []any{map[string]any{"name": "spec", "type": "SWAGGER", "source": map[string]any{"type": "http-fetcher", "configuration": map[string]any{"url": url + "/openapi.json"}}}}
	b, err := json.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	id := importAPI(t, w.devAPIM, b)

	p, st := w.promote(t, id)
	if st != http.StatusCreated {
		t.Fatalf("promote: %d", st)
	}
	w.waitStatus(t, p.ID, "TO_BE_VALIDATED")
	if st := decide(t, w.prodAgnt, p.ID, "accept", nil); st != http.StatusOK {
		t.Fatalf("accept: %d", st)
	}
	w.waitStatus(t, p.ID, "ACCEPTED")
	// The URLs travelled: the test would prove nothing if they had been
	// stripped on the way.
	prod := listAPIs(t, w.prodAPIM)
	if len(prod) != 1 || !strings.Contains(exportRaw(t, w.prodAPIM, prod[0].ID), url+"/backend") {
		t.Fatalf("Prod holds %d APIs, or its definition lost the canary URL", len(prod))
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("the canary named in the definition got %d connections, want 0", n)
	}
}
