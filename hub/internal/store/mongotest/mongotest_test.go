package mongotest

import (
	"context"
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestStart(t *testing.T) {
	type got struct{ uri, db string }
	var results [2]got
	t.Run("group", func(t *testing.T) {
		for i := range results {
			t.Run("user", func(t *testing.T) {
				t.Parallel()
				uri, db := Start(t)
				results[i] = got{uri, db}
				client, err := mongo.Connect(options.Client().ApplyURI(uri).SetMaxPoolSize(1))
				if err != nil {
					t.Fatalf("Connect: %v", err)
				}
				defer client.Disconnect(context.Background())
				if err := client.Ping(t.Context(), nil); err != nil {
					t.Fatalf("Ping: %v", err)
				}
				if _, err := client.Database(db).Collection("c").InsertOne(t.Context(), map[string]int{"x": 1}); err != nil {
					t.Fatalf("InsertOne: %v", err)
				}
			})
		}
	})
	if results[0].db == results[1].db {
		t.Errorf("two tests got database %q", results[0].db)
	}
	if os.Getenv(EnvURI) != "" {
		return
	}
	if results[0].uri != results[1].uri {
		t.Errorf("concurrent tests got servers %s and %s, want one shared", results[0].uri, results[1].uri)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.refs != 0 || shared.dir != "" {
		t.Errorf("after the tests: %d users, data directory %q; want the server stopped", shared.refs, shared.dir)
	}
}
