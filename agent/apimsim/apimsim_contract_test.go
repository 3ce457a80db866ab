package apimsim_test

// The contract test: Ferry's APIM client and the stand-in are both checked
// against Gravitee's real Management API v2 OpenAPI spec, and Gravitee's real
// export samples go through the stand-in and come back intact.
//
// The spec and samples live in shared/reference/gravitee, beside the clone
// (../../../shared from this package), on developer machines and in CI.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/go-cmp/cmp"

	"ferry.dev/agent/apimsim"
	"ferry.dev/agent/internal/apim"
	"ferry.dev/agent/internal/definition"
)

const (
	referenceDir = "../../../shared/reference/gravitee"
	specFile     = referenceDir + "/openapi/openapi-apis.yaml"
	samplesGlob  = referenceDir + "/samples/*.json"
	seedGlob     = "../../deploy/seed/dev/*.json"

	// sharedConfigSample is the real console export whose
	// endpointGroups[0].sharedConfiguration is a JSON-encoded string where the
	// spec says object (see the reference README). It is the one known
	// deviation between Gravitee's real payloads and its spec.
	sharedConfigSample = "v4-http-proxy-console-export-block-pages-plans-no-members"
)

// loadSpec loads openapi-apis.yaml and the openapi-environments.yaml it
// references, once per test binary.
//
// openapi-environments.yaml refers twice to
// #/components/parameters/clusterIdParam, which exists nowhere (also broken
// upstream; only the cluster endpoints use it, not the APIs operations). The
// reference files stay untouched: the reader points those two references at
// the clusterId parameter that does exist, in memory, and loading fails if
// that patch stops matching so that it can be removed.
var loadSpec = sync.OnceValues(func() (*openapi3.T, error) {
	const broken, fixed = `#/components/parameters/clusterIdParam"`, `#/components/parameters/clusterId"`
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = true
	loader.ReadFromURIFunc = openapi3.URIMapCache(func(l *openapi3.Loader, u *url.URL) ([]byte, error) {
		b, err := openapi3.ReadFromFile(l, u)
		if err != nil || !strings.HasSuffix(u.Path, "openapi-environments.yaml") {
			return b, err
		}
		if n := bytes.Count(b, []byte(broken)); n != 2 {
			return nil, fmt.Errorf("%s: expected 2 references to clusterIdParam, found %d: if the spec was fixed, drop the patch", u.Path, n)
		}
		return bytes.ReplaceAll(b, []byte(broken), []byte(fixed)), nil
	})
	doc, err := loader.LoadFromFile(specFile)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", specFile, err)
	}
	return doc, nil
})

// validator is middleware that checks every request reaching the stand-in,
// and every response leaving it, against the spec.
type validator struct {
	router routers.Router
	next   http.Handler

	mu       sync.Mutex
	problems []string
	checked  map[string]int // operationId -> exchanges validated
	allowed  map[string]int // known deviation -> times tolerated
}

// Known deviations between Gravitee's real payloads and its spec. Each is
// tolerated only where its matcher says; everything else in the same
// bodies is still validated.
const (
	devSharedConfig = "sharedConfiguration string"
	devReadOnly     = "readOnly property from an export"
)

var deviations = []struct {
	name  string
	match func(error) bool
}{
	{devSharedConfig, isSharedConfigString},
	{devReadOnly, isReadOnlyInExport},
}

func newValidator(t *testing.T, next http.Handler) *validator {
	t.Helper()
	doc, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return &validator{router: router, next: next, checked: map[string]int{}, allowed: map[string]int{}}
}

func (v *validator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		v.fail("read body: %v", err)
	}
	route, params, err := v.router.FindRoute(r)
	if err != nil {
		v.fail("%s %s: no operation in the spec: %v", r.Method, r.URL, err)
		v.next.ServeHTTP(w, r)
		return
	}
	op := route.Operation.OperationID
	opts := &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true, AuthenticationFunc: basicAuth}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		v.check(op, "request", err)
	}

	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	v.next.ServeHTTP(rec, r)

	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(), Options: opts}
	out.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		v.check(op, fmt.Sprintf("response %d", rec.Code), err)
	}
	v.mu.Lock()
	v.checked[op]++
	v.mu.Unlock()

	for k, vals := range rec.Header() {
		w.Header()[k] = vals
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// basicAuth satisfies the spec's security requirement only with HTTP Basic
// credentials, which is what the client must send.
func basicAuth(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecuritySchemeName != "BasicAuth" {
		return fmt.Errorf("scheme %s not used", in.SecuritySchemeName)
	}
	if _, _, ok := in.RequestValidationInput.Request.BasicAuth(); !ok {
		return errors.New("no Basic credentials")
	}
	return nil
}

// check records err, except for the known deviations.
func (v *validator) check(op, what string, err error) {
	var rest []string
	known := map[string]int{}
next:
	for _, leaf := range leaves(err) {
		for _, d := range deviations {
			if d.match(leaf) {
				known[d.name]++
				continue next
			}
		}
		rest = append(rest, leaf.Error())
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for name, n := range known {
		v.allowed[name] += n
	}
	if len(rest) > 0 {
		v.problems = append(v.problems, fmt.Sprintf("%s %s:\n  %s", op, what, strings.Join(rest, "\n  ")))
	}
}

func (v *validator) fail(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

// tolerated returns how often a known deviation was tolerated so far.
func (v *validator) tolerated(name string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.allowed[name]
}

// report fails t with every problem seen, and resets.
func (v *validator) report(t *testing.T) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, p := range v.problems {
		t.Errorf("spec violation: %s", p)
	}
	v.problems = nil
}

// leaves flattens the errors kin-openapi returns into the individual
// failures.
func leaves(err error) []error {
	var me openapi3.MultiError
	if errors.As(err, &me) {
		var out []error
		for _, e := range me {
			out = append(out, leaves(e)...)
		}
		return out
	}
	var se *openapi3.SchemaError
	if errors.As(err, &se) && se.Origin != nil {
		if sub := leaves(se.Origin); len(sub) > 0 {
			return sub
		}
	}
	return []error{err}
}

// isSharedConfigString reports the known deviation: a string where the spec
// wants an object, at endpointGroups[n].sharedConfiguration. Only that field
// is exempt; everything else in the same bodies is still validated.
func isSharedConfigString(err error) bool {
	var se *openapi3.SchemaError
	if !errors.As(err, &se) {
		return false
	}
	p := se.JSONPointer()
	_, isString := se.Value.(string)
	return isString && len(p) >= 3 && p[len(p)-1] == "sharedConfiguration" && p[len(p)-3] == "endpointGroups"
}

// isReadOnlyInExport reports the second known deviation: the spec marks
// api.definitionContext and api.workflowState readOnly (the only two readOnly
// properties in it), kin-openapi rejects readOnly properties in requests, yet
// Gravitee's own exports carry them (two of the real samples have
// definitionContext) and its import accepts and ignores them. Only these two
// properties are exempt, and only from the readOnly rule.
func isReadOnlyInExport(err error) bool {
	var se *openapi3.SchemaError
	if !errors.As(err, &se) || se.SchemaField != "readOnly" {
		return false
	}
	p := se.JSONPointer()
	return len(p) == 2 && p[0] == "api" && (p[1] == "definitionContext" || p[1] == "workflowState")
}

// contractEnv is a stand-in behind the validator, and a client for it.
type contractEnv struct {
	sim    *apimsim.Server
	v      *validator
	base   string // the Management API v2 base URL
	client *apim.Client
}

func newContractEnv(t *testing.T, envID string) *contractEnv {
	t.Helper()
	sim := apimsim.New(apimsim.Options{User: "admin", Password: "admin"})
	v := newValidator(t, sim)
	ts := httptest.NewServer(v)
	t.Cleanup(ts.Close)
	e := &contractEnv{sim: sim, v: v, base: ts.URL + "/management/v2"}
	e.client = e.withEnv(t, envID)
	return e
}

func readFiles(t *testing.T, glob string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(glob)
	if err != nil || len(paths) == 0 {
		t.Fatalf("no files match %s (%v)", glob, err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".json")] = b
	}
	return out
}

// TestContract drives every operation through the client against the
// stand-in, validating all traffic against the spec, with the real V4
// samples (as exported, and sanitized) and Ferry's dev seeds as payloads.
func TestContract(t *testing.T) {
	e := newContractEnv(t, "DEFAULT")
	ctx := t.Context()

	payloads := map[string][]byte{}
	for name, raw := range readFiles(t, samplesGlob) {
		if strings.HasPrefix(name, "v2-") {
			continue // legacy format: not an ExportApiV4, refused by design
		}
		payloads[name] = raw
		clean, err := definition.Sanitize(raw, definition.StableCrossID("contract", name))
		if err != nil {
			t.Fatalf("Sanitize %s: %v", name, err)
		}
		payloads[name+" (sanitized)"] = clean.JSON
	}
	for name, raw := range readFiles(t, seedGlob) {
		payloads["seed "+name] = raw
	}

	names := make([]string, 0, len(payloads))
	for name := range payloads {
		names = append(names, name)
	}
	slices.Sort(names)
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			before := e.v.tolerated(devSharedConfig)
			// Each payload goes to its own environment, so that the same
			// sample, raw and sanitized, does not collide on its path.
			envClient := e.withEnv(t, fmt.Sprintf("env-%d", i))
			created, err := envClient.ImportCreate(ctx, payloads[name])
			if err != nil {
				t.Fatalf("ImportCreate: %v", err)
			}
			got, err := envClient.GetAPI(ctx, created.ID)
			if err != nil || got.ID != created.ID {
				t.Fatalf("GetAPI = %+v, %v", got, err)
			}
			exported, err := envClient.Export(ctx, created.ID)
			if err != nil {
				t.Fatalf("Export: %v", err)
			}
			if _, err := envClient.ImportUpdate(ctx, created.ID, exported); err != nil {
				t.Fatalf("ImportUpdate with its own export: %v", err)
			}
			if apis, err := envClient.ListAPIs(ctx); err != nil || len(apis) != 1 {
				t.Fatalf("ListAPIs = %v, %v", apis, err)
			}
			e.v.report(t)
			// The sharedConfiguration exemption must fire for that sample,
			// in every operation that carries it, and nowhere else.
			seen := e.v.tolerated(devSharedConfig) - before
			if strings.HasPrefix(name, sharedConfigSample) {
				if seen < 5 { // create (request, response), get, export, update (request, response), list
					t.Errorf("the sharedConfiguration deviation was tolerated %d times, want at least 5: drop the exemption if the sample changed", seen)
				}
			} else if seen != 0 {
				t.Errorf("the sharedConfiguration deviation was tolerated %d times for a sample without it", seen)
			}
		})
	}

	// Pagination across several pages of a populated environment.
	for i := range 5 {
		def := fmt.Sprintf(`{"api":{"definitionVersion":"V4","type":"PROXY","name":"Paged %d","apiVersion":"1",
			"listeners":[{"type":"HTTP","paths":[{"path":"/paged-%d/"}],"entrypoints":[{"type":"http-proxy"}]}],
			"endpointGroups":[{"name":"g","type":"http-proxy","endpoints":[{"name":"e","type":"http-proxy","configuration":{"target":"http://x"}}]}]}}`, i, i)
		if _, err := e.client.ImportCreate(ctx, []byte(def)); err != nil {
			t.Fatalf("ImportCreate: %v", err)
		}
	}
	if apis, err := e.client.ListAPIs(ctx); err != nil || len(apis) != 5 {
		t.Fatalf("ListAPIs = %d APIs, %v; want 5 over 3 pages", len(apis), err)
	}

	// Error answers are Gravitee Error bodies too.
	if _, err := e.client.GetAPI(ctx, "missing"); !apim.IsNotFound(err) {
		t.Errorf("GetAPI(missing) = %v", err)
	}
	if _, err := e.client.ImportUpdate(ctx, "missing", payloads[names[0]]); !apim.IsNotFound(err) {
		t.Errorf("ImportUpdate(missing) = %v", err)
	}
	if _, err := e.client.ImportCreate(ctx, []byte(`{"api":{"definitionVersion":"V4"}}`)); err == nil {
		t.Errorf("ImportCreate without a name succeeded")
	}
	e.v.report(t)

	e.v.mu.Lock()
	defer e.v.mu.Unlock()
	for _, op := range []string{apimsim.OpListAPIs, apimsim.OpGetAPI, apimsim.OpExport, apimsim.OpImportCreate, apimsim.OpImportUpdate} {
		if e.v.checked[op] == 0 {
			t.Errorf("no %s exchange was validated", op)
		}
	}
}

// withEnv returns a client for another environment of the same stand-in.
func (e *contractEnv) withEnv(t *testing.T, envID string) *apim.Client {
	t.Helper()
	c, err := apim.New(apim.Config{BaseURL: e.base, EnvID: envID, User: "admin", Password: "admin", PageSize: 2, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRoundTrip imports each real V4 sample, exports it back and checks that
// what defines the API survived.
func TestRoundTrip(t *testing.T) {
	for name, raw := range readFiles(t, samplesGlob) {
		if strings.HasPrefix(name, "v2-") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			e := newContractEnv(t, "DEFAULT")
			created, err := e.client.ImportCreate(t.Context(), raw)
			if err != nil {
				t.Fatalf("ImportCreate: %v", err)
			}
			exported, err := e.client.Export(t.Context(), created.ID)
			if err != nil {
				t.Fatalf("Export: %v", err)
			}
			e.v.report(t)

			var in, out map[string]any
			if err := json.Unmarshal(raw, &in); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(exported, &out); err != nil {
				t.Fatal(err)
			}
			inAPI, outAPI := in["api"].(map[string]any), out["api"].(map[string]any)
			for _, k := range []string{"name", "apiVersion", "description", "type", "definitionVersion", "listeners",
				"endpointGroups", "analytics", "flowExecution", "properties", "resources", "responseTemplates", "visibility", "tags"} {
				if diff := cmp.Diff(inAPI[k], outAPI[k]); diff != "" {
					t.Errorf("api.%s changed (-in +out):\n%s", k, diff)
				}
			}
			if diff := cmp.Diff(dropKeys(inAPI["flows"], "id"), dropKeys(outAPI["flows"], "id")); diff != "" {
				t.Errorf("api.flows changed (-in +out):\n%s", diff)
			}
			if outAPI["id"] != created.ID || outAPI["crossId"] != created.CrossID || created.CrossID == "" {
				t.Errorf("export has id %v crossId %v; create said %s %s", outAPI["id"], outAPI["crossId"], created.ID, created.CrossID)
			}
			for _, k := range []string{"metadata", "apiPicture", "apiBackground", "apiMedia"} {
				if diff := cmp.Diff(in[k], out[k]); diff != "" {
					t.Errorf("%s changed (-in +out):\n%s", k, diff)
				}
			}
			if _, ok := out["members"]; ok {
				t.Errorf("export without members has members")
			}
			if _, ok := outAPI["groups"]; ok {
				t.Errorf("export without groups has api.groups")
			}

			// Plans and pages: same content, new ids, links remapped.
			ids := map[string]string{} // source page id -> exported page id
			inPages, outPages := objects(in["pages"]), objects(out["pages"])
			if len(inPages) != len(outPages) {
				t.Fatalf("%d pages exported, %d imported", len(outPages), len(inPages))
			}
			for i := range inPages {
				ids[str(inPages[i]["id"])] = str(outPages[i]["id"])
				if diff := cmp.Diff(dropKeys(inPages[i], "id", "parentId", "crossId", "referenceId", "referenceType"),
					dropKeys(outPages[i], "id", "parentId", "crossId", "referenceId", "referenceType")); diff != "" {
					t.Errorf("page %d changed (-in +out):\n%s", i, diff)
				}
			}
			for i := range inPages {
				if p := str(inPages[i]["parentId"]); p != "" && outPages[i]["parentId"] != ids[p] {
					t.Errorf("page %d parentId = %v, want %v (the new id of %s)", i, outPages[i]["parentId"], ids[p], p)
				}
			}
			inPlans, outPlans := objects(in["plans"]), objects(out["plans"])
			if len(inPlans) != len(outPlans) {
				t.Fatalf("%d plans exported, %d imported", len(outPlans), len(inPlans))
			}
			for i := range inPlans {
				if diff := cmp.Diff(dropKeys(inPlans[i], "id", "apiId", "crossId", "generalConditions", "flows"),
					dropKeys(outPlans[i], "id", "apiId", "crossId", "generalConditions", "flows")); diff != "" {
					t.Errorf("plan %d changed (-in +out):\n%s", i, diff)
				}
				if gc := str(inPlans[i]["generalConditions"]); gc != "" && outPlans[i]["generalConditions"] != ids[gc] {
					t.Errorf("plan %d generalConditions = %v, want %v", i, outPlans[i]["generalConditions"], ids[gc])
				}
				if outPlans[i]["apiId"] != created.ID {
					t.Errorf("plan %d apiId = %v, want %s", i, outPlans[i]["apiId"], created.ID)
				}
			}
		})
	}
}

func objects(v any) []map[string]any {
	arr, _ := v.([]any)
	out := make([]map[string]any, 0, len(arr))
	for _, it := range arr {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// dropKeys returns a copy of v without the keys, at the top level of an
// object or of each object of an array.
func dropKeys(v any, keys ...string) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			if !slices.Contains(keys, k) {
				out[k] = val
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, it := range x {
			out[i] = dropKeys(it, keys...)
		}
		return out
	}
	return v
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// TestValidatorCatchesViolations shows that the validator above is not
// vacuous: bad requests and bad responses are reported.
func TestValidatorCatchesViolations(t *testing.T) {
	bad := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"data":[{"definitionVersion":"V4","name":5}],"pagination":{"page":"one"}}`)
	})
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		auth   bool
		want   string // part of the reported problem
	}{
		{name: "bad response", method: http.MethodGet, path: "/management/v2/environments/DEFAULT/apis", auth: true, want: "listApis response 200"},
		{name: "no credentials", method: http.MethodGet, path: "/management/v2/environments/DEFAULT/apis", want: "listApis request"},
		{
			name: "bad import body", method: http.MethodPost, path: "/management/v2/environments/DEFAULT/apis/_import/definition", auth: true,
			body: `{"api":{"definitionVersion":"V4","name":"x","listeners":[{"type":"HTTP","paths":"nope"}]}}`,
			want: "createApiWithImportDefinition request",
		},
		{name: "unknown operation", method: http.MethodDelete, path: "/management/v2/environments/DEFAULT/apis/_import/definition", auth: true, want: "no operation in the spec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newValidator(t, bad)
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			if tt.auth {
				req.SetBasicAuth("admin", "admin")
			}
			v.ServeHTTP(httptest.NewRecorder(), req)
			v.mu.Lock()
			defer v.mu.Unlock()
			if !slices.ContainsFunc(v.problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Errorf("problems = %q, want one mentioning %q", v.problems, tt.want)
			}
		})
	}
}
