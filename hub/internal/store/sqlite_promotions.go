package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// Promotions.

// promotionFields are a promotion's columns in scan order, with %s where
// the definition goes: it lives in promotion_definitions.
const promotionFields = `id, org_id, source_env_id, target_env_id, api_id, cross_id, api_name, api_version,
	%s requester, status, delivered, notified, target_api_id, reason,
	created_at, updated_at, delivered_at, decided_at, requester_id, idempotency_key, request_hash`

var (
	// promotionColumns select a promotion with its definition.
	promotionColumns = fmt.Sprintf(promotionFields, "(SELECT definition FROM promotion_definitions d WHERE d.promotion_id = promotions.id) AS definition,")
	// listColumns select one without (NULL in its place): lists never
	// carry it (state.Store.ListPromotions).
	listColumns = fmt.Sprintf(promotionFields, "NULL AS definition,")
	// insertColumns are the columns of the promotions table.
	insertColumns = fmt.Sprintf(promotionFields, "")
)

func scanPromotion(r rowScanner) (state.Promotion, error) {
	var p state.Promotion
	var created, updated, delivered, decided sql.NullInt64
	err := r.Scan(&p.ID, &p.OrgID, &p.SourceEnvID, &p.TargetEnvID, &p.APIID, &p.CrossID, &p.APIName, &p.APIVersion,
		&p.Definition, &p.Requester, &p.Status, &p.Delivered, &p.Notified, &p.TargetAPIID, &p.Reason,
		&created, &updated, &delivered, &decided, &p.RequesterID, &p.IdempotencyKey, &p.RequestHash)
	if len(p.Definition) == 0 {
		p.Definition = nil
	}
	p.CreatedAt, p.UpdatedAt = fromSQLTime(created), fromSQLTime(updated)
	p.DeliveredAt, p.DecidedAt = fromSQLTime(delivered), fromSQLTime(decided)
	return p, err
}

// CreatePromotion implements state.Store.
func (s *SQLite) CreatePromotion(ctx context.Context, p state.Promotion) (string, error) {
	return createPromotion(ctx, s, s.log, p)
}

// insertPromotion is a promotionLocks primitive: the promotion and its
// definition, in one transaction.
func (s *SQLite) insertPromotion(ctx context.Context, p state.Promotion) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.err("insert promotion "+p.ID, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO promotions (`+insertColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.OrgID, p.SourceEnvID, p.TargetEnvID, p.APIID, p.CrossID, p.APIName, p.APIVersion,
		p.Requester, string(p.Status), sqlBool(p.Delivered), sqlBool(p.Notified), p.TargetAPIID, p.Reason,
		sqlTime(p.CreatedAt), sqlTime(p.UpdatedAt), sqlTime(p.DeliveredAt), sqlTime(p.DecidedAt), p.RequesterID,
		p.IdempotencyKey, p.RequestHash); err != nil {
		return s.err("insert promotion "+p.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO promotion_definitions (promotion_id, definition) VALUES (?, ?)`, p.ID, []byte(p.Definition)); err != nil {
		return s.err("insert promotion "+p.ID, err)
	}
	return s.err("insert promotion "+p.ID, tx.Commit())
}

// Promotion implements state.Store.
func (s *SQLite) Promotion(ctx context.Context, id string) (state.Promotion, error) {
	p, err := scanPromotion(s.r.QueryRowContext(ctx, `SELECT `+promotionColumns+` FROM promotions WHERE id = ?`, id))
	return p, s.err("get promotion "+id, err)
}

// PromotionByIdempotencyKey implements state.Store.
func (s *SQLite) PromotionByIdempotencyKey(ctx context.Context, orgID, key string) (state.Promotion, error) {
	if key == "" {
		return state.Promotion{}, fmt.Errorf("get promotion by idempotency key: %w", state.ErrNotFound)
	}
	p, err := scanPromotion(s.r.QueryRowContext(ctx,
		`SELECT `+promotionColumns+` FROM promotions WHERE org_id = ? AND idempotency_key = ?`, orgID, key))
	return p, s.err("get promotion by idempotency key", err)
}

// sqlWhere accumulates the conditions of a WHERE clause.
type sqlWhere struct {
	conds []string
	args  []any
}

// add appends cond, whose placeholders take args.
func (w *sqlWhere) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

// eq adds column = v unless v is empty.
func (w *sqlWhere) eq(column, v string) {
	if v != "" {
		w.add(column+" = ?", v)
	}
}

// in adds column IN (statuses) unless statuses is empty.
func (w *sqlWhere) in(column string, statuses []protocol.PromotionStatus) {
	if len(statuses) == 0 {
		return
	}
	args := make([]any, len(statuses))
	for i, st := range statuses {
		args[i] = string(st)
	}
	w.add(column+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ")+")", args...)
}

// anyOf adds (a IN (vs) OR b IN (vs)) unless vs is empty.
func (w *sqlWhere) anyOf(a, b string, vs []string) {
	if len(vs) == 0 {
		return
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(vs)), ", ")
	args := make([]any, 0, 2*len(vs))
	for range 2 {
		for _, v := range vs {
			args = append(args, v)
		}
	}
	w.add("("+a+" IN ("+marks+") OR "+b+" IN ("+marks+"))", args...)
}

// String returns the WHERE clause, or nothing when there is no condition.
func (w *sqlWhere) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// ListPromotions implements state.Store.
func (s *SQLite) ListPromotions(ctx context.Context, f state.PromotionFilter) ([]state.Promotion, error) {
	var w sqlWhere
	w.eq("org_id", f.OrgID)
	w.in("status", f.Status)
	w.eq("api_id", f.APIID)
	w.eq("cross_id", f.CrossID)
	w.eq("source_env_id", f.SourceEnvID)
	w.eq("target_env_id", f.TargetEnvID)
	if f.EnvID != "" {
		w.add("(source_env_id = ? OR target_env_id = ?)", f.EnvID, f.EnvID)
	}
	w.anyOf("source_env_id", "target_env_id", f.AnyEnvIDs)
	if f.Undelivered {
		w.add("status = ? AND delivered = 0", string(protocol.PromotionCreated))
	}
	if f.Unnotified {
		w.in("status", terminalStatuses)
		w.add("notified = 0")
	}
	if !f.UpdatedSince.IsZero() {
		w.add("updated_at >= ?", f.UpdatedSince.UnixMilli())
	}
	args := append(w.args, pageLimit(f.Limit), max(f.Offset, 0))
	return queryAll(ctx, s, "list promotions", scanPromotion,
		`SELECT `+listColumns+` FROM promotions`+w.String()+` ORDER BY created_at DESC, id LIMIT ? OFFSET ?`,
		args...)
}

// CountUndelivered implements state.Store; the status index narrows it to
// the promotions not yet delivered anywhere.
func (s *SQLite) CountUndelivered(ctx context.Context, targetEnvID string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM promotions WHERE status = ? AND delivered = 0 AND target_env_id = ?`,
		string(protocol.PromotionCreated), targetEnvID).Scan(&n)
	return n, s.err("count undelivered promotions to "+targetEnvID, err)
}

// UpdatePromotion implements state.Store with one conditional UPDATE.
func (s *SQLite) UpdatePromotion(ctx context.Context, id string, u state.PromotionUpdate) (state.Promotion, error) {
	u, err := checkUpdate(u)
	if err != nil {
		return state.Promotion{}, fmt.Errorf("update promotion %s: %w", id, err)
	}
	if len(u.From) > 0 {
		sets := []string{"updated_at = ?"}
		args := []any{u.At.UnixMilli()}
		if u.To != "" {
			sets = append(sets, "status = ?")
			args = append(args, string(u.To))
			if u.To.Terminal() {
				sets = append(sets, "decided_at = ?")
				args = append(args, u.At.UnixMilli())
			}
		}
		if u.Delivered {
			sets = append(sets, "delivered = 1", "delivered_at = ?")
			args = append(args, u.At.UnixMilli())
		}
		if u.Notified {
			sets = append(sets, "notified = 1")
		}
		if u.TargetAPIID != "" {
			sets = append(sets, "target_api_id = ?")
			args = append(args, u.TargetAPIID)
		}
		if u.Reason != "" {
			sets = append(sets, "reason = ?")
			args = append(args, u.Reason)
		}
		var w sqlWhere
		w.eq("id", id)
		w.in("status", u.From)
		p, err := scanPromotion(s.w.QueryRowContext(ctx,
			`UPDATE promotions SET `+strings.Join(sets, ", ")+w.String()+` RETURNING `+listColumns,
			append(args, w.args...)...))
		if err == nil {
			releaseLock(ctx, s, s.log, p)
			// The definition never changes after creation.
			if err := s.w.QueryRowContext(ctx, `SELECT definition FROM promotion_definitions WHERE promotion_id = ?`, id).Scan(&p.Definition); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return state.Promotion{}, s.err("update promotion "+id+": read its definition", err)
			}
			if len(p.Definition) == 0 {
				p.Definition = nil
			}
			return p, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return state.Promotion{}, s.err("update promotion "+id, err)
		}
	}
	p, err := s.Promotion(ctx, id)
	if err != nil {
		return state.Promotion{}, fmt.Errorf("update promotion: %w", err)
	}
	return state.Promotion{}, fmt.Errorf("update promotion %s: status is %s, not one of %v: %w", id, p.Status, u.From, state.ErrConflict)
}

// Audit.

const auditColumns = `org_id, seq, time, event, actor, env_id, promotion_id, detail, prev_hash, hash`

func scanAudit(r rowScanner) (state.AuditEntry, error) {
	var e state.AuditEntry
	var t sql.NullInt64
	err := r.Scan(&e.OrgID, &e.Seq, &t, &e.Event, &e.Actor, &e.EnvID, &e.PromotionID, &e.Detail, &e.PrevHash, &e.Hash)
	e.Time = fromSQLTime(t)
	return e, err
}

// AppendAudit implements state.Store.
func (s *SQLite) AppendAudit(ctx context.Context, e state.AuditEntry) error {
	e = normAudit(e)
	_, err := s.w.ExecContext(ctx, `INSERT INTO audit (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.OrgID, e.Seq, sqlTime(e.Time), e.Event, e.Actor, e.EnvID, e.PromotionID, e.Detail, e.PrevHash, e.Hash)
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_TRIGGER {
		// The audit_no_replace trigger: (OrgID, Seq) is taken.
		return fmt.Errorf("append audit %s/%d: %w: %w", e.OrgID, e.Seq, state.ErrConflict, err)
	}
	return s.err(fmt.Sprintf("append audit %s/%d", e.OrgID, e.Seq), err)
}

// LastAudit implements state.Store.
func (s *SQLite) LastAudit(ctx context.Context, orgID string) (state.AuditEntry, error) {
	e, err := scanAudit(s.r.QueryRowContext(ctx,
		`SELECT `+auditColumns+` FROM audit WHERE org_id = ? ORDER BY seq DESC LIMIT 1`, orgID))
	return e, s.err("last audit of "+orgID, err)
}

// ListAudit implements state.Store. Since is inclusive, Until exclusive.
// Without OrgID, entries of different organizations with the same Seq are
// ordered by OrgID.
func (s *SQLite) ListAudit(ctx context.Context, f state.AuditFilter) ([]state.AuditEntry, error) {
	var w sqlWhere
	w.eq("org_id", f.OrgID)
	w.eq("promotion_id", f.PromotionID)
	w.eq("env_id", f.EnvID)
	w.eq("event", f.Event)
	w.eq("actor", f.Actor)
	if !f.Since.IsZero() {
		w.add("time >= ?", msTime(f.Since).UnixMilli())
	}
	if !f.Until.IsZero() {
		w.add("time < ?", msTime(f.Until).UnixMilli())
	}
	if f.AfterSeq > 0 {
		w.add("seq > ?", f.AfterSeq)
	}
	return queryAll(ctx, s, "list audit", scanAudit,
		`SELECT `+auditColumns+` FROM audit`+w.String()+` ORDER BY seq, org_id LIMIT ?`,
		append(w.args, pageLimit(f.Limit))...)
}
