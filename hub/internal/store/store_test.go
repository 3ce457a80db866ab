package store

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
	"ferry.dev/hub/internal/store/mongotest"
	"ferry.dev/hub/internal/store/storetest"
)

// crashable adds storetest.Crasher to an engine.
type crashable struct {
	state.Store
	locks promotionLocks
}

func (c crashable) LeaveLock(ctx context.Context, targetEnvID, crossID, promotionID string, lockedAt time.Time) error {
	return c.locks.insertLock(ctx, lockKey{TargetEnvID: targetEnvID, CrossID: crossID}, promotionID, msTime(lockedAt))
}

// testLogger discards everything.
func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openSQLite opens a SQLite store in a temporary directory.
func openSQLite(t testing.TB) *SQLite {
	t.Helper()
	s, err := OpenSQLite(t.Context(), t.TempDir(), testLogger())
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openMongo opens a Mongo store on FerretDB (or FERRY_TEST_MONGO_URI).
func openMongo(t testing.TB) *Mongo {
	t.Helper()
	uri, db := mongotest.Start(t)
	s, err := OpenMongo(t.Context(), uri, MongoOptions{Database: db, MaxPoolSize: 1}, testLogger())
	if err != nil {
		t.Fatalf("OpenMongo: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) state.Store {
		s := openSQLite(t)
		return crashable{Store: s, locks: s}
	})
}

func TestMongo(t *testing.T) {
	storetest.Run(t, func(t *testing.T) state.Store {
		s := openMongo(t)
		return crashable{Store: s, locks: s}
	})
}
