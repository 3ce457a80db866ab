package web

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportRules: the REST layer uses net/http's ServeMux (no gin in the
// agent) and reaches the link and the store only through the task package.
func TestImportRules(t *testing.T) {
	forbidden := map[string]string{
		"github.com/gin-gonic/gin":        "gin is not allowed in the agent; use net/http",
		"ferry.dev/agent/internal/link":   "status comes from Config.Status",
		"ferry.dev/agent/internal/daemon": "nothing imports the composition root",
		"modernc.org/sqlite":              "only taskstore opens the database",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, is := range af.Imports {
			p, _ := strconv.Unquote(is.Path.Value)
			if why, bad := forbidden[p]; bad {
				t.Errorf("%s imports %s: %s", f, p, why)
			}
		}
	}
}
