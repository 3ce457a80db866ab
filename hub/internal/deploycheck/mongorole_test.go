package deploycheck

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// mongoRole is deploy/mongo/hub-role.json: the MongoDB role of the hub's
// database user.
type mongoRole struct {
	Role       string `json:"role"`
	DB         string `json:"db"`
	Privileges []struct {
		Resource struct {
			DB         *string `json:"db"`
			Collection *string `json:"collection"`
			Cluster    bool    `json:"cluster"`
			AnyRes     bool    `json:"anyResource"`
		} `json:"resource"`
		Actions []string `json:"actions"`
	} `json:"privileges"`
	Roles []json.RawMessage `json:"roles"`
}

// appendOnly are the collections the hub may only read and insert into.
var appendOnly = []string{"audit", "audit_anchors"}

// TestMongoHubRoleAppendOnlyAudit is E4 of shared/reference/reliability.md
// for MongoDB: the role deploy/mongo/init-ferry.js gives the hub's user may
// only find and insert on audit and its anchors (no update, remove or
// drop), grants nothing
// database- or cluster-wide and inherits no role (either could reach
// audit), and covers every collection the Mongo store opens.
func TestMongoHubRoleAppendOnlyAudit(t *testing.T) {
	b, err := os.ReadFile(repoPath(t, "deploy/mongo/hub-role.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r mongoRole
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("hub-role.json: %v", err)
	}
	if r.Role == "" || r.DB != "ferry" {
		t.Errorf("role %q on db %q, want a role on ferry", r.Role, r.DB)
	}
	if len(r.Roles) != 0 {
		t.Errorf("the role inherits %d roles; it must grant only what it lists", len(r.Roles))
	}
	auditAllowed := []string{"find", "insert", "createIndex", "listIndexes", "createCollection"}
	granted := map[string][]string{}
	for i, p := range r.Privileges {
		res := p.Resource
		switch {
		case res.Cluster || res.AnyRes || res.DB == nil || *res.DB != r.DB:
			t.Errorf("privilege %d is not confined to the %s database: %+v", i, r.DB, res)
			continue
		case res.Collection == nil || *res.Collection == "":
			t.Errorf("privilege %d covers every collection of %s (so audit too): %v", i, r.DB, p.Actions)
			continue
		}
		c := *res.Collection
		granted[c] = append(granted[c], p.Actions...)
		if slices.Contains(p.Actions, "anyAction") {
			t.Errorf("privilege %d grants anyAction on %s", i, c)
		}
	}
	for _, c := range appendOnly {
		for _, a := range granted[c] {
			if !slices.Contains(auditAllowed, a) {
				t.Errorf("the hub may %s on %s; it may only %v", a, c, auditAllowed)
			}
		}
		for _, a := range []string{"find", "insert"} {
			if !slices.Contains(granted[c], a) {
				t.Errorf("the hub may not %s on %s", a, c)
			}
		}
	}

	// Every collection the store opens is covered, with the actions it
	// needs.
	src, err := os.ReadFile(repoPath(t, "hub/internal/store/mongo.go"))
	if err != nil {
		t.Fatal(err)
	}
	colls := regexp.MustCompile(`db\.Collection\("([a-z_]+)"\)`).FindAllStringSubmatch(string(src), -1)
	if len(colls) < 10 {
		t.Fatalf("found only %d collections in store/mongo.go; the pattern is stale", len(colls))
	}
	for _, m := range colls {
		c := m[1]
		need := []string{"find", "insert", "update", "remove", "createIndex"}
		if slices.Contains(appendOnly, c) {
			need = []string{"find", "insert", "createIndex"}
		}
		for _, a := range need {
			if !slices.Contains(granted[c], a) {
				t.Errorf("the store uses collection %s but the role does not grant %s on it", c, a)
			}
		}
	}

	// The init script loads this file and gives it to the hub's user.
	js, err := os.ReadFile(repoPath(t, "deploy/mongo/init-ferry.js"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hub-role.json", "createRole", "createUser", "FERRY_MONGO_PASSWORD"} {
		if !strings.Contains(string(js), want) {
			t.Errorf("init-ferry.js does not mention %s", want)
		}
	}
}
