package definition

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const fallback = "5b0f2a3c-0000-4000-8000-000000000001"

// mayDiffer matches the paths (with array indices written as []) whose value
// Sanitize may remove or rewrite. Every other leaf of a sample must come out
// exactly as it went in.
var mayDiffer = regexp.MustCompile(`^(` + strings.Join([]string{
	`members(\[\]|\.|$)`,
	`api\.(groups|primaryOwner)(\[\]|\.|$)`,
	`api\.(id|crossId)$`,
	`api\.flows\[\]\.id$`,
	`plans\[\]\.(id|apiId|crossId|generalConditions)$`,
	`plans\[\]\.excludedGroups(\[\]|$)`,
	`plans\[\]\.flows\[\]\.id$`,
	`pages\[\]\.(id|crossId|parentId|referenceId|lastContributor)$`,
}, "|") + `)`)

var index = regexp.MustCompile(`\[\d+\]`)

func TestSanitizeSamples(t *testing.T) {
	samples := loadSamples(t)
	tests := []struct {
		name    string
		want    Summary
		wantErr error
	}{
		{
			name: "v4-http-proxy-with-members-groups-plans-pages-media",
			want: Summary{CrossID: fallback, Name: "My Api", Version: "1.0.0", DefinitionVersion: V4},
		},
		{
			name: "v4-http-proxy-console-export-block-pages-plans-no-members",
			want: Summary{CrossID: fallback, Name: "Automation exportable", Version: "1", DefinitionVersion: V4},
		},
		{
			name: "v4-tcp-proxy-console-export-members-pages-plans",
			want: Summary{CrossID: fallback, Name: "TCP", Version: "1", DefinitionVersion: V4},
		},
		{
			name: "v4-http-proxy-no-ids-plan-with-flows",
			want: Summary{CrossID: fallback, Name: "echo-v4", Version: "1.0", DefinitionVersion: V4},
		},
		{
			name:    "v2-legacy-export-crossids-members-pages-plans",
			wantErr: ErrUnsupported,
		},
	}
	if len(tests) != len(samples) {
		t.Errorf("the table covers %d samples, the folder has %d: add the new ones", len(tests), len(samples))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, ok := samples[tt.name]
			if !ok {
				t.Fatalf("sample %s not found", tt.name)
			}
			got, err := Sanitize(raw, fallback)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Sanitize error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Sanitize: %v", err)
			}
			if diff := cmp.Diff(tt.want, got.Summary); diff != "" {
				t.Errorf("Summary (-want +got):\n%s", diff)
			}
			if p := invariants(got.JSON); len(p) > 0 {
				t.Errorf("invariants broken:\n%s", strings.Join(p, "\n"))
			}
			for _, key := range []string{`"members"`, `"groups"`, `"primaryOwner"`} {
				if bytes.Contains(got.JSON, []byte(key)) {
					t.Errorf("output still contains the key %s", key)
				}
			}
			for _, id := range localIDs(t, raw) {
				if bytes.Contains(got.JSON, []byte(`"`+id+`"`)) {
					t.Errorf("output still contains the source id %q", id)
				}
			}

			// Everything Sanitize is not meant to touch comes out unchanged.
			in, out := flatten(t, raw), flatten(t, got.JSON)
			var changed []string
			for _, p := range union(in, out) {
				if in[p] != out[p] && !mayDiffer.MatchString(index.ReplaceAllString(p, "[]")) {
					changed = append(changed, p+": "+in[p]+" -> "+out[p])
				}
			}
			if len(changed) > 0 {
				t.Errorf("fields changed that Sanitize must preserve:\n%s", strings.Join(changed, "\n"))
			}

			// Sanitizing twice changes nothing.
			again, err := Sanitize(got.JSON, "another-fallback")
			if err != nil {
				t.Fatalf("second Sanitize: %v", err)
			}
			if diff := cmp.Diff(string(got.JSON), string(again.JSON)); diff != "" {
				t.Errorf("Sanitize is not idempotent (-once +twice):\n%s", diff)
			}
		})
	}
}

// TestSanitizeKeepsPageLinks checks the one sample whose pages link to each
// other: a MARKDOWN page inside a FOLDER, used as a plan's general conditions.
func TestSanitizeKeepsPageLinks(t *testing.T) {
	raw := loadSamples(t)["v4-http-proxy-console-export-block-pages-plans-no-members"]
	got, err := Sanitize(raw, fallback)
	if err != nil {
		t.Fatalf("Sanitize: %v", err)
	}
	var doc struct {
		Pages []map[string]any `json:"pages"`
		Plans []map[string]any `json:"plans"`
	}
	if err := json.Unmarshal(got.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	byName := map[string]map[string]any{}
	for _, p := range doc.Pages {
		byName[p["name"].(string)] = p
	}
	folder, conditions := byName["Legal"], byName["General Conditions"]
	if folder == nil || conditions == nil {
		t.Fatalf("pages missing: %v", doc.Pages)
	}
	want := map[string]any{
		"folder id":          deriveCrossID(fallback, "page", "id:d73e0602-460b-451d-be06-02460b251d00"),
		"conditions id":      deriveCrossID(fallback, "page", "id:dc0d8bda-6c16-4793-8d8b-da6c16279348"),
		"conditions parent":  deriveCrossID(fallback, "page", "id:d73e0602-460b-451d-be06-02460b251d00"),
		"plan conditions":    deriveCrossID(fallback, "page", "id:dc0d8bda-6c16-4793-8d8b-da6c16279348"),
		"plan crossId":       deriveCrossID(fallback, "plan", "id:fa417460-3df3-44b1-8174-603df3d4b178"),
		"folder crossId":     deriveCrossID(fallback, "page", "id:d73e0602-460b-451d-be06-02460b251d00"),
		"conditions crossId": deriveCrossID(fallback, "page", "id:dc0d8bda-6c16-4793-8d8b-da6c16279348"),
	}
	gotMap := map[string]any{
		"folder id":          folder["id"],
		"conditions id":      conditions["id"],
		"conditions parent":  conditions["parentId"],
		"plan conditions":    doc.Plans[0]["generalConditions"],
		"plan crossId":       doc.Plans[0]["crossId"],
		"folder crossId":     folder["crossId"],
		"conditions crossId": conditions["crossId"],
	}
	if diff := cmp.Diff(want, gotMap); diff != "" {
		t.Errorf("page links (-want +got):\n%s", diff)
	}
}

func TestSanitizeCases(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		fallback string
		want     string
	}{
		{
			name:     "existing crossIds are kept and references follow them",
			fallback: fallback,
			in: `{"api":{"definitionVersion":"V4","id":"a1","crossId":"api-x"},
				"pages":[{"id":"p1","crossId":"page-x","name":"F"},{"id":"p2","name":"C","parentId":"p1"}],
				"plans":[{"id":"pl1","crossId":"plan-x","apiId":"a1","generalConditions":"p1"}]}`,
			want: `{"api":{"crossId":"api-x","definitionVersion":"V4"},
				"pages":[{"crossId":"page-x","id":"page-x","name":"F"},
				         {"crossId":"` + deriveCrossID("api-x", "page", "id:p2") + `","id":"` + deriveCrossID("api-x", "page", "id:p2") + `","name":"C","parentId":"page-x"}],
				"plans":[{"crossId":"plan-x","generalConditions":"page-x"}]}`,
		},
		{
			name:     "plans without ids get crossIds from their names, unique per export",
			fallback: "api-y",
			in: `{"api":{"definitionVersion":"V4"},
				"plans":[{"name":"Free"},{"name":"Free"},{"name":"Gold","flows":[{"id":"f1","name":"x"}]}]}`,
			want: `{"api":{"crossId":"api-y","definitionVersion":"V4"},
				"plans":[{"crossId":"` + deriveCrossID("api-y", "plan", "name:Free") + `","name":"Free"},
				         {"crossId":"` + deriveCrossID("api-y", "plan", "name:Free#1") + `","name":"Free"},
				         {"crossId":"` + deriveCrossID("api-y", "plan", "name:Gold") + `","flows":[{"name":"x"}],"name":"Gold"}]}`,
		},
		{
			name:     "member- and group-shaped keys go everywhere except plugin configuration",
			fallback: "api-z",
			in: `{"api":{"definitionVersion":"V4","groups":["g"],"primaryOwner":{"id":"u"},
					"definitionContext":{"memberships":[1]},
					"flows":[{"id":"f","request":[{"policy":"p","configuration":{"groups":["keep"],"members":1}}]}],
					"endpointGroups":[{"sharedConfiguration":{"primaryOwner":"keep"}}]},
				"members":[{"id":"u"}],
				"plans":[{"crossId":"c","excludedGroups":["g"],"security":{"type":"JWT","configuration":{"groups":"keep"}}}],
				"pages":[{"crossId":"pg","lastContributor":"u","referenceId":"a","referenceType":"API",
					"accessControls":[{"referenceId":"g","referenceType":"GROUP"},{"referenceId":"r","referenceType":"ROLE"}]}]}`,
			want: `{"api":{"crossId":"api-z","definitionVersion":"V4","definitionContext":{},
					"flows":[{"request":[{"policy":"p","configuration":{"groups":["keep"],"members":1}}]}],
					"endpointGroups":[{"sharedConfiguration":{"primaryOwner":"keep"}}]},
				"plans":[{"crossId":"c","security":{"type":"JWT","configuration":{"groups":"keep"}}}],
				"pages":[{"crossId":"pg","id":"pg","referenceType":"API","accessControls":[{"referenceId":"r","referenceType":"ROLE"}]}]}`,
		},
		{
			name:     "references to pages outside the export are dropped",
			fallback: "api-w",
			in: `{"api":{"definitionVersion":"V4","crossId":"api-w"},
				"pages":[{"crossId":"pg","parentId":"gone"}],
				"plans":[{"crossId":"c","generalConditions":"gone"},{"crossId":"d","generalConditions":""}]}`,
			want: `{"api":{"crossId":"api-w","definitionVersion":"V4"},
				"pages":[{"crossId":"pg","id":"pg"}],
				"plans":[{"crossId":"c"},{"crossId":"d","generalConditions":""}]}`,
		},
		{
			name:     "numbers, unknown fields and HTML characters are preserved",
			fallback: "api-v",
			in:       `{"api":{"definitionVersion":"V4","x-big":12345678901234567890,"f":1.50,"cond":"a<b && c>d"},"future":{"k":[1e3]}}`,
			want:     `{"api":{"cond":"a<b && c>d","crossId":"api-v","definitionVersion":"V4","f":1.50,"x-big":12345678901234567890},"future":{"k":[1e3]}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Sanitize([]byte(tt.in), tt.fallback)
			if err != nil {
				t.Fatalf("Sanitize: %v", err)
			}
			if diff := cmp.Diff(compact(t, tt.want), string(got.JSON)); diff != "" {
				t.Errorf("Sanitize (-want +got):\n%s", diff)
			}
			if p := invariants(got.JSON); len(p) > 0 {
				t.Errorf("invariants broken:\n%s", strings.Join(p, "\n"))
			}
		})
	}
}

func TestSanitizeErrors(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		fallback string
		want     error
	}{
		{name: "empty", in: ``, want: ErrInvalid},
		{name: "not JSON", in: `api: yes`, want: ErrInvalid},
		{name: "array", in: `[{"api":{}}]`, want: ErrInvalid},
		{name: "string", in: `"V4"`, want: ErrInvalid},
		{name: "trailing data", in: `{"api":{"definitionVersion":"V4"}} {}`, want: ErrInvalid},
		{name: "invalid UTF-8", in: "{\"api\":{\"definitionVersion\":\"V4\",\"name\":\"\xff\"}}", want: ErrInvalid},
		{name: "no api", in: `{"plans":[]}`, want: ErrInvalid},
		{name: "legacy V2 format", in: `{"gravitee":"2.0.0","name":"x"}`, want: ErrUnsupported},
		{name: "V2 definitionVersion", in: `{"api":{"definitionVersion":"V2"}}`, want: ErrUnsupported},
		{name: "no definitionVersion", in: `{"api":{"name":"x"}}`, want: ErrUnsupported},
		{name: "no crossId and no fallback", in: `{"api":{"definitionVersion":"V4"}}`, want: ErrInvalid},
		{name: "crossId not a string", in: `{"api":{"definitionVersion":"V4","crossId":7}}`, fallback: "f", want: ErrInvalid},
		{name: "plans not an array", in: `{"api":{"definitionVersion":"V4"},"plans":{}}`, fallback: "f", want: ErrInvalid},
		{name: "page not an object", in: `{"api":{"definitionVersion":"V4"},"pages":["p"]}`, fallback: "f", want: ErrInvalid},
		{name: "parentId not a string", in: `{"api":{"definitionVersion":"V4"},"pages":[{"parentId":1}]}`, fallback: "f", want: ErrInvalid},
		{name: "too large", in: `{"api":{"definitionVersion":"V4","pad":"` + strings.Repeat("x", MaxSize) + `"}}`, fallback: "f", want: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Sanitize([]byte(tt.in), tt.fallback)
			if !errors.Is(err, tt.want) {
				t.Errorf("Sanitize error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestInfo(t *testing.T) {
	samples := loadSamples(t)
	tests := []struct {
		name string
		raw  []byte
		want Summary
	}{
		{
			name: "legacy V2 export",
			raw:  samples["v2-legacy-export-crossids-members-pages-plans"],
			want: Summary{CrossID: "ff47ea1f-43b8-48cf-87ea-1f43b8c8cf29", Name: "Secured HTTP API", Version: "1", DefinitionVersion: V2},
		},
		{
			name: "V4 export without crossId",
			raw:  samples["v4-tcp-proxy-console-export-members-pages-plans"],
			want: Summary{Name: "TCP", Version: "1", DefinitionVersion: V4},
		},
		{
			name: "V4 export with crossId",
			raw:  []byte(`{"api":{"definitionVersion":"V4","crossId":"c","name":"n","apiVersion":"2"}}`),
			want: Summary{CrossID: "c", Name: "n", Version: "2", DefinitionVersion: V4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := bytes.Clone(tt.raw)
			got, err := Info(tt.raw)
			if err != nil {
				t.Fatalf("Info: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Info (-want +got):\n%s", diff)
			}
			if !bytes.Equal(before, tt.raw) {
				t.Errorf("Info changed its input")
			}
		})
	}
	if _, err := Info([]byte(`[]`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Info([]) error = %v, want ErrInvalid", err)
	}
}

func TestStableCrossID(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	tests := []struct {
		name        string
		env, api    string
		differsFrom [2]string
	}{
		{name: "typical", env: "dev", api: "1d5a2d23-df93-450c-9a2d-23df93950c33", differsFrom: [2]string{"prod", "1d5a2d23-df93-450c-9a2d-23df93950c33"}},
		{name: "boundary between the parts counts", env: "ab", api: "c", differsFrom: [2]string{"a", "bc"}},
		{name: "empty inputs", env: "", api: "", differsFrom: [2]string{"", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := StableCrossID(tt.env, tt.api)
			if !uuid.MatchString(got) {
				t.Errorf("StableCrossID = %q, not a version 8 UUID", got)
			}
			if again := StableCrossID(tt.env, tt.api); again != got {
				t.Errorf("StableCrossID is not stable: %q then %q", got, again)
			}
			if other := StableCrossID(tt.differsFrom[0], tt.differsFrom[1]); other == got {
				t.Errorf("StableCrossID(%q, %q) = StableCrossID(%q, %q) = %q", tt.env, tt.api, tt.differsFrom[0], tt.differsFrom[1], got)
			}
		})
	}
}

// localIDs returns the environment-local ids of an export: the API's, its
// plans', pages' and flows' ids, and the plans' apiId.
func localIDs(t *testing.T, raw []byte) []string {
	t.Helper()
	var doc struct {
		API struct {
			ID    string `json:"id"`
			Flows []struct {
				ID string `json:"id"`
			} `json:"flows"`
		} `json:"api"`
		Plans []struct {
			ID    string `json:"id"`
			APIID string `json:"apiId"`
			Flows []struct {
				ID string `json:"id"`
			} `json:"flows"`
		} `json:"plans"`
		Pages []struct {
			ID string `json:"id"`
		} `json:"pages"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("decode ids: %v", err)
	}
	ids := []string{doc.API.ID}
	for _, f := range doc.API.Flows {
		ids = append(ids, f.ID)
	}
	for _, p := range doc.Plans {
		ids = append(ids, p.ID, p.APIID)
		for _, f := range p.Flows {
			ids = append(ids, f.ID)
		}
	}
	for _, p := range doc.Pages {
		ids = append(ids, p.ID)
	}
	var out []string
	for _, id := range ids {
		if id != "" {
			out = append(out, id)
		}
	}
	return out
}

// compact re-encodes a JSON text the way Sanitize writes it.
func compact(t *testing.T, s string) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("bad test JSON: %v", err)
	}
	b, err := encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func union(a, b map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]string{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}
