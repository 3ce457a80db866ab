package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"ferry.dev/hub/internal/state"
)

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// queryAll runs a query on the read pool and scans every row with scan.
func queryAll[T any](ctx context.Context, s *SQLite, what string, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.err(what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.err(what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.err(what, err)
	}
	return out, nil
}

// Organizations.

const orgColumns = `id, name, created_at`

func scanOrg(r rowScanner) (state.Org, error) {
	var o state.Org
	var created sql.NullInt64
	err := r.Scan(&o.ID, &o.Name, &created)
	o.CreatedAt = fromSQLTime(created)
	return o, err
}

// CreateOrg implements state.Store.
func (s *SQLite) CreateOrg(ctx context.Context, o state.Org) error {
	o = normOrg(o)
	_, err := s.w.ExecContext(ctx, `INSERT INTO orgs (`+orgColumns+`) VALUES (?, ?, ?)`,
		o.ID, o.Name, sqlTime(o.CreatedAt))
	return s.err("create org "+o.Name, err)
}

// Org implements state.Store.
func (s *SQLite) Org(ctx context.Context, idOrName string) (state.Org, error) {
	o, err := scanOrg(s.r.QueryRowContext(ctx,
		`SELECT `+orgColumns+` FROM orgs WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1`, idOrName))
	return o, s.err("get org "+idOrName, err)
}

// ListOrgs implements state.Store.
func (s *SQLite) ListOrgs(ctx context.Context) ([]state.Org, error) {
	return queryAll(ctx, s, "list orgs", scanOrg, `SELECT `+orgColumns+` FROM orgs ORDER BY name`)
}

// Environments.

const envColumns = `id, org_id, name, created_at`

func scanEnvironment(r rowScanner) (state.Environment, error) {
	var e state.Environment
	var created sql.NullInt64
	err := r.Scan(&e.ID, &e.OrgID, &e.Name, &created)
	e.CreatedAt = fromSQLTime(created)
	return e, err
}

// CreateEnvironment implements state.Store. It returns state.ErrNotFound
// when the organization does not exist.
func (s *SQLite) CreateEnvironment(ctx context.Context, e state.Environment) error {
	e = normEnvironment(e)
	_, err := s.w.ExecContext(ctx, `INSERT INTO environments (`+envColumns+`) VALUES (?, ?, ?, ?)`,
		e.ID, e.OrgID, e.Name, sqlTime(e.CreatedAt))
	return s.err("create environment "+e.Name, err)
}

// Environment implements state.Store.
func (s *SQLite) Environment(ctx context.Context, orgID, idOrName string) (state.Environment, error) {
	e, err := scanEnvironment(s.r.QueryRowContext(ctx,
		`SELECT `+envColumns+` FROM environments WHERE org_id = ?1 AND (id = ?2 OR name = ?2)
		 ORDER BY id = ?2 DESC LIMIT 1`, orgID, idOrName))
	return e, s.err("get environment "+idOrName, err)
}

// ListEnvironments implements state.Store.
func (s *SQLite) ListEnvironments(ctx context.Context, orgID string) ([]state.Environment, error) {
	return queryAll(ctx, s, "list environments", scanEnvironment,
		`SELECT `+envColumns+` FROM environments WHERE org_id = ? ORDER BY name`, orgID)
}

// Link tokens.

const linkTokenColumns = `id, org_id, env_id, hash, created_at, expires_at, used_at`

func scanLinkToken(r rowScanner) (state.LinkToken, error) {
	var t state.LinkToken
	var created, expires, used sql.NullInt64
	err := r.Scan(&t.ID, &t.OrgID, &t.EnvID, &t.Hash, &created, &expires, &used)
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromSQLTime(created), fromSQLTime(expires), fromSQLTime(used)
	return t, err
}

// CreateLinkToken implements state.Store. It returns state.ErrConflict on
// a duplicate id or hash.
func (s *SQLite) CreateLinkToken(ctx context.Context, t state.LinkToken) error {
	t = normLinkToken(t)
	_, err := s.w.ExecContext(ctx, `INSERT INTO link_tokens (`+linkTokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.OrgID, t.EnvID, t.Hash, sqlTime(t.CreatedAt), sqlTime(t.ExpiresAt), sqlTime(t.UsedAt))
	return s.err("create link token", err)
}

// ConsumeLinkToken implements state.Store with one conditional UPDATE. A
// token with a zero ExpiresAt never expires; one that is both used and
// expired is reported as used.
func (s *SQLite) ConsumeLinkToken(ctx context.Context, hash string, now time.Time) (state.LinkToken, error) {
	now = msTime(now)
	t, err := scanLinkToken(s.w.QueryRowContext(ctx,
		`UPDATE link_tokens SET used_at = ?1
		 WHERE hash = ?2 AND used_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)
		 RETURNING `+linkTokenColumns, now.UnixMilli(), hash))
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return state.LinkToken{}, s.err("consume link token", err)
	}
	// Nothing matched: tell why.
	t, err = scanLinkToken(s.r.QueryRowContext(ctx,
		`SELECT `+linkTokenColumns+` FROM link_tokens WHERE hash = ?`, hash))
	if err != nil {
		return state.LinkToken{}, s.err("consume link token", err)
	}
	if err := linkTokenUnusable(t, now); err != nil {
		if errors.Is(err, state.ErrConflict) {
			return t, err
		}
		return state.LinkToken{}, err
	}
	// Created after the UPDATE looked for it.
	return state.LinkToken{}, fmt.Errorf("consume link token %s: %w", t.ID, state.ErrNotFound)
}

// linkTokenUnusable explains why t, which exists, cannot be consumed at now.
func linkTokenUnusable(t state.LinkToken, now time.Time) error {
	if !t.UsedAt.IsZero() {
		return fmt.Errorf("consume link token %s: used at %s: %w", t.ID, t.UsedAt.Format(time.RFC3339), state.ErrConflict)
	}
	if !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) {
		return fmt.Errorf("consume link token %s: expired at %s: %w", t.ID, t.ExpiresAt.Format(time.RFC3339), state.ErrNotFound)
	}
	return nil
}

// Installations.

const installationColumns = `id, org_id, env_ids, credential_hash, agent_version, hostname, online, last_seen, created_at, client_key_hash,
	previous_credential_hash, previous_credential_expires_at, credential_rotated_at, credential_pending`

func scanInstallation(r rowScanner) (state.Installation, error) {
	var i state.Installation
	var envIDs string
	var lastSeen, created, prevExpires, rotated sql.NullInt64
	err := r.Scan(&i.ID, &i.OrgID, &envIDs, &i.CredentialHash, &i.AgentVersion, &i.Hostname, &i.Online, &lastSeen, &created, &i.ClientKeyHash,
		&i.PreviousCredentialHash, &prevExpires, &rotated, &i.CredentialPending)
	if err != nil {
		return i, err
	}
	i.PreviousCredentialExpiresAt, i.CredentialRotatedAt = fromSQLTime(prevExpires), fromSQLTime(rotated)
	if err := json.Unmarshal([]byte(envIDs), &i.EnvIDs); err != nil {
		return i, fmt.Errorf("decode env_ids of installation %s: %w", i.ID, err)
	}
	if len(i.EnvIDs) == 0 {
		i.EnvIDs = nil
	}
	i.LastSeen, i.CreatedAt = fromSQLTime(lastSeen), fromSQLTime(created)
	return i, nil
}

// CreateInstallation implements state.Store. It returns state.ErrConflict
// on a duplicate id or credential.
func (s *SQLite) CreateInstallation(ctx context.Context, i state.Installation) error {
	i = normInstallation(i)
	envIDs := i.EnvIDs
	if envIDs == nil {
		envIDs = []string{}
	}
	envJSON, err := json.Marshal(envIDs)
	if err != nil {
		return fmt.Errorf("create installation: %w", err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO installations (`+installationColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		i.ID, i.OrgID, string(envJSON), i.CredentialHash, i.AgentVersion, i.Hostname, sqlBool(i.Online),
		sqlTime(i.LastSeen), sqlTime(i.CreatedAt), i.ClientKeyHash,
		i.PreviousCredentialHash, sqlTime(i.PreviousCredentialExpiresAt), sqlTime(i.CredentialRotatedAt), sqlBool(i.CredentialPending))
	return s.err("create installation", err)
}

// InstallationByCredential implements state.Store. Each hash column has
// its index; an empty hash matches nothing.
func (s *SQLite) InstallationByCredential(ctx context.Context, hash string) (state.Installation, error) {
	if hash == "" {
		return state.Installation{}, fmt.Errorf("get installation by credential: %w", state.ErrNotFound)
	}
	i, err := scanInstallation(s.r.QueryRowContext(ctx,
		`SELECT `+installationColumns+` FROM installations WHERE credential_hash = ?1 OR previous_credential_hash = ?1 LIMIT 1`, hash))
	return i, s.err("get installation by credential", err)
}

// SetInstallationCredential implements state.Store with one conditional
// UPDATE.
func (s *SQLite) SetInstallationCredential(ctx context.Context, id string, from, to state.InstallationCredential) (state.Installation, error) {
	what := "set credential of installation " + id
	i, err := scanInstallation(s.w.QueryRowContext(ctx,
		`UPDATE installations SET credential_hash = ?, previous_credential_hash = ?, previous_credential_expires_at = ?,
		   credential_rotated_at = ?, credential_pending = ?
		 WHERE id = ? AND credential_hash = ? AND credential_pending = ? RETURNING `+installationColumns,
		to.Hash, to.PreviousHash, sqlTime(msTime(to.PreviousExpiresAt)), sqlTime(msTime(to.RotatedAt)), sqlBool(to.Pending),
		id, from.Hash, sqlBool(from.Pending)))
	if errors.Is(err, sql.ErrNoRows) {
		// Changed meanwhile, or missing: tell which.
		var one int
		if err := s.r.QueryRowContext(ctx, `SELECT 1 FROM installations WHERE id = ?`, id).Scan(&one); err != nil {
			return state.Installation{}, s.err(what, err)
		}
		return state.Installation{}, fmt.Errorf("%s: its credential changed meanwhile: %w", what, state.ErrConflict)
	}
	return i, s.err(what, err)
}

// Installation implements state.Store.
func (s *SQLite) Installation(ctx context.Context, id string) (state.Installation, error) {
	i, err := scanInstallation(s.r.QueryRowContext(ctx,
		`SELECT `+installationColumns+` FROM installations WHERE id = ?`, id))
	return i, s.err("get installation "+id, err)
}

// DeleteInstallation implements state.Store.
func (s *SQLite) DeleteInstallation(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM installations WHERE id = ?`, id)
	if err != nil {
		return s.err("delete installation "+id, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("delete installation %s: %w", id, state.ErrNotFound)
	}
	return nil
}

// ListInstallations implements state.Store.
func (s *SQLite) ListInstallations(ctx context.Context, orgID string) ([]state.Installation, error) {
	return queryAll(ctx, s, "list installations", scanInstallation,
		`SELECT `+installationColumns+` FROM installations WHERE org_id = ? ORDER BY created_at, id`, orgID)
}

// UpdateInstallationSeen implements state.Store. An empty agentVersion or
// hostname keeps the stored one.
func (s *SQLite) UpdateInstallationSeen(ctx context.Context, id string, online bool, at time.Time, agentVersion, hostname string) error {
	res, err := s.w.ExecContext(ctx,
		`UPDATE installations SET online = ?1, last_seen = ?2,
		   agent_version = CASE WHEN ?3 = '' THEN agent_version ELSE ?3 END,
		   hostname = CASE WHEN ?4 = '' THEN hostname ELSE ?4 END
		 WHERE id = ?5`,
		sqlBool(online), sqlTime(msTime(at)), agentVersion, hostname, id)
	if err != nil {
		return s.err("update installation "+id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.err("update installation "+id, err)
	} else if n == 0 {
		return fmt.Errorf("update installation %s: %w", id, state.ErrNotFound)
	}
	return nil
}

// MarkAllOffline implements state.Store.
func (s *SQLite) MarkAllOffline(ctx context.Context) error {
	_, err := s.w.ExecContext(ctx, `UPDATE installations SET online = 0 WHERE online <> 0`)
	return s.err("mark installations offline", err)
}
