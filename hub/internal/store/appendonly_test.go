package store

import (
	"strings"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
)

// TestSQLiteAuditAppendOnly is E4 of shared/reference/reliability.md for
// the embedded store: the database itself refuses to update or delete an
// audit entry, whoever asks (even raw SQL on the hub's own connection),
// while appending still works.
func TestSQLiteAuditAppendOnly(t *testing.T) {
	s := openSQLite(t)
	ctx := t.Context()
	e := state.AuditEntry{OrgID: "o1", Seq: 1, Time: time.Now(), Event: "PROMOTION_CREATED", Actor: "alice", Detail: "original", Hash: "h1"}
	if err := s.AppendAudit(ctx, e); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE audit SET detail = 'rewritten' WHERE org_id = 'o1' AND seq = 1`,
		`UPDATE audit SET hash = 'forged'`,
		`DELETE FROM audit WHERE org_id = 'o1' AND seq = 1`,
		`DELETE FROM audit`,
		`INSERT OR REPLACE INTO audit (org_id, seq, time, event, actor, env_id, promotion_id, detail, prev_hash, hash)
		 VALUES ('o1', 1, 0, 'X', 'mallory', '', '', 'replaced', '', 'forged')`,
	} {
		_, err := s.w.ExecContext(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want an append-only refusal", strings.Fields(q)[0], err)
		}
	}
	if err := s.AppendAudit(ctx, state.AuditEntry{OrgID: "o1", Seq: 2, Time: time.Now(), Event: "E", PrevHash: "h1", Hash: "h2"}); err != nil {
		t.Errorf("append after the refusals: %v", err)
	}
	got, err := s.ListAudit(ctx, state.AuditFilter{OrgID: "o1"})
	if err != nil || len(got) != 2 || got[0].Detail != "original" || got[0].Hash != "h1" {
		t.Errorf("trail after the refusals: %+v, %v; want the original entry and the new one", got, err)
	}
}
