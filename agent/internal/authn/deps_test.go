package authn

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportRules keeps authn a leaf: the task store and the task package
// use its types, so it imports no package of the agent, and it never opens
// the database or speaks to the hub itself.
func TestImportRules(t *testing.T) {
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
			switch {
			case strings.HasPrefix(p, "ferry.dev/agent/"):
				t.Errorf("%s imports %s: authn is a leaf; declare what you need (see Store)", f, p)
			case p == "modernc.org/sqlite", p == "github.com/gorilla/websocket":
				t.Errorf("%s imports %s: keys come from the link and persist through Store", f, p)
			}
		}
	}
}
