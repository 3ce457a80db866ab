package mongotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// EnvURI names the environment variable that points the tests at a real
// MongoDB deployment (for example a replica set) instead of FerretDB.
const EnvURI = "FERRY_TEST_MONGO_URI"

// Start returns the URI of a MongoDB wire server and a database name that
// no other caller gets. The database is dropped (real MongoDB) or the
// server stopped (FerretDB, once no test uses it) when t finishes.
func Start(t testing.TB) (uri, database string) {
	t.Helper()
	database = databaseName(t)
	if uri := os.Getenv(EnvURI); uri != "" {
		t.Cleanup(func() { dropDatabase(t, uri, database) })
		return uri, database
	}
	uri, err := shared.acquire()
	if err != nil {
		t.Fatalf("mongotest: start FerretDB: %v", err)
	}
	t.Cleanup(shared.release)
	return uri, database
}

// server is the embedded FerretDB shared by the tests that run at the same
// time. FerretDB's embedding package writes a package-level variable in New,
// so a second instance must not be created while one is running.
type server struct {
	mu   sync.Mutex // guards the fields below
	refs int
	uri  string
	dir  string
	stop context.CancelFunc
	done chan struct{}
}

var shared server

// acquire starts FerretDB unless it runs, and returns its URI.
func (s *server) acquire() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs > 0 {
		s.refs++
		return s.uri, nil
	}
	dir, err := os.MkdirTemp("", "ferry-ferretdb-")
	if err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
	})
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("create FerretDB: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	uri := f.MongoDBURI()
	if err := waitReady(uri); err != nil {
		cancel()
		<-done
		os.RemoveAll(dir)
		return "", err
	}
	s.refs, s.uri, s.dir, s.stop, s.done = 1, uri, dir, cancel, done
	return uri, nil
}

// release stops FerretDB when the last test using it is done.
func (s *server) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.refs > 0 {
		return
	}
	s.stop()
	<-s.done
	os.RemoveAll(s.dir)
	s.uri, s.dir, s.stop, s.done = "", "", nil, nil
}

// waitReady pings the server at uri until it answers or 10 s pass.
func waitReady(uri string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetMaxPoolSize(1))
	if err != nil {
		return fmt.Errorf("connect to FerretDB: %w", err)
	}
	defer client.Disconnect(context.Background())
	for {
		err := client.Ping(ctx, nil)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for FerretDB: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dropDatabase removes a test's database from a real MongoDB deployment.
func dropDatabase(t testing.TB, uri, database string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Logf("mongotest: connect to drop %s: %v", database, err)
		return
	}
	defer client.Disconnect(context.Background())
	if err := client.Database(database).Drop(ctx); err != nil {
		t.Logf("mongotest: drop %s: %v", database, err)
	}
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// databaseName derives a valid, unique database name from the test's name.
// MongoDB limits database names to 63 bytes.
func databaseName(t testing.TB) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("mongotest: random database name: %v", err)
	}
	name := strings.Trim(unsafeChars.ReplaceAllString(t.Name(), "_"), "_")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return "t_" + name + "_" + hex.EncodeToString(b[:])
}
