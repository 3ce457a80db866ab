package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"ferry.dev/hub/internal/state"
)

// MongoOptions configures OpenMongo. The zero value is valid.
type MongoOptions struct {
	// Database is the database to use; empty means "ferry".
	Database string
	// MaxPoolSize caps the driver's connections per server; 0 keeps the
	// driver's default (100). FerretDB needs 1: its updates are not atomic
	// across connections.
	MaxPoolSize uint64
	// Timeout bounds connecting to and selecting a server; 0 means 10 s.
	Timeout time.Duration
}

// Mongo is the state.Store on MongoDB (or a wire-compatible server such as
// FerretDB). It writes with majority, journaled write concern and retryable
// writes and reads with majority read concern, on every collection. It uses no transaction, change stream,
// TTL or partial index.
type Mongo struct {
	client    *mongo.Client
	db        *mongo.Database
	log       *slog.Logger
	closed    atomic.Bool // set by Close
	closeOnce sync.Once
	closeErr  error

	orgs, envs, linkTokens, linkTokenUses, installations, apiTokens,
	promotions, activePromotions, audit,
	users, roleBindings, roles, settings, anchors *mongo.Collection
	connections *mongo.Collection
}

var _ state.Store = (*Mongo)(nil)

// mongoIndexes are created at start, by collection. Creating an existing
// index is a no-op.
var mongoIndexes = map[string][]mongo.IndexModel{
	"orgs": {
		{Keys: bson.D{{Key: "name", Value: 1}}, Options: options.Index().SetName("name_unique").SetUnique(true)},
	},
	"environments": {
		{Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "name", Value: 1}}, Options: options.Index().SetName("org_name_unique").SetUnique(true)},
	},
	"link_tokens": {
		{Keys: bson.D{{Key: "hash", Value: 1}}, Options: options.Index().SetName("hash_unique").SetUnique(true)},
	},
	"installations": {
		{Keys: bson.D{{Key: "credential_hash", Value: 1}}, Options: options.Index().SetName("credential_hash_unique").SetUnique(true)},
		{Keys: bson.D{{Key: "org_id", Value: 1}}, Options: options.Index().SetName("org")},
		// Links presenting a rotated-out credential find their installation
		// by it. Not unique: most documents have none.
		{Keys: bson.D{{Key: "previous_credential_hash", Value: 1}}, Options: options.Index().SetName("previous_credential_hash")},
	},
	"api_tokens": {
		{Keys: bson.D{{Key: "hash", Value: 1}}, Options: options.Index().SetName("hash_unique").SetUnique(true)},
		{Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "user_id", Value: 1}}, Options: options.Index().SetName("org_user")},
	},
	"users": {
		{Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "username", Value: 1}}, Options: options.Index().SetName("org_username_unique").SetUnique(true)},
	},
	"role_bindings": {
		{Keys: bson.D{{Key: "user_id", Value: 1}, {Key: "scope", Value: 1}, {Key: "env_id", Value: 1}, {Key: "cross_id", Value: 1}},
			Options: options.Index().SetName("user_scope_unique").SetUnique(true)},
		{Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "created_at", Value: 1}}, Options: options.Index().SetName("org_created")},
	},
	"roles": {
		// _id is the key already; this index states it in fields.
		{Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "scope", Value: 1}, {Key: "name", Value: 1}}, Options: options.Index().SetName("key_unique").SetUnique(true)},
	},
	"promotions": {
		{Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "created_at", Value: -1}}, Options: options.Index().SetName("org_created")},
		{Keys: bson.D{{Key: "status", Value: 1}}, Options: options.Index().SetName("status")},
		{Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "idempotency_key", Value: 1}}, Options: options.Index().SetName("org_idempotency_key_unique").SetUnique(true)},
	},
	"active_promotions": {
		// _id is the key already; this index states it in fields.
		{Keys: bson.D{{Key: "target_env_id", Value: 1}, {Key: "cross_id", Value: 1}}, Options: options.Index().SetName("key_unique").SetUnique(true)},
	},
	"audit": {
		{Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "seq", Value: 1}}, Options: options.Index().SetName("org_seq_unique").SetUnique(true)},
		{Keys: bson.D{{Key: "promotion_id", Value: 1}}, Options: options.Index().SetName("promotion")},
	},
	"audit_anchors": {
		{Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "seq", Value: 1}}, Options: options.Index().SetName("org_seq_unique").SetUnique(true)},
	},
	"connection_events": {
		{Keys: bson.D{{Key: "installation_id", Value: 1}, {Key: "at", Value: -1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("installation_at")},
	},
}

// writeConcern is every write's: acknowledged by a majority of the replica
// set and journaled, the only setting under which an acknowledged write
// cannot be rolled back.
func writeConcern() *writeconcern.WriteConcern {
	j := true
	return &writeconcern.WriteConcern{W: writeconcern.WCMajority, Journal: &j}
}

// clientOptions are the driver options of OpenMongo: majority and journaled
// writes, majority reads and retryable writes and reads, whatever uri says
// (its write concern, read concern and retry settings are overridden).
// opts must have its defaults filled in.
func clientOptions(uri string, opts MongoOptions) *options.ClientOptions {
	co := options.Client().ApplyURI(uri).
		SetWriteConcern(writeConcern()).
		SetReadConcern(readconcern.Majority()).
		SetRetryWrites(true).
		SetRetryReads(true).
		SetConnectTimeout(opts.Timeout).
		SetServerSelectionTimeout(opts.Timeout)
	if opts.MaxPoolSize > 0 {
		co.SetMaxPoolSize(opts.MaxPoolSize)
	}
	return co
}

// OpenMongo connects to the deployment at uri, checks that it answers and
// creates the indexes. An unreachable deployment is state.ErrUnavailable.
func OpenMongo(ctx context.Context, uri string, opts MongoOptions, logger *slog.Logger) (*Mongo, error) {
	if logger == nil {
		return nil, errors.New("open mongo: nil logger")
	}
	if opts.Database == "" {
		opts.Database = "ferry"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	client, err := mongo.Connect(clientOptions(uri, opts))
	if err != nil {
		return nil, fmt.Errorf("open mongo: %w", err)
	}
	db := client.Database(opts.Database)
	s := &Mongo{
		client:           client,
		db:               db,
		log:              logger.With("component", "store", "engine", "mongo"),
		orgs:             db.Collection("orgs"),
		envs:             db.Collection("environments"),
		linkTokens:       db.Collection("link_tokens"),
		linkTokenUses:    db.Collection("link_token_uses"),
		installations:    db.Collection("installations"),
		apiTokens:        db.Collection("api_tokens"),
		promotions:       db.Collection("promotions"),
		activePromotions: db.Collection("active_promotions"),
		audit:            db.Collection("audit"),
		users:            db.Collection("users"),
		roleBindings:     db.Collection("role_bindings"),
		roles:            db.Collection("roles"),
		settings:         db.Collection("settings"),
		anchors:          db.Collection("audit_anchors"),
		connections:      db.Collection("connection_events"),
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open mongo: %w", err)
	}
	if err := s.backfillIdemKeys(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open mongo: %w", err)
	}
	for coll, models := range mongoIndexes {
		if _, err := db.Collection(coll).Indexes().CreateMany(ctx, models); err != nil {
			s.Close()
			return nil, s.err("open mongo: create indexes on "+coll, err)
		}
	}
	s.log.InfoContext(ctx, "store opened", "database", opts.Database)
	return s, nil
}

// Ping implements state.Store.
func (s *Mongo) Ping(ctx context.Context) error {
	return s.err("ping", s.client.Ping(ctx, nil))
}

// Close disconnects. It is safe to call more than once; later calls return
// the first call's result, and every other method then fails with
// state.ErrUnavailable.
func (s *Mongo) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.closeErr = s.client.Disconnect(ctx)
	})
	return s.closeErr
}

// unavailableCodes are server error codes that mean "try again later".
var unavailableCodes = []int{
	6,     // HostUnreachable
	7,     // HostNotFound
	89,    // NetworkTimeout
	91,    // ShutdownInProgress
	189,   // PrimarySteppedDown
	262,   // ExceededTimeLimit
	9001,  // SocketException
	10107, // NotWritablePrimary
	11600, // InterruptedAtShutdown
	11602, // InterruptedDueToReplStateChange
	13435, // NotPrimaryNoSecondaryOk
	13436, // NotPrimaryOrSecondary
	64,    // WriteConcernFailed
}

// err wraps err from doing what, mapping driver errors to the state
// sentinels.
func (s *Mongo) err(what string, err error) error {
	if err == nil {
		return nil
	}
	var sse topology.ServerSelectionError
	var se mongo.ServerError
	switch {
	case s.closed.Load(), errors.Is(err, mongo.ErrClientDisconnected):
		return fmt.Errorf("%s: %w: store closed: %w", what, state.ErrUnavailable, err)
	case errors.Is(err, mongo.ErrNoDocuments):
		return fmt.Errorf("%s: %w", what, state.ErrNotFound)
	case mongo.IsDuplicateKeyError(err):
		return fmt.Errorf("%s: %w: %w", what, state.ErrConflict, err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", what, err)
	case mongo.IsNetworkError(err), mongo.IsTimeout(err), errors.As(err, &sse):
		return fmt.Errorf("%s: %w: %w", what, state.ErrUnavailable, err)
	case errors.As(err, &se):
		for _, code := range unavailableCodes {
			if se.HasErrorCode(code) {
				return fmt.Errorf("%s: %w: %w", what, state.ErrUnavailable, err)
			}
		}
		if se.HasErrorLabel("RetryableWriteError") {
			return fmt.Errorf("%s: %w: %w", what, state.ErrUnavailable, err)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// The lock primitives of CreatePromotion.

// activePromotionDoc is a document of active_promotions.
type activePromotionDoc struct {
	Key         string    `bson:"_id"`
	TargetEnvID string    `bson:"target_env_id"`
	CrossID     string    `bson:"cross_id"`
	PromotionID string    `bson:"promotion_id"`
	LockedAt    time.Time `bson:"locked_at"`
}

// mongoLockKey returns the _id of k's lock: a JSON array, so that no pair
// of ids can collide.
func mongoLockKey(k lockKey) string {
	b, _ := json.Marshal([]string{k.TargetEnvID, k.CrossID}) // strings always marshal
	return string(b)
}

func (s *Mongo) insertLock(ctx context.Context, k lockKey, promotionID string, at time.Time) error {
	_, err := s.activePromotions.InsertOne(ctx, activePromotionDoc{
		Key: mongoLockKey(k), TargetEnvID: k.TargetEnvID, CrossID: k.CrossID,
		PromotionID: promotionID, LockedAt: at,
	})
	return s.err("insert promotion lock", err)
}

func (s *Mongo) lockHolder(ctx context.Context, k lockKey) (string, time.Time, error) {
	var d activePromotionDoc
	if err := s.activePromotions.FindOne(ctx, bson.D{{Key: "_id", Value: mongoLockKey(k)}}).Decode(&d); err != nil {
		return "", time.Time{}, s.err("read promotion lock", err)
	}
	return d.PromotionID, d.LockedAt, nil
}

func (s *Mongo) deleteLock(ctx context.Context, k lockKey, promotionID string) error {
	_, err := s.activePromotions.DeleteOne(ctx, bson.D{
		{Key: "_id", Value: mongoLockKey(k)}, {Key: "promotion_id", Value: promotionID},
	})
	return s.err("delete promotion lock", err)
}
