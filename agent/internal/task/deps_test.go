package task

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportRules keeps the task package a domain package: it declares the
// interfaces it needs and never imports the link, the REST layer or the
// composition root.
func TestImportRules(t *testing.T) {
	forbidden := map[string]string{
		"ferry.dev/agent/internal/link":   "declare what you need from the hub in Hub",
		"ferry.dev/agent/internal/web":    "REST types live in web and are converted there",
		"ferry.dev/agent/internal/daemon": "nothing imports the composition root",
		"github.com/gorilla/websocket":    "only the link packages speak WebSocket",
		"github.com/gin-gonic/gin":        "gin is not allowed in the agent",
		"modernc.org/sqlite":              "only taskstore opens the database",
	}
	for _, imp := range imports(t, ".") {
		if why, bad := forbidden[imp]; bad {
			t.Errorf("task imports %s: %s", imp, why)
		}
	}
}

// imports returns the imports of the non-test Go files in dir.
func imports(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
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
			out = append(out, p)
		}
	}
	return out
}
