package storetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"ferry.dev/hub/internal/state"
)

// Crasher is implemented by a store under test (usually a test wrapper
// around an engine) so the suite can leave behind what a hub that crashed
// half-way through CreatePromotion or UpdatePromotion would.
type Crasher interface {
	// LeaveLock inserts only the active-promotion lock of
	// (targetEnvID, crossID), held by promotionID and taken at lockedAt.
	LeaveLock(ctx context.Context, targetEnvID, crossID, promotionID string, lockedAt time.Time) error
}

// Config sizes the suite's heavier cases.
type Config struct {
	// AuditAppends is how many entries the concurrent-append case (E6)
	// writes; 0 means the FERRY_AUDIT_APPENDS environment variable, or
	// 500 when it is not set. (E6's full figure is 10,000: minutes on
	// SQLite under -race, whose every append is a synchronous commit, so
	// too slow for make test.)
	AuditAppends int
	// AuditHubs is how many audit.Trail instances (hubs) the 50 writers
	// of that case are spread over; 0 means 5.
	AuditHubs int
}

// Run runs the conformance suite. open must return a new, empty store each
// time it is called; Run closes it when the case ends. The store returned
// must also implement Crasher.
func Run(t *testing.T, open func(t *testing.T) state.Store) {
	RunConfig(t, Config{}, open)
}

// RunConfig is Run with the heavier cases sized by cfg.
func RunConfig(t *testing.T, cfg Config, open func(t *testing.T) state.Store) {
	if cfg.AuditAppends <= 0 {
		cfg.AuditAppends = 500
		if v, err := strconv.Atoi(os.Getenv("FERRY_AUDIT_APPENDS")); err == nil && v > 0 {
			cfg.AuditAppends = v
		}
	}
	if cfg.AuditHubs <= 0 {
		cfg.AuditHubs = 5
	}
	cases := []struct {
		name string
		run  func(*testing.T, state.Store)
	}{
		{"Ping", testPing},
		{"Closed", testClosed},
		{"Orgs", testOrgs},
		{"Environments", testEnvironments},
		{"LinkTokens", testLinkTokens},
		{"ConsumeLinkTokenConcurrent", testConsumeLinkTokenConcurrent},
		{"Installations", testInstallations},
		{"UpdateInstallationSeen", testUpdateInstallationSeen},
		{"MarkAllOffline", testMarkAllOffline},
		{"Connections", testConnections},
		{"InstallationCredential", testInstallationCredential},
		{"SetInstallationCredentialConcurrent", testSetInstallationCredentialConcurrent},
		{"APITokens", testAPITokens},
		{"APITokenLifecycle", testAPITokenLifecycle},
		{"TouchAPITokenConcurrent", testTouchAPITokenConcurrent},
		{"Users", testUsers},
		{"UpdateUser", testUpdateUser},
		{"DeleteUser", testDeleteUser},
		{"RoleBindings", testRoleBindings},
		{"Roles", testRoles},
		{"InitSetting", testInitSetting},
		{"InitSettingConcurrent", testInitSettingConcurrent},
		{"Promotions", testPromotions},
		{"CreatePromotionActiveKey", testCreatePromotionActiveKey},
		{"CreatePromotionConcurrent", testCreatePromotionConcurrent},
		{"StaleLocks", testStaleLocks},
		{"UpdatePromotion", testUpdatePromotion},
		{"UpdatePromotionConcurrent", testUpdatePromotionConcurrent},
		{"ListPromotions", testListPromotions},
		{"CountUndelivered", testCountUndelivered},
		{"Audit", testAudit},
		{"ListAudit", testListAudit},
		{"ListLimits", testListLimits},
		{"CreateSameKeyConcurrent", testCreateSameKeyConcurrent},
		{"PromotionIdempotencyKey", testPromotionIdempotencyKey},
		{"AuditAnchors", testAuditAnchors},
		{"AuditConcurrentAppend", func(t *testing.T, s state.Store) { testAuditConcurrentAppend(t, s, cfg.AuditAppends, cfg.AuditHubs) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			c.run(t, s)
		})
	}
}

// base is the suite's reference time, on a millisecond.
var base = time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)

// at returns base plus d.
func at(d time.Duration) time.Time { return base.Add(d) }

// ctxT returns a context that ends with the test or after 30 s.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// opts compare records: nil and empty slices are equal.
var opts = cmp.Options{cmpopts.EquateEmpty()}

// diff reports a mismatch between want and got.
func diff(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got, opts); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

// checkErr reports err unless it matches want: nil for success, or the
// sentinel err must wrap.
func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Errorf("%s: unexpected error %v", what, err)
	case want != nil && !errors.Is(err, want):
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

// must fails the test now when err is not nil.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// checkUTC reports times that are not in UTC.
func checkUTC(t *testing.T, what string, ts ...time.Time) {
	t.Helper()
	for i, ts := range ts {
		if !ts.IsZero() && ts.Location() != time.UTC {
			t.Errorf("%s: time %d is in %v, want UTC", what, i, ts.Location())
		}
	}
}

// race runs f(i) for i in [0, n) on n goroutines released together and
// returns their errors by i.
func race(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			<-start
			errs[i] = f(i)
		}()
	}
	close(start)
	for range n {
		<-done
	}
	return errs
}

func testPing(t *testing.T, s state.Store) {
	if err := s.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testClosed(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	must(t, "Close", s.Close())
	checkErr(t, "Ping after Close", s.Ping(ctx), state.ErrUnavailable)
	_, err := s.Org(ctx, "o1")
	checkErr(t, "Org after Close", err, state.ErrUnavailable)
	checkErr(t, "CreateOrg after Close", s.CreateOrg(ctx, state.Org{ID: "o1", Name: "acme"}), state.ErrUnavailable)
}

// seedOrg creates organization id named name.
func seedOrg(t *testing.T, s state.Store, id, name string) state.Org {
	t.Helper()
	o := state.Org{ID: id, Name: name, CreatedAt: base}
	must(t, fmt.Sprintf("CreateOrg(%s)", id), s.CreateOrg(ctxT(t), o))
	return o
}
