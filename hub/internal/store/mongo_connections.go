package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"ferry.dev/hub/internal/state"
)

// connectionDoc is a document of connection_events; the driver generates
// its _id, which breaks ties between events of the same millisecond.
type connectionDoc struct {
	ID             bson.ObjectID `bson:"_id,omitempty"`
	InstallationID string        `bson:"installation_id"`
	OrgID          string        `bson:"org_id"`
	At             time.Time     `bson:"at"`
	Event          string        `bson:"event"`
	Reason         string        `bson:"reason"`
	Remote         string        `bson:"remote"`
}

func (d connectionDoc) event() state.ConnectionEvent {
	return state.ConnectionEvent{InstallationID: d.InstallationID, OrgID: d.OrgID, At: msTime(d.At), Event: d.Event, Reason: d.Reason, Remote: d.Remote}
}

// newestFirst orders an installation's connection events.
var newestFirst = bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}

// RecordConnection implements state.Store: it appends the event, then
// deletes what lies beyond the newest MaxConnectionEvents (two writes; a
// crash between them leaves a few more, trimmed by the next event).
func (s *Mongo) RecordConnection(ctx context.Context, e state.ConnectionEvent) error {
	if e.InstallationID == "" || e.Event == "" {
		return fmt.Errorf("record connection: %w: need an installation and an event", errInvalid)
	}
	if _, err := s.connections.InsertOne(ctx, connectionDoc{ID: bson.NewObjectID(), InstallationID: e.InstallationID, OrgID: e.OrgID,
		At: msTime(e.At), Event: e.Event, Reason: e.Reason, Remote: e.Remote}); err != nil {
		return s.err("record connection", err)
	}
	old, err := findAll(ctx, s, "trim connection history", s.connections, bson.D{{Key: "installation_id", Value: e.InstallationID}},
		func(d connectionDoc) bson.ObjectID { return d.ID },
		options.Find().SetSort(newestFirst).SetSkip(state.MaxConnectionEvents).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil || len(old) == 0 {
		return err
	}
	_, err = s.connections.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: old}}}})
	return s.err("trim connection history", err)
}

// ListConnections implements state.Store.
func (s *Mongo) ListConnections(ctx context.Context, installationID string, limit int) ([]state.ConnectionEvent, error) {
	return findAll(ctx, s, "list connections", s.connections, bson.D{{Key: "installation_id", Value: installationID}}, connectionDoc.event,
		options.Find().SetSort(newestFirst).SetLimit(int64(pageLimit(limit))))
}
