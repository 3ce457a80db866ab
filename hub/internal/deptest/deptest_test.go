package deptest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Imports    []string
}

// rule forbids importers matching from (prefix) to import packages matching
// to (prefix), unless the importer is allowed.
type rule struct {
	to      string
	allowed []string // import-path prefixes that may import it
	reason  string
}

var rules = []rule{
	{"github.com/gin-gonic/gin", []string{"ferry.dev/hub/internal/api"}, "REST handlers live in api; everything else stays framework-free"},
	{"go.mongodb.org/mongo-driver", []string{"ferry.dev/hub/internal/store"}, "BSON and the driver stay inside the store"},
	{"modernc.org/sqlite", []string{"ferry.dev/hub/internal/store"}, "SQL stays inside the store"},
	{"github.com/FerretDB/FerretDB", []string{"ferry.dev/hub/internal/store/mongotest"}, "the wire-compatible test server is for store tests only"},
	{"github.com/gorilla/websocket", []string{"ferry.dev/hub/internal/link", "ferry.dev/hub/internal/agenttest", "ferry.dev/hub/cmd/ferry-linkbench", "ferry.dev/hub/e2e", "ferry.dev/hub/browsertest"}, "the link package owns the WebSocket; fakes and benchmarks may dial"},
	{"ferry.dev/hub/internal/server", []string{"ferry.dev/hub/cmd/", "ferry.dev/hub/e2e"}, "only main composes the hub"},
	// faultstore's outage test composes the real API over a faulty store,
	// as server does; the package itself imports only state.
	{"ferry.dev/hub/internal/store", []string{"ferry.dev/hub/internal/store", "ferry.dev/hub/internal/server", "ferry.dev/hub/internal/deploycheck", "ferry.dev/hub/internal/faultstore"}, "domain packages declare the store interface they need"},
	{"ferry.dev/hub/internal/link", []string{"ferry.dev/hub/internal/link", "ferry.dev/hub/internal/server", "ferry.dev/hub/internal/agenttest"}, "domain packages never see connections"},
	{"ferry.dev/hub/internal/api", []string{"ferry.dev/hub/internal/api", "ferry.dev/hub/internal/server", "ferry.dev/hub/internal/faultstore"}, "nothing depends on the REST layer"},
}

// stdlibOnly are the shared packages (and their subpackages) that import the
// standard library only, apart from each other: the wire protocol and its
// golden-file checks, and the consoles' shared code and assets.
var stdlibOnly = []string{"ferry.dev/shared/protocol", "ferry.dev/shared/webconsole", "ferry.dev/shared/consoleassets"}

// TestImportRules checks every package of the hub and shared modules,
// including test files, against the rules above; the stdlibOnly packages
// import the standard library only.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-test", "-json=ImportPath,Imports", "ferry.dev/hub/...", "ferry.dev/shared/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		path := strings.Fields(p.ImportPath)[0] // drop " [x.test]"
		path = strings.TrimSuffix(path, ".test")
		path = strings.TrimSuffix(path, "_test")
		for _, imp := range p.Imports {
			imp = strings.Fields(imp)[0]
			if imp == path {
				continue // a package's external test imports the package
			}
			if inTree(path, stdlibOnly) && strings.Contains(strings.Split(imp, "/")[0], ".") && !allowed(imp, stdlibOnly) {
				t.Errorf("%s imports %s: it uses the standard library only", path, imp)
			}
			for _, r := range rules {
				if !strings.HasPrefix(imp, r.to) || allowed(path, r.allowed) {
					continue
				}
				t.Errorf("%s imports %s: %s", path, imp, r.reason)
			}
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d packages listed; the rules checked nothing", checked)
	}
}

func allowed(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// inTree reports whether path is one of roots or inside one of them.
func inTree(path string, roots []string) bool {
	for _, r := range roots {
		if path == r || strings.HasPrefix(path, r+"/") {
			return true
		}
	}
	return false
}
