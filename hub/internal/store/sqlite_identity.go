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

// API tokens.

const apiTokenColumns = `id, hash, org_id, name, created_at, user_id, last_used_at, revoked_at, expires_at`

func scanAPIToken(r rowScanner) (state.APIToken, error) {
	var t state.APIToken
	var created, used, revoked, expires sql.NullInt64
	err := r.Scan(&t.ID, &t.Hash, &t.OrgID, &t.Name, &created, &t.UserID, &used, &revoked, &expires)
	t.CreatedAt, t.LastUsedAt = fromSQLTime(created), fromSQLTime(used)
	t.RevokedAt, t.ExpiresAt = fromSQLTime(revoked), fromSQLTime(expires)
	return t, err
}

// CreateAPIToken implements state.Store. It returns state.ErrConflict on a
// duplicate id or hash.
func (s *SQLite) CreateAPIToken(ctx context.Context, t state.APIToken) error {
	t = normAPIToken(t)
	_, err := s.w.ExecContext(ctx, `INSERT INTO api_tokens (`+apiTokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Hash, t.OrgID, t.Name, sqlTime(t.CreatedAt), t.UserID,
		sqlTime(t.LastUsedAt), sqlTime(t.RevokedAt), sqlTime(t.ExpiresAt))
	return s.err("create api token", err)
}

// APITokenByHash implements state.Store.
func (s *SQLite) APITokenByHash(ctx context.Context, hash string) (state.APIToken, error) {
	t, err := scanAPIToken(s.r.QueryRowContext(ctx,
		`SELECT `+apiTokenColumns+` FROM api_tokens WHERE hash = ?`, hash))
	return t, s.err("get api token by hash", err)
}

// ListAPITokens implements state.Store.
func (s *SQLite) ListAPITokens(ctx context.Context, orgID, userID string) ([]state.APIToken, error) {
	var w sqlWhere
	w.add("org_id = ?", orgID)
	w.eq("user_id", userID)
	return queryAll(ctx, s, "list api tokens", scanAPIToken,
		`SELECT `+apiTokenColumns+` FROM api_tokens`+w.String()+` ORDER BY created_at, id`, w.args...)
}

// RevokeAPIToken implements state.Store with one UPDATE.
func (s *SQLite) RevokeAPIToken(ctx context.Context, orgID, id string, at time.Time) (state.APIToken, error) {
	t, err := scanAPIToken(s.w.QueryRowContext(ctx,
		`UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND org_id = ? RETURNING `+apiTokenColumns,
		revokeTime(at).UnixMilli(), id, orgID))
	return t, s.err("revoke api token "+id, err)
}

// TouchAPIToken implements state.Store with one conditional UPDATE.
func (s *SQLite) TouchAPIToken(ctx context.Context, id string, at, ifBefore time.Time) error {
	res, err := s.w.ExecContext(ctx,
		`UPDATE api_tokens SET last_used_at = ?1 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?3)`,
		msTime(at).UnixMilli(), id, msTime(ifBefore).UnixMilli())
	if err != nil {
		return s.err("touch api token "+id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.err("touch api token "+id, err)
	} else if n == 0 {
		// Recent enough, or missing: tell which.
		var one int
		err := s.r.QueryRowContext(ctx, `SELECT 1 FROM api_tokens WHERE id = ?`, id).Scan(&one)
		return s.err("touch api token "+id, err)
	}
	return nil
}

// Users.

const userColumns = `id, org_id, username, display_name, password_hash, disabled, created_at`

func scanUser(r rowScanner) (state.User, error) {
	var u state.User
	var created sql.NullInt64
	err := r.Scan(&u.ID, &u.OrgID, &u.Username, &u.DisplayName, &u.PasswordHash, &u.Disabled, &created)
	u.CreatedAt = fromSQLTime(created)
	return u, err
}

// CreateUser implements state.Store. It returns state.ErrNotFound when the
// organization does not exist.
func (s *SQLite) CreateUser(ctx context.Context, u state.User) error {
	u = normUser(u)
	_, err := s.w.ExecContext(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.OrgID, u.Username, u.DisplayName, u.PasswordHash, sqlBool(u.Disabled), sqlTime(u.CreatedAt))
	return s.err("create user "+u.Username, err)
}

// User implements state.Store.
func (s *SQLite) User(ctx context.Context, orgID, v string) (state.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx,
		`SELECT `+userColumns+` FROM users WHERE org_id = ?1 AND (id = ?2 OR username = ?2)
		 ORDER BY id = ?2 DESC LIMIT 1`, orgID, v))
	return u, s.err("get user "+v, err)
}

// ListUsers implements state.Store.
func (s *SQLite) ListUsers(ctx context.Context, orgID string) ([]state.User, error) {
	return queryAll(ctx, s, "list users", scanUser,
		`SELECT `+userColumns+` FROM users WHERE org_id = ? ORDER BY username`, orgID)
}

// UpdateUser implements state.Store with one UPDATE.
func (s *SQLite) UpdateUser(ctx context.Context, orgID, id string, u state.UserUpdate) (state.User, error) {
	var display, disabled any
	if u.DisplayName != nil {
		display = *u.DisplayName
	}
	if u.Disabled != nil {
		disabled = sqlBool(*u.Disabled)
	}
	usr, err := scanUser(s.w.QueryRowContext(ctx,
		`UPDATE users SET display_name = COALESCE(?1, display_name), disabled = COALESCE(?2, disabled),
		   password_hash = CASE WHEN ?3 = '' THEN password_hash ELSE ?3 END
		 WHERE id = ?4 AND org_id = ?5 RETURNING `+userColumns,
		display, disabled, u.PasswordHash, id, orgID))
	return usr, s.err("update user "+id, err)
}

// DeleteUser implements state.Store: the user first, so that its tokens
// and bindings stop working at once, then those.
func (s *SQLite) DeleteUser(ctx context.Context, orgID, id string) error {
	if err := s.deleteOne(ctx, "delete user "+id, `DELETE FROM users WHERE id = ? AND org_id = ?`, id, orgID); err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM role_bindings WHERE user_id = ? AND org_id = ?`, id, orgID); err != nil {
		return s.err("delete role bindings of user "+id, err)
	}
	_, err := s.w.ExecContext(ctx, `DELETE FROM api_tokens WHERE user_id = ? AND org_id = ?`, id, orgID)
	return s.err("delete tokens of user "+id, err)
}

// deleteOne runs a DELETE that must remove one row; state.ErrNotFound when
// it removed none.
func (s *SQLite) deleteOne(ctx context.Context, what, query string, args ...any) error {
	res, err := s.w.ExecContext(ctx, query, args...)
	if err != nil {
		return s.err(what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.err(what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, state.ErrNotFound)
	}
	return nil
}

// Role bindings.

const roleBindingColumns = `id, org_id, user_id, scope, env_id, cross_id, role, created_at`

func scanRoleBinding(r rowScanner) (state.RoleBinding, error) {
	var b state.RoleBinding
	var created sql.NullInt64
	err := r.Scan(&b.ID, &b.OrgID, &b.UserID, &b.Scope, &b.EnvID, &b.CrossID, &b.Role, &created)
	b.CreatedAt = fromSQLTime(created)
	return b, err
}

// CreateRoleBinding implements state.Store.
func (s *SQLite) CreateRoleBinding(ctx context.Context, b state.RoleBinding) error {
	b = normRoleBinding(b)
	_, err := s.w.ExecContext(ctx, `INSERT INTO role_bindings (`+roleBindingColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		b.ID, b.OrgID, b.UserID, string(b.Scope), b.EnvID, b.CrossID, b.Role, sqlTime(b.CreatedAt))
	return s.err("create role binding", err)
}

// ListRoleBindings implements state.Store.
func (s *SQLite) ListRoleBindings(ctx context.Context, f state.RoleBindingFilter) ([]state.RoleBinding, error) {
	var w sqlWhere
	w.add("org_id = ?", f.OrgID)
	w.eq("user_id", f.UserID)
	w.eq("env_id", f.EnvID)
	return queryAll(ctx, s, "list role bindings", scanRoleBinding,
		`SELECT `+roleBindingColumns+` FROM role_bindings`+w.String()+` ORDER BY created_at, id`, w.args...)
}

// DeleteRoleBinding implements state.Store.
func (s *SQLite) DeleteRoleBinding(ctx context.Context, orgID, id string) error {
	return s.deleteOne(ctx, "delete role binding "+id, `DELETE FROM role_bindings WHERE id = ? AND org_id = ?`, id, orgID)
}

// Custom roles.

const roleColumns = `org_id, scope, name, permissions, created_at`

func scanRole(r rowScanner) (state.Role, error) {
	var ro state.Role
	var perms string
	var created sql.NullInt64
	if err := r.Scan(&ro.OrgID, &ro.Scope, &ro.Name, &perms, &created); err != nil {
		return ro, err
	}
	if err := json.Unmarshal([]byte(perms), &ro.Permissions); err != nil {
		return ro, fmt.Errorf("decode permissions of role %s: %w", ro.Name, err)
	}
	ro.CreatedAt = fromSQLTime(created)
	return normRole(ro), nil
}

// CreateRole implements state.Store.
func (s *SQLite) CreateRole(ctx context.Context, r state.Role) error {
	r = normRole(r)
	perms := r.Permissions
	if perms == nil {
		perms = []string{}
	}
	b, err := json.Marshal(perms)
	if err != nil {
		return fmt.Errorf("create role: %w", err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO roles (`+roleColumns+`) VALUES (?, ?, ?, ?, ?)`,
		r.OrgID, string(r.Scope), r.Name, string(b), sqlTime(r.CreatedAt))
	return s.err("create role "+r.Name, err)
}

// ListRoles implements state.Store.
func (s *SQLite) ListRoles(ctx context.Context, orgID string) ([]state.Role, error) {
	return queryAll(ctx, s, "list roles", scanRole,
		`SELECT `+roleColumns+` FROM roles WHERE org_id = ? ORDER BY scope, name`, orgID)
}

// DeleteRole implements state.Store.
func (s *SQLite) DeleteRole(ctx context.Context, orgID string, scope state.Scope, name string) error {
	return s.deleteOne(ctx, "delete role "+name, `DELETE FROM roles WHERE org_id = ? AND scope = ? AND name = ?`,
		orgID, string(scope), name)
}

// Settings.

// InitSetting implements state.Store: INSERT OR IGNORE, then read back.
func (s *SQLite) InitSetting(ctx context.Context, st state.Setting) (state.Setting, error) {
	st.CreatedAt = msTime(st.CreatedAt)
	if st.Name == "" || len(st.Value) == 0 {
		return state.Setting{}, fmt.Errorf("init setting: %w: need a name and a value", errInvalid)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO settings (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		st.Name, st.Value, sqlTime(st.CreatedAt))
	if err != nil {
		return state.Setting{}, s.err("init setting "+st.Name, err)
	}
	var got state.Setting
	var created sql.NullInt64
	// Read on the writer: the row is there even if a reader's snapshot
	// is older.
	err = s.w.QueryRowContext(ctx, `SELECT name, value, created_at FROM settings WHERE name = ?`, st.Name).
		Scan(&got.Name, &got.Value, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return state.Setting{}, fmt.Errorf("init setting %s: vanished after insert", st.Name)
	}
	got.CreatedAt = fromSQLTime(created)
	return got, s.err("init setting "+st.Name, err)
}
