package storetest

import (
	"errors"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
)

// testAuditAnchors checks the audit anchors (row E7): (OrgID, Seq) is
// unique, lists are per organization in Seq order, and the last is found.
func testAuditAnchors(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	_, err := s.LastAuditAnchor(ctx, "o1")
	checkErr(t, "LastAuditAnchor of an empty store", err, state.ErrNotFound)
	var want []state.AuditAnchor
	for i, seq := range []int64{3, 10, 42} {
		a := state.AuditAnchor{OrgID: "o1", Seq: seq, Hash: "h", Time: at(time.Duration(i) * time.Hour), KeyID: "k", Signature: "sig"}
		if i > 0 {
			a.PrevSig = want[i-1].Signature
		}
		a.Signature = "sig" + a.Hash + string(rune('a'+i))
		must(t, "AppendAuditAnchor", s.AppendAuditAnchor(ctx, a))
		want = append(want, a)
	}
	must(t, "AppendAuditAnchor(o2)", s.AppendAuditAnchor(ctx, state.AuditAnchor{OrgID: "o2", Seq: 3, Hash: "x", Time: base, KeyID: "k", Signature: "s"}))
	err = s.AppendAuditAnchor(ctx, state.AuditAnchor{OrgID: "o1", Seq: 10, Hash: "forged", Time: base, Signature: "s"})
	if !errors.Is(err, state.ErrConflict) {
		t.Errorf("AppendAuditAnchor on a taken seq: %v, want ErrConflict", err)
	}
	got, err := s.ListAuditAnchors(ctx, "o1", 0, 0)
	must(t, "ListAuditAnchors", err)
	diff(t, "anchors", want, got)
	got, err = s.ListAuditAnchors(ctx, "o1", 3, 1)
	must(t, "ListAuditAnchors after 3", err)
	diff(t, "anchors after seq 3, limit 1", want[1:2], got)
	last, err := s.LastAuditAnchor(ctx, "o1")
	must(t, "LastAuditAnchor", err)
	diff(t, "last anchor", want[2], last)
	checkUTC(t, "anchor time", last.Time)
}
