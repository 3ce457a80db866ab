package audit

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"testing"
)

// TestEventsListsEveryEvent reads audit.go and checks that Events holds
// every event name declared there, once.
func TestEventsListsEveryEvent(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "audit.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			for _, v := range spec.(*ast.ValueSpec).Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					name, _ := strconv.Unquote(lit.Value)
					declared = append(declared, name)
				}
			}
		}
	}
	if len(declared) < 20 {
		t.Fatalf("found %d event constants in audit.go; the parse missed them", len(declared))
	}
	for _, ev := range declared {
		if n := len(slices.DeleteFunc(slices.Clone(Events), func(e string) bool { return e != ev })); n != 1 {
			t.Errorf("Events holds %s %d times, want once", ev, n)
		}
	}
	if len(Events) != len(declared) {
		t.Errorf("Events has %d names, audit.go declares %d", len(Events), len(declared))
	}
}
