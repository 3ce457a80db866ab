package definition

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzSanitize checks that Sanitize never panics, fails only with its own
// error kinds, and that whatever it returns keeps the package's invariants
// and is a fixed point. The seed corpus is Gravitee's real samples plus a few
// edge shapes; `go test` runs the seeds, `go test -fuzz FuzzSanitize`
// explores from them.
func FuzzSanitize(f *testing.F) {
	for _, raw := range loadSamples(f) {
		f.Add(raw)
	}
	for _, s := range []string{
		`{}`,
		`[]`,
		`null`,
		`{"api":{"definitionVersion":"V4"}}`,
		`{"api":{"definitionVersion":"V4","crossId":""},"members":null,"plans":null,"pages":null}`,
		`{"api":{"definitionVersion":"V4","crossId":"c"},"pages":[{"id":"a","parentId":"a"},{"id":"b","crossId":"a","parentId":"b"}],"plans":[{"id":"a","generalConditions":"b"}]}`,
		`{"api":{"definitionVersion":"V4"},"pages":[{"translations":[{"id":"t","parentId":"t"}]}]}`,
		`{"api":{"definitionVersion":"V4","groups":{"groups":[{"members":1}]}}}`,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := Sanitize(raw, "fuzz-fallback")
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Sanitize error %v wraps none of the package's error kinds", err)
			}
			return
		}
		if p := invariants(got.JSON); len(p) > 0 {
			t.Fatalf("invariants broken for input %q:\n%s", raw, strings.Join(p, "\n"))
		}
		if got.CrossID == "" || got.DefinitionVersion != V4 {
			t.Fatalf("Summary = %+v, want a crossId and V4", got.Summary)
		}
		again, err := Sanitize(got.JSON, "other-fallback")
		if err != nil {
			t.Fatalf("Sanitize of its own output: %v", err)
		}
		if !bytes.Equal(got.JSON, again.JSON) {
			t.Fatalf("not idempotent for input %q:\nonce:  %s\ntwice: %s", raw, got.JSON, again.JSON)
		}
		info, err := Info(got.JSON)
		if err != nil {
			t.Fatalf("Info of Sanitize output: %v", err)
		}
		if info != got.Summary {
			t.Fatalf("Info = %+v, Sanitize said %+v", info, got.Summary)
		}
	})
}
