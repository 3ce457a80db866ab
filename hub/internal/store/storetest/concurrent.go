package storetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/state"
)

// racers is how many goroutines the concurrency cases release together
// (row H3 of shared/reference/reliability.md).
const racers = 50

// auditWriters is how many goroutines testAuditConcurrentAppend runs. They
// are spread over audit.Trail instances, each standing for one hub sharing
// the store (a Trail serialises its own appends; hubs race on the store's
// unique (OrgID, Seq) key).
const auditWriters = 50

// testAuditConcurrentAppend is E6: 50 writers on hubs "hubs" append records
// to one organization's trail. The store's unique (OrgID, Seq) key must leave
// no fork (two entries with one seq), no gap, and a chain that verifies.
func testAuditConcurrentAppend(t *testing.T, s state.Store, records, hubs int) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	trails := make([]*audit.Trail, hubs)
	for i := range trails {
		tr, err := audit.New(s, log, nil, nil)
		must(t, "audit.New", err)
		trails[i] = tr
	}
	var next atomic.Int64 // records handed out
	errs := race(auditWriters, func(w int) error {
		tr := trails[w%hubs]
		for {
			n := next.Add(1)
			if n > int64(records) {
				return nil
			}
			ev := audit.Event{OrgID: "o1", Event: audit.PromotionCreated, Actor: fmt.Sprintf("writer:%d", w), Detail: fmt.Sprint("record ", n)}
			if _, err := tr.Record(ctx, ev); err != nil {
				return fmt.Errorf("writer %d, record %d: %w", w, n, err)
			}
		}
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Read the whole trail back in pages and check it link by link.
	var all []state.AuditEntry
	seen := map[int64]int{}
	for {
		var after int64
		if len(all) > 0 {
			after = all[len(all)-1].Seq
		}
		page, err := s.ListAudit(ctx, state.AuditFilter{OrgID: "o1", AfterSeq: after, Limit: 100})
		must(t, "ListAudit", err)
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			seen[e.Seq]++
		}
		all = append(all, page...)
	}
	forks := 0
	for seq, n := range seen {
		if n > 1 {
			forks++
			t.Errorf("fork: %d entries have seq %d", n, seq)
		}
	}
	if len(all) != records || forks != 0 {
		t.Errorf("trail has %d entries (%d forks), want %d and 0", len(all), forks, records)
	}
	if b := audit.VerifyEntries(all, "", 1); b != nil {
		t.Errorf("trail written by %d writers is broken at seq %d: %s", auditWriters, b.Seq, b.Reason)
	}
	b, checked, err := trails[0].Verify(ctx, "o1")
	must(t, "Trail.Verify", err)
	if b != nil || checked != int64(records) {
		t.Errorf("Trail.Verify = %+v after %d entries, want intact after %d", b, checked, records)
	}
}

// testCreateSameKeyConcurrent is H3: 50 goroutines create a record with the
// same unique key at once; exactly one succeeds, the others get
// ErrConflict, and exactly one record is stored.
func testCreateSameKeyConcurrent(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	seedOrg(t, s, "o1", "acme")
	cases := []struct {
		name   string
		create func(i int) error
		count  func() (int, error)
	}{
		{"org name", func(i int) error {
			return s.CreateOrg(ctx, state.Org{ID: fmt.Sprintf("org-%02d", i), Name: "same", CreatedAt: base})
		}, func() (int, error) {
			orgs, err := s.ListOrgs(ctx)
			n := 0
			for _, o := range orgs {
				if o.Name == "same" {
					n++
				}
			}
			return n, err
		}},
		{"environment name", func(i int) error {
			return s.CreateEnvironment(ctx, state.Environment{ID: fmt.Sprintf("env-%02d", i), OrgID: "o1", Name: "Prod", CreatedAt: base})
		}, func() (int, error) {
			envs, err := s.ListEnvironments(ctx, "o1")
			return len(envs), err
		}},
		{"username", func(i int) error {
			return s.CreateUser(ctx, user(fmt.Sprintf("u-%02d", i), "o1", "ada"))
		}, func() (int, error) {
			users, err := s.ListUsers(ctx, "o1")
			return len(users), err
		}},
		{"token hash", func(i int) error {
			return s.CreateAPIToken(ctx, state.APIToken{ID: fmt.Sprintf("t-%02d", i), Hash: "h-same", OrgID: "o1", UserID: "u1", Name: "ci", CreatedAt: base})
		}, func() (int, error) {
			toks, err := s.ListAPITokens(ctx, "o1", "")
			return len(toks), err
		}},
		{"role binding scope", func(i int) error {
			return s.CreateRoleBinding(ctx, state.RoleBinding{ID: fmt.Sprintf("rb-%02d", i), OrgID: "o1", UserID: "u1",
				Scope: state.ScopeOrganization, Role: "ADMIN", CreatedAt: base})
		}, func() (int, error) {
			bs, err := s.ListRoleBindings(ctx, state.RoleBindingFilter{OrgID: "o1"})
			return len(bs), err
		}},
		{"audit seq", func(i int) error {
			return s.AppendAudit(ctx, state.AuditEntry{OrgID: "o1", Seq: 1, Time: base, Event: "E", Actor: fmt.Sprint(i), Hash: fmt.Sprint("h", i)})
		}, func() (int, error) {
			es, err := s.ListAudit(ctx, state.AuditFilter{OrgID: "o1"})
			return len(es), err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := race(racers, tc.create)
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, state.ErrConflict):
					t.Errorf("create %d: %v, want ErrConflict", i, err)
				}
			}
			n, err := tc.count()
			must(t, "count", err)
			if wins != 1 || n != 1 {
				t.Errorf("%d of %d concurrent creates succeeded and %d records are stored; want 1 and 1", wins, racers, n)
			}
		})
	}
}
