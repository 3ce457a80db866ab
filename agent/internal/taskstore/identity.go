package taskstore

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"ferry.dev/agent/internal/authn"
)

var _ authn.Store = (*Store)(nil)

// identityEnv is an environment in the hub_identity row.
type identityEnv struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// SaveIdentity replaces the persisted identity and hub session keys with id.
func (s *Store) SaveIdentity(ctx context.Context, id authn.Identity) error {
	envs := make([]identityEnv, 0, len(id.Environments))
	for _, e := range id.Environments {
		envs = append(envs, identityEnv{ID: e.ID, Name: e.Name})
	}
	keys := make([]string, 0, len(id.Keys))
	for _, k := range id.Keys {
		keys = append(keys, base64.StdEncoding.EncodeToString(k))
	}
	eb, err := json.Marshal(envs)
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	kb, err := json.Marshal(keys)
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO hub_identity (id, org_id, org_name, installation_id, environments,
		session_keys, learned_at) VALUES (1, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET org_id = excluded.org_id, org_name = excluded.org_name,
			installation_id = excluded.installation_id, environments = excluded.environments,
			session_keys = excluded.session_keys, learned_at = excluded.learned_at`,
		id.OrgID, id.OrgName, id.InstallationID, string(eb), string(kb), nanos(id.LearnedAt))
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	return nil
}

// Identity returns the persisted identity, and false when none was saved.
func (s *Store) Identity(ctx context.Context) (authn.Identity, bool, error) {
	var id authn.Identity
	var envs, keys string
	var learned int64
	err := s.db.QueryRowContext(ctx, `SELECT org_id, org_name, installation_id, environments, session_keys, learned_at
		FROM hub_identity WHERE id = 1`).Scan(&id.OrgID, &id.OrgName, &id.InstallationID, &envs, &keys, &learned)
	if errors.Is(err, sql.ErrNoRows) {
		return authn.Identity{}, false, nil
	}
	if err != nil {
		return authn.Identity{}, false, fmt.Errorf("read identity: %w", err)
	}
	var es []identityEnv
	var ks []string
	if err := json.Unmarshal([]byte(envs), &es); err != nil {
		return authn.Identity{}, false, fmt.Errorf("read identity: environments: %w", err)
	}
	if err := json.Unmarshal([]byte(keys), &ks); err != nil {
		return authn.Identity{}, false, fmt.Errorf("read identity: session keys: %w", err)
	}
	for _, e := range es {
		id.Environments = append(id.Environments, authn.Environment{ID: e.ID, Name: e.Name})
	}
	for _, k := range ks {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return authn.Identity{}, false, errors.New("read identity: a stored session key is not 32 bytes of base64")
		}
		id.Keys = append(id.Keys, ed25519.PublicKey(b))
	}
	id.LearnedAt = fromNanos(learned)
	return id, true, nil
}
