package storetest

import (
	"fmt"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

func testListPromotions(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	from := func(st ...protocol.PromotionStatus) []protocol.PromotionStatus { return st }
	mk := func(id, org, src, dst, api, cross string, created time.Duration) state.Promotion {
		p := promotion(id, dst, cross)
		p.OrgID, p.SourceEnvID, p.APIID, p.CreatedAt, p.UpdatedAt = org, src, api, at(created), at(created)
		return p
	}
	fixtures := []struct {
		p       state.Promotion
		updates []state.PromotionUpdate
	}{
		{p: mk("p1", "o1", "dev", "qa", "a1", "c1", 1*time.Minute)},
		{p: mk("p2", "o1", "dev", "prod", "a1", "c1", 2*time.Minute), updates: []state.PromotionUpdate{
			{From: from(created), To: toBeValid, Delivered: true, At: at(time.Hour)},
		}},
		{p: mk("p3", "o1", "qa", "prod", "a2", "c2", 3*time.Minute), updates: []state.PromotionUpdate{
			{From: from(created), To: toBeValid, Delivered: true, At: at(time.Hour)},
			{From: from(toBeValid), To: accepted, At: at(time.Hour)},
		}},
		{p: mk("p4", "o1", "dev", "qa", "a3", "c3", 4*time.Minute), updates: []state.PromotionUpdate{
			{From: from(created), To: rejected, At: at(time.Hour)},
			{From: terminal, Notified: true, At: at(time.Hour)},
		}},
		{p: mk("p5", "o2", "x", "y", "a1", "c1", 5*time.Minute)},
		// Created with p3: ties are broken by id.
		{p: mk("p6", "o1", "dev", "qa", "a4", "c4", 3*time.Minute), updates: []state.PromotionUpdate{
			{From: from(created), To: errored, At: at(time.Hour)},
		}},
	}
	want := map[string]state.Promotion{}
	for _, f := range fixtures {
		seedPromotion(t, s, f.p)
		p := f.p
		for _, u := range f.updates {
			p = update(t, s, p.ID, u)
		}
		want[p.ID] = p
	}

	for _, tc := range []struct {
		name string
		f    state.PromotionFilter
		want []string
	}{
		{"all, newest first", state.PromotionFilter{}, []string{"p5", "p4", "p3", "p6", "p2", "p1"}},
		{"org", state.PromotionFilter{OrgID: "o1"}, []string{"p4", "p3", "p6", "p2", "p1"}},
		{"status", state.PromotionFilter{Status: from(accepted, rejected)}, []string{"p4", "p3"}},
		{"api", state.PromotionFilter{APIID: "a1"}, []string{"p5", "p2", "p1"}},
		{"cross id", state.PromotionFilter{CrossID: "c1"}, []string{"p5", "p2", "p1"}},
		{"source", state.PromotionFilter{SourceEnvID: "qa"}, []string{"p3"}},
		{"target", state.PromotionFilter{TargetEnvID: "qa"}, []string{"p4", "p6", "p1"}},
		{"env as source or target", state.PromotionFilter{EnvID: "qa"}, []string{"p4", "p3", "p6", "p1"}},
		{"any of envs", state.PromotionFilter{AnyEnvIDs: []string{"prod", "y"}}, []string{"p5", "p3", "p2"}},
		{"any of envs, one", state.PromotionFilter{AnyEnvIDs: []string{"qa"}}, []string{"p4", "p3", "p6", "p1"}},
		{"any of envs and org", state.PromotionFilter{OrgID: "o1", AnyEnvIDs: []string{"x", "prod"}}, []string{"p3", "p2"}},
		{"any of envs, none match", state.PromotionFilter{AnyEnvIDs: []string{"nowhere"}}, nil},
		{"undelivered", state.PromotionFilter{Undelivered: true}, []string{"p5", "p1"}},
		{"unnotified", state.PromotionFilter{Unnotified: true}, []string{"p3", "p6"}},
		{"undelivered in org", state.PromotionFilter{OrgID: "o1", Undelivered: true}, []string{"p1"}},
		{"status and undelivered", state.PromotionFilter{Status: from(toBeValid), Undelivered: true}, nil},
		{"status and unnotified", state.PromotionFilter{Status: from(accepted), Unnotified: true}, []string{"p3"}},
		{"combined", state.PromotionFilter{OrgID: "o1", APIID: "a1", TargetEnvID: "prod"}, []string{"p2"}},
		{"updated since", state.PromotionFilter{UpdatedSince: at(time.Hour)}, []string{"p4", "p3", "p6", "p2"}},
		{"updated since, inclusive", state.PromotionFilter{UpdatedSince: at(5 * time.Minute)}, []string{"p5", "p4", "p3", "p6", "p2"}},
		{"updated since and org", state.PromotionFilter{OrgID: "o2", UpdatedSince: at(time.Hour)}, nil},
		{"no match", state.PromotionFilter{OrgID: "o9"}, nil},
		{"limit", state.PromotionFilter{Limit: 2}, []string{"p5", "p4"}},
		{"limit and offset", state.PromotionFilter{Limit: 2, Offset: 2}, []string{"p3", "p6"}},
		{"offset past the end", state.PromotionFilter{Offset: 10}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListPromotions(ctx, tc.f)
			must(t, "ListPromotions", err)
			var wantPs []state.Promotion
			for _, id := range tc.want {
				p := want[id]
				p.Definition = nil // lists leave definitions out
				wantPs = append(wantPs, p)
			}
			diff(t, "ListPromotions", wantPs, got)
		})
	}
}

// entry returns audit entry seq of org.
func entry(org string, seq int64) state.AuditEntry {
	e := state.AuditEntry{
		OrgID: org, Seq: seq, Time: at(time.Duration(seq) * time.Minute),
		Event: "promotion.created", Actor: "alice", EnvID: "e1", PromotionID: fmt.Sprintf("p%d", seq),
		Detail: "detail", PrevHash: fmt.Sprintf("%s-h%d", org, seq-1), Hash: fmt.Sprintf("%s-h%d", org, seq),
	}
	if seq == 1 {
		e.PrevHash = ""
	}
	return e
}

func testAudit(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	_, err := s.LastAudit(ctx, "o1")
	checkErr(t, "LastAudit(empty trail)", err, state.ErrNotFound)
	e1, e2 := entry("o1", 1), entry("o1", 2)
	e2.Time = at(2*time.Minute + 700*time.Microsecond) // stored to the millisecond
	for _, e := range []state.AuditEntry{e1, e2, entry("o2", 1)} {
		must(t, "AppendAudit", s.AppendAudit(ctx, e))
	}
	e2.Time = at(2 * time.Minute)
	dup := entry("o1", 2)
	dup.Hash = "fork"
	checkErr(t, "AppendAudit(duplicate seq)", s.AppendAudit(ctx, dup), state.ErrConflict)
	got, err := s.LastAudit(ctx, "o1")
	checkErr(t, "LastAudit", err, nil)
	diff(t, "LastAudit", e2, got)
	checkUTC(t, "LastAudit", got.Time)
	list, err := s.ListAudit(ctx, state.AuditFilter{OrgID: "o1"})
	checkErr(t, "ListAudit", err, nil)
	diff(t, "ListAudit", []state.AuditEntry{e1, e2}, list)
}

func testListAudit(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	all := map[string]state.AuditEntry{}
	add := func(e state.AuditEntry) {
		must(t, "AppendAudit", s.AppendAudit(ctx, e))
		all[fmt.Sprintf("%s/%d", e.OrgID, e.Seq)] = e
	}
	for seq := int64(1); seq <= 5; seq++ {
		e := entry("o1", seq)
		if seq%2 == 0 {
			e.Event, e.Actor, e.EnvID = "promotion.accepted", "bob", "e2"
		}
		add(e)
	}
	add(entry("o2", 1))
	add(entry("o2", 2))

	for _, tc := range []struct {
		name string
		f    state.AuditFilter
		want []string
	}{
		{"all, by seq then org", state.AuditFilter{}, []string{"o1/1", "o2/1", "o1/2", "o2/2", "o1/3", "o1/4", "o1/5"}},
		{"org", state.AuditFilter{OrgID: "o2"}, []string{"o2/1", "o2/2"}},
		{"promotion", state.AuditFilter{OrgID: "o1", PromotionID: "p3"}, []string{"o1/3"}},
		{"env", state.AuditFilter{EnvID: "e2"}, []string{"o1/2", "o1/4"}},
		{"event", state.AuditFilter{OrgID: "o1", Event: "promotion.created"}, []string{"o1/1", "o1/3", "o1/5"}},
		{"actor", state.AuditFilter{Actor: "bob"}, []string{"o1/2", "o1/4"}},
		{"since is inclusive", state.AuditFilter{OrgID: "o1", Since: at(4 * time.Minute)}, []string{"o1/4", "o1/5"}},
		{"until is exclusive", state.AuditFilter{OrgID: "o1", Until: at(2 * time.Minute)}, []string{"o1/1"}},
		{"since and until", state.AuditFilter{OrgID: "o1", Since: at(2 * time.Minute), Until: at(4*time.Minute + time.Millisecond)}, []string{"o1/2", "o1/3", "o1/4"}},
		{"after seq", state.AuditFilter{OrgID: "o1", AfterSeq: 3}, []string{"o1/4", "o1/5"}},
		{"limit", state.AuditFilter{OrgID: "o1", AfterSeq: 1, Limit: 2}, []string{"o1/2", "o1/3"}},
		{"no match", state.AuditFilter{OrgID: "o1", Actor: "carol"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListAudit(ctx, tc.f)
			must(t, "ListAudit", err)
			var want []state.AuditEntry
			for _, k := range tc.want {
				want = append(want, all[k])
			}
			diff(t, "ListAudit", want, got)
		})
	}
}

// testListLimits checks the default page size of both lists.
func testListLimits(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	const n = 101
	for i := range n {
		p := promotion(fmt.Sprintf("p%03d", i), "prod", fmt.Sprintf("c%03d", i))
		p.CreatedAt = at(time.Duration(i) * time.Second)
		seedPromotion(t, s, p)
		must(t, "AppendAudit", s.AppendAudit(ctx, entry("o1", int64(i+1))))
	}
	ps, err := s.ListPromotions(ctx, state.PromotionFilter{})
	must(t, "ListPromotions", err)
	if len(ps) != 100 || ps[0].ID != "p100" || ps[99].ID != "p001" {
		t.Errorf("ListPromotions without a limit returned %d promotions, want the newest 100", len(ps))
	}
	es, err := s.ListAudit(ctx, state.AuditFilter{OrgID: "o1"})
	must(t, "ListAudit", err)
	if len(es) != 100 || es[0].Seq != 1 || es[99].Seq != 100 {
		t.Errorf("ListAudit without a limit returned %d entries, want seq 1 to 100", len(es))
	}
	es, err = s.ListAudit(ctx, state.AuditFilter{OrgID: "o1", Limit: -1, AfterSeq: 100})
	must(t, "ListAudit", err)
	if len(es) != 1 || es[0].Seq != 101 {
		t.Errorf("ListAudit after 100 returned %d entries, want seq 101", len(es))
	}
}
