package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"ferry.dev/hub/internal/state"
)

// Documents of this file's collections. A zero time is left out of the
// document and reads back as zero.

// apiTokenDoc is a document of api_tokens.
type apiTokenDoc struct {
	ID         string    `bson:"_id"`
	Hash       string    `bson:"hash"`
	OrgID      string    `bson:"org_id"`
	Name       string    `bson:"name"`
	CreatedAt  time.Time `bson:"created_at,omitempty"`
	UserID     string    `bson:"user_id,omitempty"`
	LastUsedAt time.Time `bson:"last_used_at,omitempty"`
	RevokedAt  time.Time `bson:"revoked_at,omitempty"`
	ExpiresAt  time.Time `bson:"expires_at,omitempty"`
}

func (d apiTokenDoc) apiToken() state.APIToken {
	return normAPIToken(state.APIToken{
		ID: d.ID, Hash: d.Hash, OrgID: d.OrgID, Name: d.Name, CreatedAt: d.CreatedAt, UserID: d.UserID,
		LastUsedAt: d.LastUsedAt, RevokedAt: d.RevokedAt, ExpiresAt: d.ExpiresAt,
	})
}

// userDoc is a document of users.
type userDoc struct {
	ID           string    `bson:"_id"`
	OrgID        string    `bson:"org_id"`
	Username     string    `bson:"username"`
	DisplayName  string    `bson:"display_name"`
	PasswordHash string    `bson:"password_hash"`
	Disabled     bool      `bson:"disabled"`
	CreatedAt    time.Time `bson:"created_at,omitempty"`
}

func (d userDoc) user() state.User {
	return normUser(state.User{
		ID: d.ID, OrgID: d.OrgID, Username: d.Username, DisplayName: d.DisplayName,
		PasswordHash: d.PasswordHash, Disabled: d.Disabled, CreatedAt: d.CreatedAt,
	})
}

// roleBindingDoc is a document of role_bindings.
type roleBindingDoc struct {
	ID        string    `bson:"_id"`
	OrgID     string    `bson:"org_id"`
	UserID    string    `bson:"user_id"`
	Scope     string    `bson:"scope"`
	EnvID     string    `bson:"env_id"`
	CrossID   string    `bson:"cross_id"`
	Role      string    `bson:"role"`
	CreatedAt time.Time `bson:"created_at,omitempty"`
}

func (d roleBindingDoc) roleBinding() state.RoleBinding {
	return normRoleBinding(state.RoleBinding{
		ID: d.ID, OrgID: d.OrgID, UserID: d.UserID, Scope: state.Scope(d.Scope), EnvID: d.EnvID,
		CrossID: d.CrossID, Role: d.Role, CreatedAt: d.CreatedAt,
	})
}

// roleDoc is a document of roles; _id is the JSON array [org, scope, name].
type roleDoc struct {
	Key         string    `bson:"_id"`
	OrgID       string    `bson:"org_id"`
	Scope       string    `bson:"scope"`
	Name        string    `bson:"name"`
	Permissions []string  `bson:"permissions"`
	CreatedAt   time.Time `bson:"created_at,omitempty"`
}

func (d roleDoc) role() state.Role {
	return normRole(state.Role{OrgID: d.OrgID, Scope: state.Scope(d.Scope), Name: d.Name, Permissions: d.Permissions, CreatedAt: d.CreatedAt})
}

// roleKey is the _id of a custom role.
func roleKey(orgID string, scope state.Scope, name string) string {
	b, _ := json.Marshal([]string{orgID, string(scope), name}) // strings always marshal
	return string(b)
}

// settingDoc is a document of settings. The session signing key is kept
// here in the clear (no at-rest encryption).
type settingDoc struct {
	Name      string    `bson:"_id"`
	Value     []byte    `bson:"value"`
	CreatedAt time.Time `bson:"created_at,omitempty"`
}

// API tokens.

// CreateAPIToken implements state.Store. It returns state.ErrConflict on a
// duplicate id or hash.
func (s *Mongo) CreateAPIToken(ctx context.Context, t state.APIToken) error {
	t = normAPIToken(t)
	_, err := s.apiTokens.InsertOne(ctx, apiTokenDoc{
		ID: t.ID, Hash: t.Hash, OrgID: t.OrgID, Name: t.Name, CreatedAt: t.CreatedAt, UserID: t.UserID,
		LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt, ExpiresAt: t.ExpiresAt,
	})
	return s.err("create api token", err)
}

// APITokenByHash implements state.Store.
func (s *Mongo) APITokenByHash(ctx context.Context, hash string) (state.APIToken, error) {
	var d apiTokenDoc
	if err := s.apiTokens.FindOne(ctx, bson.D{{Key: "hash", Value: hash}}).Decode(&d); err != nil {
		return state.APIToken{}, s.err("get api token by hash", err)
	}
	return d.apiToken(), nil
}

// ListAPITokens implements state.Store.
func (s *Mongo) ListAPITokens(ctx context.Context, orgID, userID string) ([]state.APIToken, error) {
	and := mongoAnd{bson.D{{Key: "org_id", Value: orgID}}}
	and.eq("user_id", userID)
	return findAll(ctx, s, "list api tokens", s.apiTokens, and.filter(), apiTokenDoc.apiToken,
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}))
}

// RevokeAPIToken implements state.Store: a conditional update that sets
// revoked_at only where it is missing, then a read.
func (s *Mongo) RevokeAPIToken(ctx context.Context, orgID, id string, at time.Time) (state.APIToken, error) {
	_, err := s.apiTokens.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "org_id", Value: orgID}, {Key: "revoked_at", Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "revoked_at", Value: revokeTime(at)}}}})
	if err != nil {
		return state.APIToken{}, s.err("revoke api token "+id, err)
	}
	var d apiTokenDoc
	if err := s.apiTokens.FindOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "org_id", Value: orgID}}).Decode(&d); err != nil {
		return state.APIToken{}, s.err("revoke api token "+id, err)
	}
	return d.apiToken(), nil
}

// TouchAPIToken implements state.Store with one conditional update.
func (s *Mongo) TouchAPIToken(ctx context.Context, id string, at, ifBefore time.Time) error {
	res, err := s.apiTokens.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "$or", Value: bson.A{
			bson.D{{Key: "last_used_at", Value: bson.D{{Key: "$exists", Value: false}}}},
			bson.D{{Key: "last_used_at", Value: bson.D{{Key: "$lt", Value: msTime(ifBefore)}}}},
		}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "last_used_at", Value: msTime(at)}}}})
	if err != nil {
		return s.err("touch api token "+id, err)
	}
	if res.MatchedCount == 0 {
		// Recent enough, or missing: tell which.
		err := s.apiTokens.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
			options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
		return s.err("touch api token "+id, err)
	}
	return nil
}

// Users.

// CreateUser implements state.Store. It returns state.ErrNotFound when the
// organization does not exist (organizations are never deleted, so checking
// first is not a race).
func (s *Mongo) CreateUser(ctx context.Context, u state.User) error {
	u = normUser(u)
	err := s.orgs.FindOne(ctx, bson.D{{Key: "_id", Value: u.OrgID}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if err != nil {
		return s.err(fmt.Sprintf("create user %s: org %s", u.Username, u.OrgID), err)
	}
	_, err = s.users.InsertOne(ctx, userDoc{
		ID: u.ID, OrgID: u.OrgID, Username: u.Username, DisplayName: u.DisplayName,
		PasswordHash: u.PasswordHash, Disabled: u.Disabled, CreatedAt: u.CreatedAt,
	})
	return s.err("create user "+u.Username, err)
}

// User implements state.Store.
func (s *Mongo) User(ctx context.Context, orgID, v string) (state.User, error) {
	users, err := findAll(ctx, s, "get user "+v, s.users,
		bson.D{{Key: "org_id", Value: orgID}, {Key: "$or", Value: bson.A{
			bson.D{{Key: "_id", Value: v}}, bson.D{{Key: "username", Value: v}},
		}}}, userDoc.user, options.Find().SetLimit(2))
	if err != nil {
		return state.User{}, err
	}
	for _, u := range users {
		if u.ID == v {
			return u, nil
		}
	}
	if len(users) == 0 {
		return state.User{}, fmt.Errorf("get user %s: %w", v, state.ErrNotFound)
	}
	return users[0], nil
}

// ListUsers implements state.Store.
func (s *Mongo) ListUsers(ctx context.Context, orgID string) ([]state.User, error) {
	return findAll(ctx, s, "list users", s.users, bson.D{{Key: "org_id", Value: orgID}}, userDoc.user,
		options.Find().SetSort(bson.D{{Key: "username", Value: 1}}))
}

// UpdateUser implements state.Store with one findAndModify.
func (s *Mongo) UpdateUser(ctx context.Context, orgID, id string, u state.UserUpdate) (state.User, error) {
	filter := bson.D{{Key: "_id", Value: id}, {Key: "org_id", Value: orgID}}
	set := bson.D{}
	if u.DisplayName != nil {
		set = append(set, bson.E{Key: "display_name", Value: *u.DisplayName})
	}
	if u.Disabled != nil {
		set = append(set, bson.E{Key: "disabled", Value: *u.Disabled})
	}
	if u.PasswordHash != "" {
		set = append(set, bson.E{Key: "password_hash", Value: u.PasswordHash})
	}
	var d userDoc
	var err error
	if len(set) == 0 {
		err = s.users.FindOne(ctx, filter).Decode(&d)
	} else {
		err = s.users.FindOneAndUpdate(ctx, filter, bson.D{{Key: "$set", Value: set}},
			options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	}
	if err != nil {
		return state.User{}, s.err("update user "+id, err)
	}
	return d.user(), nil
}

// DeleteUser implements state.Store: the user first, so that its tokens
// and bindings stop working at once, then those.
func (s *Mongo) DeleteUser(ctx context.Context, orgID, id string) error {
	res, err := s.users.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "org_id", Value: orgID}})
	if err != nil {
		return s.err("delete user "+id, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete user %s: %w", id, state.ErrNotFound)
	}
	owned := bson.D{{Key: "user_id", Value: id}, {Key: "org_id", Value: orgID}}
	if _, err := s.roleBindings.DeleteMany(ctx, owned); err != nil {
		return s.err("delete role bindings of user "+id, err)
	}
	_, err = s.apiTokens.DeleteMany(ctx, owned)
	return s.err("delete tokens of user "+id, err)
}

// Role bindings.

// CreateRoleBinding implements state.Store.
func (s *Mongo) CreateRoleBinding(ctx context.Context, b state.RoleBinding) error {
	b = normRoleBinding(b)
	_, err := s.roleBindings.InsertOne(ctx, roleBindingDoc{
		ID: b.ID, OrgID: b.OrgID, UserID: b.UserID, Scope: string(b.Scope), EnvID: b.EnvID,
		CrossID: b.CrossID, Role: b.Role, CreatedAt: b.CreatedAt,
	})
	return s.err("create role binding", err)
}

// ListRoleBindings implements state.Store.
func (s *Mongo) ListRoleBindings(ctx context.Context, f state.RoleBindingFilter) ([]state.RoleBinding, error) {
	and := mongoAnd{bson.D{{Key: "org_id", Value: f.OrgID}}}
	and.eq("user_id", f.UserID)
	and.eq("env_id", f.EnvID)
	return findAll(ctx, s, "list role bindings", s.roleBindings, and.filter(), roleBindingDoc.roleBinding,
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}))
}

// DeleteRoleBinding implements state.Store.
func (s *Mongo) DeleteRoleBinding(ctx context.Context, orgID, id string) error {
	return s.deleteOne(ctx, "delete role binding "+id, s.roleBindings, bson.D{{Key: "_id", Value: id}, {Key: "org_id", Value: orgID}})
}

// deleteOne deletes the document matching filter; state.ErrNotFound when
// there is none.
func (s *Mongo) deleteOne(ctx context.Context, what string, coll *mongo.Collection, filter bson.D) error {
	res, err := coll.DeleteOne(ctx, filter)
	if err != nil {
		return s.err(what, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("%s: %w", what, state.ErrNotFound)
	}
	return nil
}

// Custom roles.

// CreateRole implements state.Store.
func (s *Mongo) CreateRole(ctx context.Context, r state.Role) error {
	r = normRole(r)
	perms := r.Permissions
	if perms == nil {
		perms = []string{}
	}
	_, err := s.roles.InsertOne(ctx, roleDoc{
		Key: roleKey(r.OrgID, r.Scope, r.Name), OrgID: r.OrgID, Scope: string(r.Scope), Name: r.Name,
		Permissions: perms, CreatedAt: r.CreatedAt,
	})
	return s.err("create role "+r.Name, err)
}

// ListRoles implements state.Store.
func (s *Mongo) ListRoles(ctx context.Context, orgID string) ([]state.Role, error) {
	return findAll(ctx, s, "list roles", s.roles, bson.D{{Key: "org_id", Value: orgID}}, roleDoc.role,
		options.Find().SetSort(bson.D{{Key: "scope", Value: 1}, {Key: "name", Value: 1}}))
}

// DeleteRole implements state.Store.
func (s *Mongo) DeleteRole(ctx context.Context, orgID string, scope state.Scope, name string) error {
	return s.deleteOne(ctx, "delete role "+name, s.roles, bson.D{{Key: "_id", Value: roleKey(orgID, scope, name)}})
}

// Settings.

// InitSetting implements state.Store: the insert keyed by name decides the
// winner; everyone then reads the winner's value. The read is retried
// briefly, because a loser's majority read may not yet see a winner's
// write that is still being replicated.
func (s *Mongo) InitSetting(ctx context.Context, st state.Setting) (state.Setting, error) {
	if st.Name == "" || len(st.Value) == 0 {
		return state.Setting{}, fmt.Errorf("init setting: %w: need a name and a value", errInvalid)
	}
	_, err := s.settings.InsertOne(ctx, settingDoc{Name: st.Name, Value: st.Value, CreatedAt: msTime(st.CreatedAt)})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return state.Setting{}, s.err("init setting "+st.Name, err)
	}
	for attempt := 0; ; attempt++ {
		var d settingDoc
		err := s.settings.FindOne(ctx, bson.D{{Key: "_id", Value: st.Name}}).Decode(&d)
		if err == nil {
			return state.Setting{Name: d.Name, Value: d.Value, CreatedAt: msTime(d.CreatedAt)}, nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) || attempt >= 50 {
			return state.Setting{}, s.err("init setting "+st.Name, err)
		}
		select {
		case <-ctx.Done():
			return state.Setting{}, fmt.Errorf("init setting %s: %w", st.Name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
