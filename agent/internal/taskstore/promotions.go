package taskstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Promotion is the local copy of a promotion from or to this environment,
// as the hub last described it.
type Promotion struct {
	ID            string
	OrgID         string
	SourceEnvID   string
	SourceEnvName string
	TargetEnvID   string
	TargetEnvName string
	APIID         string
	CrossID       string
	APIName       string
	APIVersion    string
	Requester     string
	Status        string
	// Terminal is true when Status never changes again.
	Terminal    bool
	TargetAPIID string
	Reason      string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// UpsertPromotions stores ps in one transaction. A stored promotion is
// replaced only by a description at least as recent (UpdatedAt), and a
// terminal status is never replaced by a non-terminal one, so a late or
// replayed update cannot move a promotion backwards.
func (s *Store) UpsertPromotions(ctx context.Context, ps ...Promotion) error {
	if len(ps) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO promotions (id, org_id, source_env_id, source_env_name,
			target_env_id, target_env_name, api_id, cross_id, api_name, api_version, requester, status, terminal,
			target_api_id, reason, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				org_id = excluded.org_id, source_env_id = excluded.source_env_id,
				source_env_name = excluded.source_env_name, target_env_id = excluded.target_env_id,
				target_env_name = excluded.target_env_name, api_id = excluded.api_id,
				cross_id = excluded.cross_id, api_name = excluded.api_name,
				api_version = excluded.api_version, requester = excluded.requester,
				status = excluded.status, terminal = excluded.terminal,
				target_api_id = excluded.target_api_id, reason = excluded.reason,
				created_at = excluded.created_at, updated_at = excluded.updated_at
			WHERE excluded.updated_at >= promotions.updated_at
				AND (promotions.terminal = 0 OR excluded.terminal = 1)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, p := range ps {
			if p.ID == "" {
				continue
			}
			if _, err := st.ExecContext(ctx, p.ID, p.OrgID, p.SourceEnvID, p.SourceEnvName, p.TargetEnvID, p.TargetEnvName,
				p.APIID, p.CrossID, p.APIName, p.APIVersion, p.Requester, p.Status, boolInt(p.Terminal),
				p.TargetAPIID, p.Reason, nanos(p.CreatedAt), nanos(p.UpdatedAt)); err != nil {
				return fmt.Errorf("promotion %s: %w", p.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store promotions: %w", err)
	}
	return nil
}

// PromotionFilter selects promotions.
type PromotionFilter struct {
	// Status keeps only promotions in this status; empty keeps all.
	Status string
	// Limit caps the result; zero or less means 100.
	Limit int
}

// Promotions returns the stored promotions matching f, newest first.
func (s *Store) Promotions(ctx context.Context, f PromotionFilter) ([]Promotion, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, org_id, source_env_id, source_env_name, target_env_id,
		target_env_name, api_id, cross_id, api_name, api_version, requester, status, terminal, target_api_id,
		reason, created_at, updated_at FROM promotions
		WHERE (? = '' OR status = ?) ORDER BY created_at DESC, id DESC LIMIT ?`, f.Status, f.Status, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list promotions: %w", err)
	}
	defer rows.Close()
	out := []Promotion{}
	for rows.Next() {
		var p Promotion
		var terminal int
		var created, updated int64
		if err := rows.Scan(&p.ID, &p.OrgID, &p.SourceEnvID, &p.SourceEnvName, &p.TargetEnvID, &p.TargetEnvName,
			&p.APIID, &p.CrossID, &p.APIName, &p.APIVersion, &p.Requester, &p.Status, &terminal, &p.TargetAPIID,
			&p.Reason, &created, &updated); err != nil {
			return nil, fmt.Errorf("list promotions: %w", err)
		}
		p.Terminal, p.CreatedAt, p.UpdatedAt = terminal == 1, fromNanos(created), fromNanos(updated)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list promotions: %w", err)
	}
	return out, nil
}
