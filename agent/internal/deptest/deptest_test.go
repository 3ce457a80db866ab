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
	{"github.com/gorilla/websocket", []string{"ferry.dev/agent/internal/link", "ferry.dev/agent/internal/hubtest"}, "the link package owns the WebSocket; the fake hub may serve one"},
	{"modernc.org/sqlite", []string{"ferry.dev/agent/internal/taskstore"}, "SQL stays inside the task store"},
	{"github.com/hashicorp/go-retryablehttp", []string{"ferry.dev/agent/internal/apim"}, "APIM calls and their retry policy live in apim"},
	{"github.com/getkin/kin-openapi", []string{"ferry.dev/agent/apimsim", "ferry.dev/agent/internal/apim"}, "contract tests only"},
	{"ferry.dev/agent/internal/daemon", []string{"ferry.dev/agent/cmd/"}, "only main composes the agent"},
	{"ferry.dev/agent/internal/link", []string{"ferry.dev/agent/internal/link", "ferry.dev/agent/internal/daemon"}, "the task runner declares the hub interface it needs"},
	{"ferry.dev/agent/internal/web", []string{"ferry.dev/agent/internal/web", "ferry.dev/agent/internal/daemon", "ferry.dev/agent/internal/console"}, "nothing depends on the REST layer"},
	{"github.com/gin-gonic/gin", nil, "gin is the hub's REST framework only; the agent uses net/http"},
}

// TestImportRules checks every package of the agent module, including test
// files, against the rules above.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-test", "-json=ImportPath,Imports", "ferry.dev/agent/...").Output()
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
