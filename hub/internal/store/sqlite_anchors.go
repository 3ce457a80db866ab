package store

import (
	"context"
	"database/sql"
	"fmt"

	"ferry.dev/hub/internal/state"
)

// Audit anchors.

const anchorColumns = `org_id, seq, hash, time, prev_sig, key_id, signature`

func scanAnchor(r rowScanner) (state.AuditAnchor, error) {
	var a state.AuditAnchor
	var t sql.NullInt64
	err := r.Scan(&a.OrgID, &a.Seq, &a.Hash, &t, &a.PrevSig, &a.KeyID, &a.Signature)
	a.Time = fromSQLTime(t)
	return a, err
}

// AppendAuditAnchor implements state.Store.
func (s *SQLite) AppendAuditAnchor(ctx context.Context, a state.AuditAnchor) error {
	a.Time = msTime(a.Time)
	_, err := s.w.ExecContext(ctx, `INSERT INTO audit_anchors (`+anchorColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		a.OrgID, a.Seq, a.Hash, sqlTime(a.Time), a.PrevSig, a.KeyID, a.Signature)
	return s.err(fmt.Sprintf("append audit anchor %s/%d", a.OrgID, a.Seq), err)
}

// ListAuditAnchors implements state.Store.
func (s *SQLite) ListAuditAnchors(ctx context.Context, orgID string, afterSeq int64, limit int) ([]state.AuditAnchor, error) {
	return queryAll(ctx, s, "list audit anchors", scanAnchor,
		`SELECT `+anchorColumns+` FROM audit_anchors WHERE org_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
		orgID, afterSeq, pageLimit(limit))
}

// LastAuditAnchor implements state.Store.
func (s *SQLite) LastAuditAnchor(ctx context.Context, orgID string) (state.AuditAnchor, error) {
	a, err := scanAnchor(s.r.QueryRowContext(ctx,
		`SELECT `+anchorColumns+` FROM audit_anchors WHERE org_id = ? ORDER BY seq DESC LIMIT 1`, orgID))
	return a, s.err("last audit anchor of "+orgID, err)
}
