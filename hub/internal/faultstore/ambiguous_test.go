package faultstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/faultstore"
	"ferry.dev/hub/internal/promotion"
	"ferry.dev/hub/internal/state"
	"ferry.dev/hub/internal/store"
)

// newWorkflow wires the real promotion workflow and audit trail over a
// SQLite store wrapped by faultstore, with organization o1 and its
// environments Dev and Prod. The workflow reads the time from clock, if given.
func newWorkflow(t *testing.T, clock ...func() time.Time) (*faultstore.Store, *promotion.Service, *audit.Trail) {
	t.Helper()
	opts := promotion.Options{}
	if len(clock) > 0 {
		opts.Now = clock[0]
	}
	return newWorkflowWith(t, exporter{}, opts, "Dev", "Prod")
}

// newWorkflowWith is newWorkflow with the dispatcher, the workflow's
// options and the environments (ids env-<name>) given.
func newWorkflowWith(t *testing.T, disp promotion.Dispatcher, opts promotion.Options, envs ...string) (*faultstore.Store, *promotion.Service, *audit.Trail) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	sq, err := store.OpenSQLite(ctx, t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	st := faultstore.Wrap(sq)
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC()
	if err := st.CreateOrg(ctx, state.Org{ID: "o1", Name: "demo", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for _, e := range envs {
		if err := st.CreateEnvironment(ctx, state.Environment{ID: "env-" + e, OrgID: "o1", Name: e, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	trail, err := audit.New(st, log, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	promos, err := promotion.New(st, disp, trail, log, reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st, promos, trail
}

var admin = promotion.Caller{Name: "platform-admin", Trusted: true}

// TestAmbiguousCreate is A11 of shared/reference/reliability.md at the
// workflow: the store applies the promotion but the caller hears a network
// error (the API answers 503, as for any state.ErrUnavailable); the retry
// with the same Idempotency-Key finds the promotion by its unique key and
// answers it again instead of meeting the one-active-promotion rule, so
// there is exactly one promotion and one creation record.
func TestAmbiguousCreate(t *testing.T) {
	ctx := context.Background()
	st, promos, trail := newWorkflow(t)

	st.Ambiguous("CreatePromotion")
	_, _, err := promos.CreateAtHubOnce(ctx, "o1", "api-1", "Dev", "Prod", admin, "key-1")
	if !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("create through an ambiguous write: %v, want an error wrapping ErrUnavailable (503)", err)
	}
	if _, faulted := st.Calls(); faulted != 1 {
		t.Fatalf("%d calls faulted, want the one CreatePromotion", faulted)
	}
	st.Recover()
	stored, err := st.ListPromotions(ctx, state.PromotionFilter{OrgID: "o1"})
	if err != nil || len(stored) != 1 {
		t.Fatalf("after the ambiguous write: %d promotions, %v; want the 1 the store applied", len(stored), err)
	}

	// A retry without the key meets the active promotion, which is what
	// the key is for.
	if _, err := promos.CreateAtHub(ctx, "o1", "api-1", "Dev", "Prod", admin); !errors.As(err, new(*promotion.ActiveError)) {
		t.Errorf("retry without a key: %v, want an ActiveError", err)
	}
	// The retry with the key answers the same promotion.
	p, replayed, err := promos.CreateAtHubOnce(ctx, "o1", "api-1", "Dev", "Prod", admin, "key-1")
	if err != nil || !replayed {
		t.Fatalf("retry with the key: replayed %v, %v; want the stored promotion", replayed, err)
	}
	if p.ID != stored[0].ID || p.CrossID != "cross-api-1" || p.TargetEnvID != "env-Prod" || p.Status != stored[0].Status {
		t.Errorf("retry answered %+v, want the stored %+v", p, stored[0])
	}
	// Again: still the same one.
	if p2, replayed, err := promos.CreateAtHubOnce(ctx, "o1", "api-1", "Dev", "Prod", admin, "key-1"); err != nil || !replayed || p2.ID != p.ID {
		t.Errorf("second retry = %s, replayed %v, %v; want %s replayed", p2.ID, replayed, err, p.ID)
	}
	// The key with another request is refused; the key of another
	// organization's request would not be found.
	_, _, err = promos.CreateAtHubOnce(ctx, "o1", "api-2", "Dev", "Prod", admin, "key-1")
	var mm *promotion.IdempotencyMismatchError
	if !errors.As(err, &mm) || mm.ID != p.ID {
		t.Errorf("same key, other API: %v, want an IdempotencyMismatchError naming %s", err, p.ID)
	}

	stored, err = st.ListPromotions(ctx, state.PromotionFilter{OrgID: "o1"})
	if err != nil || len(stored) != 1 {
		t.Errorf("promotions at the end: %d, %v; want exactly 1", len(stored), err)
	}
	created, err := trail.List(ctx, state.AuditFilter{OrgID: "o1", Event: audit.PromotionCreated})
	if err != nil || len(created) != 1 || created[0].PromotionID != p.ID {
		t.Errorf("creation records: %+v, %v; want exactly 1, for %s", created, err, p.ID)
	}
	if b, _, err := trail.Verify(ctx, "o1"); b != nil || err != nil {
		t.Errorf("audit chain: %+v, %v", b, err)
	}
}

// TestFailClosed is E3: while audit appends fail (and nothing else does),
// a promotion request answers 503 with Retry-After and creates nothing;
// once the trail can be written, the same request succeeds.
func TestFailClosed(t *testing.T) {
	st, srv := newAPI(t)
	createDemo(t, srv, "Dev", "Prod")
	ctx := context.Background()
	org, err := st.Org(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	before, err := st.ListAudit(ctx, state.AuditFilter{OrgID: org.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}

	promote := call{"promote", "POST", "/api/v1/orgs/demo/promotions", `{"apiId":"api-1","sourceEnv":"Dev","targetEnv":"Prod"}`, http.StatusCreated}
	st.FailOnly(nil, "AppendAudit")
	status, h, b := do(t, srv, promote)
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Errorf("promote while the audit trail fails: %d, Retry-After %q, %s; want 503 with Retry-After", status, h.Get("Retry-After"), b)
	}
	if _, faulted := st.Calls(); faulted == 0 {
		t.Fatal("no audit append was attempted")
	}
	st.Recover()
	stored, err := st.ListPromotions(ctx, state.PromotionFilter{OrgID: org.ID})
	if err != nil || len(stored) != 0 {
		t.Errorf("promotions after the refused request: %d, %v; want 0", len(stored), err)
	}
	after, err := st.ListAudit(ctx, state.AuditFilter{OrgID: org.ID, Limit: 1000})
	if err != nil || len(after) != len(before) {
		t.Errorf("audit entries: %d before, %d after, %v; want no change", len(before), len(after), err)
	}

	if status, _, b := do(t, srv, promote); status != promote.ok {
		t.Fatalf("promote after recovery: %d %s", status, b)
	}
	stored, _ = st.ListPromotions(ctx, state.PromotionFilter{OrgID: org.ID})
	created, _ := st.ListAudit(ctx, state.AuditFilter{OrgID: org.ID, Event: audit.PromotionCreated})
	if len(stored) != 1 || len(created) != 1 || created[0].PromotionID != stored[0].ID {
		t.Errorf("after recovery: %d promotions, %d creation records; want 1 each, matching", len(stored), len(created))
	}
	if status, _, b := do(t, srv, call{name: "verify", method: "GET", path: "/api/v1/orgs/demo/audit/_verify"}); status != http.StatusOK || !strings.Contains(b, `"ok":true`) {
		t.Errorf("audit verify: %d %s", status, b)
	}
}

// TestAmbiguousCreateOverHTTP is row A11 end to end: the store commits the
// promotion and then reports a network error, so the client gets 503 and
// retries with the same Idempotency-Key. The retry answers the promotion
// the first request made (Idempotent-Replayed), and there is exactly one.
func TestAmbiguousCreateOverHTTP(t *testing.T) {
	st, srv := newAPI(t)
	createDemo(t, srv, "Dev", "Prod")
	ctx := context.Background()
	org, err := st.Org(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	promote := call{"promote", "POST", "/api/v1/orgs/demo/promotions", `{"apiId":"api-1","sourceEnv":"Dev","targetEnv":"Prod"}`, http.StatusCreated}
	st.Ambiguous("CreatePromotion")
	if status, _, b := do(t, srv, promote); status != http.StatusServiceUnavailable {
		t.Fatalf("promote through an ambiguous write: %d %s, want 503", status, b)
	}
	st.Recover()
	stored, err := st.ListPromotions(ctx, state.PromotionFilter{OrgID: org.ID})
	if err != nil || len(stored) != 1 {
		t.Fatalf("promotions after the ambiguous write: %d, %v; want the 1 it committed", len(stored), err)
	}

	for range 2 {
		status, h, b := do(t, srv, promote) // the same key: do derives it from path and body
		var got struct{ ID string }
		_ = json.Unmarshal([]byte(b), &got)
		if status != http.StatusCreated || got.ID != stored[0].ID || h.Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry with the same key: %d %s (replayed %q); want 201 with %s, replayed", status, b, h.Get("Idempotent-Replayed"), stored[0].ID)
		}
	}
	if again, err := st.ListPromotions(ctx, state.PromotionFilter{OrgID: org.ID}); err != nil || len(again) != 1 {
		t.Errorf("promotions after the retries: %d, %v; want 1", len(again), err)
	}
}
