package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"ferry.dev/hub/internal/state"
)

// Documents of this file's collections. A zero time is left out of the
// document (omitempty honours time.Time.IsZero) and reads back as zero.

// orgDoc is a document of orgs.
type orgDoc struct {
	ID        string    `bson:"_id"`
	Name      string    `bson:"name"`
	CreatedAt time.Time `bson:"created_at,omitempty"`
}

func (d orgDoc) org() state.Org {
	return state.Org{ID: d.ID, Name: d.Name, CreatedAt: msTime(d.CreatedAt)}
}

// envDoc is a document of environments.
type envDoc struct {
	ID        string    `bson:"_id"`
	OrgID     string    `bson:"org_id"`
	Name      string    `bson:"name"`
	CreatedAt time.Time `bson:"created_at,omitempty"`
}

func (d envDoc) environment() state.Environment {
	return state.Environment{ID: d.ID, OrgID: d.OrgID, Name: d.Name, CreatedAt: msTime(d.CreatedAt)}
}

// linkTokenDoc is a document of link_tokens.
type linkTokenDoc struct {
	ID        string    `bson:"_id"`
	OrgID     string    `bson:"org_id"`
	EnvID     string    `bson:"env_id"`
	Hash      string    `bson:"hash"`
	CreatedAt time.Time `bson:"created_at,omitempty"`
	ExpiresAt time.Time `bson:"expires_at,omitempty"`
	UsedAt    time.Time `bson:"used_at,omitempty"`
}

func (d linkTokenDoc) linkToken() state.LinkToken {
	return state.LinkToken{
		ID: d.ID, OrgID: d.OrgID, EnvID: d.EnvID, Hash: d.Hash,
		CreatedAt: msTime(d.CreatedAt), ExpiresAt: msTime(d.ExpiresAt), UsedAt: msTime(d.UsedAt),
	}
}

// linkTokenUseDoc is a document of link_token_uses: its insert, keyed by the
// token id, is what consumes a token.
type linkTokenUseDoc struct {
	TokenID string    `bson:"_id"`
	UsedAt  time.Time `bson:"used_at"`
}

// installationDoc is a document of installations.
type installationDoc struct {
	ID             string    `bson:"_id"`
	OrgID          string    `bson:"org_id"`
	EnvIDs         []string  `bson:"env_ids,omitempty"`
	CredentialHash string    `bson:"credential_hash"`
	AgentVersion   string    `bson:"agent_version"`
	Hostname       string    `bson:"hostname"`
	Online         bool      `bson:"online"`
	LastSeen       time.Time `bson:"last_seen,omitempty"`
	CreatedAt      time.Time `bson:"created_at,omitempty"`
	// ClientKeyHash is absent from documents of installations enrolled
	// without a client certificate, and from those written before it
	// existed: both read back as "", which binds nothing.
	ClientKeyHash string `bson:"client_key_hash,omitempty"`
	// The credential rotation fields are absent from documents of
	// installations never rotated, and from those written before rotation
	// existed: they read back as none, and not pending.
	PreviousCredentialHash      string    `bson:"previous_credential_hash,omitempty"`
	PreviousCredentialExpiresAt time.Time `bson:"previous_credential_expires_at,omitempty"`
	CredentialRotatedAt         time.Time `bson:"credential_rotated_at,omitempty"`
	CredentialPending           bool      `bson:"credential_pending,omitempty"`
}

func (d installationDoc) installation() state.Installation {
	return normInstallation(state.Installation{
		ID: d.ID, OrgID: d.OrgID, EnvIDs: d.EnvIDs, CredentialHash: d.CredentialHash,
		AgentVersion: d.AgentVersion, Hostname: d.Hostname, Online: d.Online,
		LastSeen: d.LastSeen, CreatedAt: d.CreatedAt, ClientKeyHash: d.ClientKeyHash,
		PreviousCredentialHash: d.PreviousCredentialHash, PreviousCredentialExpiresAt: d.PreviousCredentialExpiresAt,
		CredentialRotatedAt: d.CredentialRotatedAt, CredentialPending: d.CredentialPending,
	})
}

// findAll runs a query and converts every document with conv.
func findAll[D, T any](ctx context.Context, s *Mongo, what string, coll *mongo.Collection, filter any, conv func(D) T, opts ...options.Lister[options.FindOptions]) ([]T, error) {
	cur, err := coll.Find(ctx, filter, opts...)
	if err != nil {
		return nil, s.err(what, err)
	}
	var docs []D
	if err := cur.All(ctx, &docs); err != nil {
		return nil, s.err(what, err)
	}
	var out []T
	for _, d := range docs {
		out = append(out, conv(d))
	}
	return out, nil
}

// idOrName matches a document whose _id or name is v.
func idOrName(v string) bson.E {
	return bson.E{Key: "$or", Value: bson.A{bson.D{{Key: "_id", Value: v}}, bson.D{{Key: "name", Value: v}}}}
}

// CreateOrg implements state.Store.
func (s *Mongo) CreateOrg(ctx context.Context, o state.Org) error {
	o = normOrg(o)
	_, err := s.orgs.InsertOne(ctx, orgDoc{ID: o.ID, Name: o.Name, CreatedAt: o.CreatedAt})
	return s.err("create org "+o.Name, err)
}

// Org implements state.Store.
func (s *Mongo) Org(ctx context.Context, v string) (state.Org, error) {
	orgs, err := findAll(ctx, s, "get org "+v, s.orgs, bson.D{idOrName(v)}, orgDoc.org, options.Find().SetLimit(2))
	if err != nil {
		return state.Org{}, err
	}
	for _, o := range orgs {
		if o.ID == v {
			return o, nil
		}
	}
	if len(orgs) == 0 {
		return state.Org{}, fmt.Errorf("get org %s: %w", v, state.ErrNotFound)
	}
	return orgs[0], nil
}

// ListOrgs implements state.Store.
func (s *Mongo) ListOrgs(ctx context.Context) ([]state.Org, error) {
	return findAll(ctx, s, "list orgs", s.orgs, bson.D{}, orgDoc.org,
		options.Find().SetSort(bson.D{{Key: "name", Value: 1}}))
}

// CreateEnvironment implements state.Store. It returns state.ErrNotFound
// when the organization does not exist (organizations are never deleted,
// so checking first is not a race).
func (s *Mongo) CreateEnvironment(ctx context.Context, e state.Environment) error {
	e = normEnvironment(e)
	err := s.orgs.FindOne(ctx, bson.D{{Key: "_id", Value: e.OrgID}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if err != nil {
		return s.err(fmt.Sprintf("create environment %s: org %s", e.Name, e.OrgID), err)
	}
	_, err = s.envs.InsertOne(ctx, envDoc{ID: e.ID, OrgID: e.OrgID, Name: e.Name, CreatedAt: e.CreatedAt})
	return s.err("create environment "+e.Name, err)
}

// Environment implements state.Store.
func (s *Mongo) Environment(ctx context.Context, orgID, v string) (state.Environment, error) {
	envs, err := findAll(ctx, s, "get environment "+v, s.envs,
		bson.D{{Key: "org_id", Value: orgID}, idOrName(v)}, envDoc.environment, options.Find().SetLimit(2))
	if err != nil {
		return state.Environment{}, err
	}
	for _, e := range envs {
		if e.ID == v {
			return e, nil
		}
	}
	if len(envs) == 0 {
		return state.Environment{}, fmt.Errorf("get environment %s: %w", v, state.ErrNotFound)
	}
	return envs[0], nil
}

// ListEnvironments implements state.Store.
func (s *Mongo) ListEnvironments(ctx context.Context, orgID string) ([]state.Environment, error) {
	return findAll(ctx, s, "list environments", s.envs, bson.D{{Key: "org_id", Value: orgID}}, envDoc.environment,
		options.Find().SetSort(bson.D{{Key: "name", Value: 1}}))
}

// CreateLinkToken implements state.Store. It returns state.ErrConflict on
// a duplicate id or hash.
func (s *Mongo) CreateLinkToken(ctx context.Context, t state.LinkToken) error {
	t = normLinkToken(t)
	_, err := s.linkTokens.InsertOne(ctx, linkTokenDoc{
		ID: t.ID, OrgID: t.OrgID, EnvID: t.EnvID, Hash: t.Hash,
		CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, UsedAt: t.UsedAt,
	})
	return s.err("create link token", err)
}

// ConsumeLinkToken implements state.Store. The insert of a link_token_uses
// document keyed by the token id decides the winner; used_at on the token
// is then set for the record. A token with a zero ExpiresAt never expires;
// one that is both used and expired is reported as used.
func (s *Mongo) ConsumeLinkToken(ctx context.Context, hash string, now time.Time) (state.LinkToken, error) {
	now = msTime(now)
	var d linkTokenDoc
	if err := s.linkTokens.FindOne(ctx, bson.D{{Key: "hash", Value: hash}}).Decode(&d); err != nil {
		return state.LinkToken{}, s.err("consume link token", err)
	}
	t := d.linkToken()
	if err := linkTokenUnusable(t, now); err != nil {
		if errors.Is(err, state.ErrConflict) {
			return t, err
		}
		return state.LinkToken{}, err
	}
	if _, err := s.linkTokenUses.InsertOne(ctx, linkTokenUseDoc{TokenID: t.ID, UsedAt: now}); err != nil {
		err = s.err(fmt.Sprintf("consume link token %s: already used", t.ID), err)
		if errors.Is(err, state.ErrConflict) {
			return t, err
		}
		return state.LinkToken{}, err
	}
	t.UsedAt = now
	_, err := s.linkTokens.UpdateOne(ctx, bson.D{{Key: "_id", Value: t.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "used_at", Value: now}}}})
	if err != nil {
		// The token is consumed all the same: its use is recorded.
		s.log.WarnContext(ctx, "cannot mark link token used", "token_id", t.ID, "error", err)
	}
	return t, nil
}

// CreateInstallation implements state.Store. It returns state.ErrConflict
// on a duplicate id or credential.
func (s *Mongo) CreateInstallation(ctx context.Context, i state.Installation) error {
	i = normInstallation(i)
	_, err := s.installations.InsertOne(ctx, installationDoc{
		ID: i.ID, OrgID: i.OrgID, EnvIDs: i.EnvIDs, CredentialHash: i.CredentialHash,
		AgentVersion: i.AgentVersion, Hostname: i.Hostname, Online: i.Online,
		LastSeen: i.LastSeen, CreatedAt: i.CreatedAt, ClientKeyHash: i.ClientKeyHash,
		PreviousCredentialHash: i.PreviousCredentialHash, PreviousCredentialExpiresAt: i.PreviousCredentialExpiresAt,
		CredentialRotatedAt: i.CredentialRotatedAt, CredentialPending: i.CredentialPending,
	})
	return s.err("create installation", err)
}

// findInstallation returns the installation matching filter.
func (s *Mongo) findInstallation(ctx context.Context, what string, filter bson.D) (state.Installation, error) {
	var d installationDoc
	if err := s.installations.FindOne(ctx, filter).Decode(&d); err != nil {
		return state.Installation{}, s.err(what, err)
	}
	return d.installation(), nil
}

// InstallationByCredential implements state.Store. Each hash field has
// its index; an empty hash matches nothing.
func (s *Mongo) InstallationByCredential(ctx context.Context, hash string) (state.Installation, error) {
	if hash == "" {
		return state.Installation{}, fmt.Errorf("get installation by credential: %w", state.ErrNotFound)
	}
	return s.findInstallation(ctx, "get installation by credential", bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "credential_hash", Value: hash}},
		bson.D{{Key: "previous_credential_hash", Value: hash}},
	}}})
}

// SetInstallationCredential implements state.Store with one conditional
// update.
func (s *Mongo) SetInstallationCredential(ctx context.Context, id string, from, to state.InstallationCredential) (state.Installation, error) {
	what := "set credential of installation " + id
	filter := bson.D{{Key: "_id", Value: id}, {Key: "credential_hash", Value: from.Hash}}
	if from.Pending {
		filter = append(filter, bson.E{Key: "credential_pending", Value: true})
	} else {
		filter = append(filter, bson.E{Key: "credential_pending", Value: bson.D{{Key: "$ne", Value: true}}})
	}
	set := bson.D{{Key: "credential_hash", Value: to.Hash}}
	unset := bson.D{}
	field := func(name string, v any, zero bool) {
		if zero {
			unset = append(unset, bson.E{Key: name, Value: ""})
		} else {
			set = append(set, bson.E{Key: name, Value: v})
		}
	}
	prevExpires, rotated := msTime(to.PreviousExpiresAt), msTime(to.RotatedAt)
	field("previous_credential_hash", to.PreviousHash, to.PreviousHash == "")
	field("previous_credential_expires_at", prevExpires, prevExpires.IsZero())
	field("credential_rotated_at", rotated, rotated.IsZero())
	field("credential_pending", true, !to.Pending)
	update := bson.D{{Key: "$set", Value: set}}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	var d installationDoc
	err := s.installations.FindOneAndUpdate(ctx, filter, update, options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		// Changed meanwhile, or missing: tell which.
		if _, err := s.Installation(ctx, id); err != nil {
			return state.Installation{}, err
		}
		return state.Installation{}, fmt.Errorf("%s: its credential changed meanwhile: %w", what, state.ErrConflict)
	}
	if err != nil {
		return state.Installation{}, s.err(what, err)
	}
	return d.installation(), nil
}

// Installation implements state.Store.
func (s *Mongo) Installation(ctx context.Context, id string) (state.Installation, error) {
	return s.findInstallation(ctx, "get installation "+id, bson.D{{Key: "_id", Value: id}})
}

// DeleteInstallation implements state.Store.
func (s *Mongo) DeleteInstallation(ctx context.Context, id string) error {
	res, err := s.installations.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return s.err("delete installation "+id, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete installation %s: %w", id, state.ErrNotFound)
	}
	return nil
}

// ListInstallations implements state.Store.
func (s *Mongo) ListInstallations(ctx context.Context, orgID string) ([]state.Installation, error) {
	return findAll(ctx, s, "list installations", s.installations, bson.D{{Key: "org_id", Value: orgID}},
		installationDoc.installation,
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}))
}

// UpdateInstallationSeen implements state.Store. An empty agentVersion or
// hostname keeps the stored one.
func (s *Mongo) UpdateInstallationSeen(ctx context.Context, id string, online bool, at time.Time, agentVersion, hostname string) error {
	set := bson.D{{Key: "online", Value: online}}
	update := bson.D{}
	if at = msTime(at); at.IsZero() {
		update = append(update, bson.E{Key: "$unset", Value: bson.D{{Key: "last_seen", Value: ""}}})
	} else {
		set = append(set, bson.E{Key: "last_seen", Value: at})
	}
	if agentVersion != "" {
		set = append(set, bson.E{Key: "agent_version", Value: agentVersion})
	}
	if hostname != "" {
		set = append(set, bson.E{Key: "hostname", Value: hostname})
	}
	update = append(update, bson.E{Key: "$set", Value: set})
	res, err := s.installations.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, update)
	if err != nil {
		return s.err("update installation "+id, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("update installation %s: %w", id, state.ErrNotFound)
	}
	return nil
}

// MarkAllOffline implements state.Store.
func (s *Mongo) MarkAllOffline(ctx context.Context) error {
	_, err := s.installations.UpdateMany(ctx, bson.D{{Key: "online", Value: true}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "online", Value: false}}}})
	return s.err("mark installations offline", err)
}
