package store

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

// TestMongoClientOptions is H1 of shared/reference/reliability.md: the
// Mongo store writes with w:majority and j:true, retries writes and reads
// with majority read concern, on every collection (collections inherit the
// client's settings; the store sets none of its own), whatever the URI asks.
func TestMongoClientOptions(t *testing.T) {
	for _, uri := range []string{
		"mongodb://127.0.0.1:27017/",
		"mongodb://127.0.0.1:27017/?w=0&journal=false&retryWrites=false&readConcernLevel=local",
		"mongodb://127.0.0.1:27017/?w=1&retryWrites=false&readConcernLevel=available",
	} {
		t.Run(uri, func(t *testing.T) {
			co := clientOptions(uri, MongoOptions{Database: "ferry", Timeout: time.Second})
			wc := co.WriteConcern
			if wc == nil || wc.W != writeconcern.WCMajority {
				t.Errorf("write concern w = %v, want %q", wc, writeconcern.WCMajority)
			}
			if wc == nil || wc.Journal == nil || !*wc.Journal {
				t.Errorf("write concern j = %v, want true", wc)
			}
			if !wc.Acknowledged() {
				t.Errorf("write concern %v is unacknowledged", wc)
			}
			if rc := co.ReadConcern; rc == nil || rc.Level != readconcern.Majority().Level {
				t.Errorf("read concern = %v, want majority", rc)
			}
			if co.RetryWrites == nil || !*co.RetryWrites {
				t.Errorf("retryWrites = %v, want true", co.RetryWrites)
			}
			if co.RetryReads == nil || !*co.RetryReads {
				t.Errorf("retryReads = %v, want true", co.RetryReads)
			}
		})
	}
}

// TestNoUnacknowledgedWrites is H1's second check: no source file of the
// package (tests aside) asks for w:0 or an unacknowledged write, or sets a
// collection- or database-level concern that could override the client's.
func TestNoUnacknowledgedWrites(t *testing.T) {
	bad := regexp.MustCompile(`(?i)(\bw\s*[:=]\s*0\b|"w"\s*,\s*0|writeconcern\.Unacknowledged|W:\s*0\b|` +
		`SetWriteConcern\(writeconcern\.W1|options\.(Collection|Database)\(\)\.Set(Write|Read)Concern|readconcern\.(Local|Available)\(\))`)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for i, line := range strings.Split(string(b), "\n") {
			if bad.MatchString(line) {
				t.Errorf("%s:%d: %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
	if checked < 5 {
		t.Fatalf("checked only %d source files; run from the package directory", checked)
	}
	// The pattern itself works.
	for _, s := range []string{`SetWriteConcern(writeconcern.Unacknowledged())`, `?w=0&x`, `bson.D{{"w", 0}}`} {
		if !bad.MatchString(s) {
			t.Errorf("pattern misses %q", s)
		}
	}
}

// TestMongoIndexes is H2: OpenMongo ensures the unique indexes the
// contract's uniqueness rules rest on; listIndexes (through FerretDB) shows
// them.
func TestMongoIndexes(t *testing.T) {
	s := openMongo(t)
	ctx := t.Context()
	want := map[string][][]string{ // collection → unique key sets
		"orgs":              {{"name"}},
		"environments":      {{"org_id", "name"}},
		"link_tokens":       {{"hash"}},
		"installations":     {{"credential_hash"}},
		"api_tokens":        {{"hash"}},
		"users":             {{"org_id", "username"}},
		"role_bindings":     {{"user_id", "scope", "env_id", "cross_id"}},
		"roles":             {{"org_id", "scope", "name"}},
		"active_promotions": {{"target_env_id", "cross_id"}},
		"audit":             {{"org_id", "seq"}},
		"promotions":        {{"org_id", "idempotency_key"}},
		"audit_anchors":     {{"org_id", "seq"}},
	}
	for coll, keys := range want {
		cur, err := s.db.Collection(coll).Indexes().List(ctx)
		if err != nil {
			t.Fatalf("listIndexes %s: %v", coll, err)
		}
		var idx []bson.M
		if err := cur.All(ctx, &idx); err != nil {
			t.Fatalf("listIndexes %s: %v", coll, err)
		}
		var unique [][]string
		for _, ix := range idx {
			if u, _ := ix["unique"].(bool); !u {
				continue
			}
			var fields []string
			for _, e := range ix["key"].(bson.D) {
				fields = append(fields, e.Key)
			}
			unique = append(unique, fields)
			t.Logf("%s: unique index %s on %v", coll, ix["name"], fields)
		}
		for _, k := range keys {
			if !slices.ContainsFunc(unique, func(u []string) bool { return slices.Equal(u, k) }) {
				t.Errorf("%s has no unique index on %v (unique: %v)", coll, k, unique)
			}
		}
	}
}
