package store

import (
	"context"
	"database/sql"
	"fmt"

	"ferry.dev/hub/internal/state"
)

// RecordConnection implements state.Store: one transaction appends the
// event and trims the installation's history to MaxConnectionEvents.
func (s *SQLite) RecordConnection(ctx context.Context, e state.ConnectionEvent) error {
	if e.InstallationID == "" || e.Event == "" {
		return fmt.Errorf("record connection: %w: need an installation and an event", errInvalid)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.err("record connection", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO connection_events (installation_id, org_id, at, event, reason, remote) VALUES (?, ?, ?, ?, ?, ?)`,
		e.InstallationID, e.OrgID, msTime(e.At).UnixMilli(), e.Event, e.Reason, e.Remote); err != nil {
		return s.err("record connection", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM connection_events WHERE installation_id = ? AND id NOT IN
		(SELECT id FROM connection_events WHERE installation_id = ? ORDER BY at DESC, id DESC LIMIT ?)`,
		e.InstallationID, e.InstallationID, state.MaxConnectionEvents); err != nil {
		return s.err("trim connection history", err)
	}
	return s.err("record connection", tx.Commit())
}

// ListConnections implements state.Store.
func (s *SQLite) ListConnections(ctx context.Context, installationID string, limit int) ([]state.ConnectionEvent, error) {
	return queryAll(ctx, s, "list connections", scanConnection,
		`SELECT installation_id, org_id, at, event, reason, remote FROM connection_events
		 WHERE installation_id = ? ORDER BY at DESC, id DESC LIMIT ?`, installationID, pageLimit(limit))
}

func scanConnection(r rowScanner) (state.ConnectionEvent, error) {
	var e state.ConnectionEvent
	var at sql.NullInt64
	err := r.Scan(&e.InstallationID, &e.OrgID, &at, &e.Event, &e.Reason, &e.Remote)
	e.At = fromSQLTime(at)
	return e, err
}
