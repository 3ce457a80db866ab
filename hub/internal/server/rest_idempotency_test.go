package server

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
)

// TestIdempotencyKeyRequired checks that creating a promotion without an
// Idempotency-Key is refused before anything happens (R19), while the
// other creating routes keep the key optional.
func TestIdempotencyKeyRequired(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme := h.newOrg("acme")
	before := h.snapshot(acme)
	exports := h.disp.exports()
	resp, b := h.raw(testAdminToken, "POST", "/api/v1/orgs/acme/promotions", "application/json",
		[]byte(`{"apiId":"api-x","sourceEnv":"Dev","targetEnv":"Prod"}`))
	if resp.StatusCode != http.StatusBadRequest || problemCode(t, resp, b) != "idempotency_key_required" {
		t.Errorf("no key: status %d: %s; want 400 idempotency_key_required", resp.StatusCode, b)
	}
	if after := h.snapshot(acme); after != before || h.disp.exports() != exports {
		t.Errorf("refused, yet something happened: before %+v, after %+v, exports %d → %d", before, after, exports, h.disp.exports())
	}
	// An empty header is no key either.
	resp, b = h.raw(testAdminToken, "POST", "/api/v1/orgs/acme/promotions", "application/json",
		[]byte(`{"apiId":"api-x","sourceEnv":"Dev","targetEnv":"Prod"}`), "Idempotency-Key", "")
	if resp.StatusCode != http.StatusBadRequest || problemCode(t, resp, b) != "idempotency_key_required" {
		t.Errorf("empty key: status %d: %s; want 400 idempotency_key_required", resp.StatusCode, b)
	}
	// Other creating routes do not require one.
	resp, b = h.raw(testAdminToken, "POST", "/api/v1/orgs/acme/environments", "application/json", []byte(`{"name":"Perf"}`))
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("environment without a key: status %d: %s; want 201", resp.StatusCode, b)
	}
	// With a key the promotion is created, and a retry replays it (R22).
	first, fb := h.raw(testAdminToken, "POST", "/api/v1/orgs/acme/promotions", "application/json",
		[]byte(`{"apiId":"api-x","sourceEnv":"Dev","targetEnv":"Prod"}`), "Idempotency-Key", "k1")
	again, ab := h.raw(testAdminToken, "POST", "/api/v1/orgs/acme/promotions", "application/json",
		[]byte(`{"apiId":"api-x","sourceEnv":"Dev","targetEnv":"Prod"}`), "Idempotency-Key", "k1")
	if first.StatusCode != http.StatusCreated || again.StatusCode != http.StatusCreated || ab != fb ||
		again.Header.Get("Idempotent-Replayed") != "true" || first.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("replay: %d %s then %d (replayed=%q) %s; want 201 twice, the same body, the second replayed",
			first.StatusCode, fb, again.StatusCode, again.Header.Get("Idempotent-Replayed"), ab)
	}
}

// TestIdempotencyKeyInFlight checks that a retry with the same key while
// the first request is still running answers 409 idempotency_key_in_use
// with Retry-After and does not run a second time (R21).
func TestIdempotencyKeyInFlight(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	h.newOrg("acme")
	body := []byte(`{"apiId":"api-slow","sourceEnv":"Dev","targetEnv":"Prod"}`)
	type answer struct {
		status int
		body   string
		retry  string
	}
	// The fake agent's export blocks while its mutex is held, so the
	// request that gets there first stays in flight.
	h.disp.mu.Lock()
	answers := make(chan answer, 2)
	for range 2 {
		go func() {
			resp, b := h.raw(testAdminToken, "POST", "/api/v1/orgs/acme/promotions", "application/json", body, "Idempotency-Key", "slow-key")
			answers <- answer{resp.StatusCode, b, resp.Header.Get("Retry-After")}
		}()
	}
	var second answer
	select {
	case second = <-answers:
	case <-time.After(10 * time.Second):
		h.disp.mu.Unlock()
		t.Fatal("neither request answered while the first was held")
	}
	h.disp.mu.Unlock()
	first := <-answers
	if second.status != http.StatusConflict {
		t.Fatalf("retry in flight: status %d: %s; want 409", second.status, second.body)
	}
	if n, err := strconv.Atoi(second.retry); err != nil || n < 1 {
		t.Errorf("Retry-After %q, want whole seconds ≥ 1", second.retry)
	}
	resp := &http.Response{Header: http.Header{"Content-Type": {"application/problem+json"}}}
	if code := problemCode(t, resp, second.body); code != "idempotency_key_in_use" {
		t.Errorf("code %q, want idempotency_key_in_use", code)
	}
	if first.status != http.StatusCreated {
		t.Errorf("first: status %d: %s; want 201", first.status, first.body)
	}
	if n := h.disp.exports(); n != 1 {
		t.Errorf("%d exports, want 1", n)
	}
	ps, err := h.store.ListPromotions(t.Context(), state.PromotionFilter{APIID: "api-slow"})
	if err != nil || len(ps) != 1 {
		t.Errorf("%d promotions of api-slow (%v), want 1", len(ps), err)
	}
}
