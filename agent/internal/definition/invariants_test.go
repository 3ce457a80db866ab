package definition

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// samplesDir holds Gravitee's real export samples. CI lays out shared/ beside
// the clone, as on a developer machine.
const samplesDir = "../../../../shared/reference/gravitee/samples"

// loadSamples returns every sample export by file name. A missing folder
// fails the test: these files are the contract.
func loadSamples(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(samplesDir, "*.json"))
	if err != nil {
		t.Fatalf("glob samples: %v", err)
	}
	if len(paths) == 0 {
		t.Fatalf("no samples in %s", samplesDir)
	}
	out := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read sample: %v", err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".json")] = b
	}
	return out
}

// Keys that must not survive Sanitize, and the keys whose values are plugin
// configuration and so are never inspected. Written out here rather than
// shared with the implementation so that the test states the contract.
var (
	forbiddenKeys = map[string]bool{"members": true, "memberships": true, "groups": true, "primaryOwner": true}
	pluginKeys    = map[string]bool{"configuration": true, "sharedConfiguration": true, "sharedConfigurationOverride": true}
)

// invariants lists the ways a sanitized document breaks the package's
// promises. An empty result means it keeps them all.
func invariants(out []byte) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		return []string{fmt.Sprintf("output is not a JSON object: %v", err)}
	}

	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if forbiddenKeys[k] {
					bad("%s.%s is still present", path, k)
				}
				if !pluginKeys[k] {
					walk(path+"."+k, child)
				}
			}
		case []any:
			for i, child := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), child)
			}
		}
	}
	walk("$", root)

	api, _ := root["api"].(map[string]any)
	if api == nil {
		return append(problems, "no api object")
	}
	for _, k := range []string{"id", "_links"} {
		if _, ok := api[k]; ok {
			bad("api.%s is still present", k)
		}
	}
	if s, _ := api["crossId"].(string); s == "" {
		bad("api.crossId is empty")
	}
	for i, f := range list(api["flows"]) {
		if _, ok := f["id"]; ok {
			bad("api.flows[%d].id is still present", i)
		}
	}

	pageCrossIDs := map[string]bool{}
	var pages []map[string]any
	var collect func(ps []map[string]any)
	collect = func(ps []map[string]any) {
		for _, p := range ps {
			pages = append(pages, p)
			collect(list(p["translations"]))
		}
	}
	collect(list(root["pages"]))
	for i, p := range pages {
		c, _ := p["crossId"].(string)
		if c == "" {
			bad("page %d has no crossId", i)
		}
		if p["id"] != c {
			bad("page %d: id %v is not its crossId %q", i, p["id"], c)
		}
		pageCrossIDs[c] = true
		for _, k := range []string{"referenceId", "lastContributor"} {
			if _, ok := p[k]; ok {
				bad("page %d: %s is still present", i, k)
			}
		}
		for _, ac := range list(p["accessControls"]) {
			if ac["referenceType"] == "GROUP" {
				bad("page %d: a GROUP access control is still present", i)
			}
		}
	}
	for i, p := range pages {
		if parent, ok := p["parentId"]; ok && parent != "" && !pageCrossIDs[fmt.Sprint(parent)] {
			bad("page %d: parentId %v names no page of the export", i, parent)
		}
	}

	for i, p := range list(root["plans"]) {
		if c, _ := p["crossId"].(string); c == "" {
			bad("plans[%d] has no crossId", i)
		}
		for _, k := range []string{"id", "apiId", "apiProductId", "excludedGroups"} {
			if _, ok := p[k]; ok {
				bad("plans[%d].%s is still present", i, k)
			}
		}
		if gc, ok := p["generalConditions"]; ok && gc != "" && !pageCrossIDs[fmt.Sprint(gc)] {
			bad("plans[%d].generalConditions %v names no page of the export", i, gc)
		}
		for j, f := range list(p["flows"]) {
			if _, ok := f["id"]; ok {
				bad("plans[%d].flows[%d].id is still present", i, j)
			}
		}
	}
	for i, m := range list(root["metadata"]) {
		if _, ok := m["apiId"]; ok {
			bad("metadata[%d].apiId is still present", i)
		}
	}
	sort.Strings(problems)
	return problems
}

// list returns the objects of a JSON array, skipping anything else.
func list(v any) []map[string]any {
	arr, _ := v.([]any)
	var out []map[string]any
	for _, item := range arr {
		if m, ok := item.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// flatten maps every leaf of a JSON document (scalars, empty arrays and empty
// objects) to its JSON text, keyed by a path like api.flows[0].name. Numbers
// keep their literal text.
func flatten(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode: %v", err)
	}
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 0 {
				out[path] = "{}"
			}
			for k, child := range x {
				walk(strings.TrimPrefix(path+"."+k, "."), child)
			}
		case []any:
			if len(x) == 0 {
				out[path] = "[]"
			}
			for i, child := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), child)
			}
		default:
			b, err := json.Marshal(x)
			if err != nil {
				t.Fatalf("marshal %s: %v", path, err)
			}
			out[path] = string(b)
		}
	}
	walk("", v)
	return out
}
