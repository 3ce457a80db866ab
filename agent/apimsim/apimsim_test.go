package apimsim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"ferry.dev/agent/apimsim"
)

const base = "/management/v2/environments/DEFAULT/apis"

// fixedNow is the stand-in's clock in these tests.
var fixedNow = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func newServer(t *testing.T, opts apimsim.Options) (*apimsim.Server, *httptest.Server) {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	sim := apimsim.New(opts)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	return sim, ts
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
}

// call sends a request with Basic auth admin/secret unless auth is false.
func call(t *testing.T, ts *httptest.Server, method, path, body string) reply {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth("admin", "secret")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := reply{status: resp.StatusCode, header: resp.Header}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out.body); err != nil {
			t.Fatalf("%s %s: body is not a JSON object: %v: %s", method, path, err, b)
		}
	}
	return out
}

// def returns a minimal V4 definition served at path.
func def(name, crossID, path string) string {
	cross := ""
	if crossID != "" {
		cross = fmt.Sprintf(`"crossId":%q,`, crossID)
	}
	return fmt.Sprintf(`{"api":{"definitionVersion":"V4",%s"type":"PROXY","name":%q,"apiVersion":"1",
		"listeners":[{"type":"HTTP","paths":[{"path":%q}],"entrypoints":[{"type":"http-proxy"}]}]}}`, cross, name, path)
}

func TestAuth(t *testing.T) {
	_, ts := newServer(t, apimsim.Options{User: "admin", Password: "secret", Token: "pat-1"})
	tests := []struct {
		name   string
		set    func(*http.Request)
		status int
	}{
		{name: "no credentials", set: func(*http.Request) {}, status: http.StatusUnauthorized},
		{name: "wrong password", set: func(r *http.Request) { r.SetBasicAuth("admin", "nope") }, status: http.StatusUnauthorized},
		{name: "wrong user", set: func(r *http.Request) { r.SetBasicAuth("root", "secret") }, status: http.StatusUnauthorized},
		{name: "basic", set: func(r *http.Request) { r.SetBasicAuth("admin", "secret") }, status: http.StatusOK},
		{name: "bearer", set: func(r *http.Request) { r.Header.Set("Authorization", "Bearer pat-1") }, status: http.StatusOK},
		{name: "wrong bearer", set: func(r *http.Request) { r.Header.Set("Authorization", "Bearer pat-2") }, status: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, ts.URL+base, nil)
			tt.set(req)
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == http.StatusUnauthorized {
				var e map[string]any
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e["httpStatus"] != float64(401) {
					t.Errorf("401 body = %v (%v), want a Gravitee Error", e, err)
				}
			}
		})
	}
}

func TestList(t *testing.T) {
	sim, ts := newServer(t, apimsim.Options{})
	for i := range 25 {
		if _, err := sim.Import("DEFAULT", []byte(def(fmt.Sprintf("API %02d", i), "", fmt.Sprintf("/a%d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sim.Import("other", []byte(def("Elsewhere", "", "/a0"))); err != nil {
		t.Fatalf("same path in another environment: %v", err)
	}
	tests := []struct {
		name      string
		query     string
		status    int
		names     []string
		paging    map[string]any
		wantLinks []string
	}{
		{
			name: "defaults", query: "", status: 200,
			names:     []string{"API 00", "API 01", "API 02", "API 03", "API 04", "API 05", "API 06", "API 07", "API 08", "API 09"},
			paging:    map[string]any{"page": 1.0, "perPage": 10.0, "pageCount": 3.0, "pageItemsCount": 10.0, "totalCount": 25.0},
			wantLinks: []string{"first", "last", "next", "self"},
		},
		{
			name: "last page", query: "?page=3&perPage=10", status: 200,
			names:     []string{"API 20", "API 21", "API 22", "API 23", "API 24"},
			paging:    map[string]any{"page": 3.0, "perPage": 10.0, "pageCount": 3.0, "pageItemsCount": 5.0, "totalCount": 25.0},
			wantLinks: []string{"first", "last", "previous", "self"},
		},
		{name: "past the end", query: "?page=4", status: 400},
		{name: "perPage zero", query: "?perPage=0", status: 400},
		{name: "page not a number", query: "?page=x", status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, ts, http.MethodGet, base+tt.query, "")
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d: %v", r.status, tt.status, r.body)
			}
			if tt.status != 200 {
				if r.body["technicalCode"] != "pagination.invalid" {
					t.Errorf("error body = %v", r.body)
				}
				return
			}
			var names []string
			for _, a := range r.body["data"].([]any) {
				names = append(names, a.(map[string]any)["name"].(string))
			}
			if diff := cmp.Diff(tt.names, names); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.paging, r.body["pagination"]); diff != "" {
				t.Errorf("pagination (-want +got):\n%s", diff)
			}
			var links []string
			for k := range r.body["links"].(map[string]any) {
				links = append(links, k)
			}
			if diff := cmp.Diff(tt.wantLinks, links, cmpSorted); diff != "" {
				t.Errorf("links (-want +got):\n%s", diff)
			}
		})
	}
	empty := call(t, ts, http.MethodGet, "/management/v2/organizations/DEFAULT/environments/nowhere/apis", "")
	if empty.status != 200 || len(empty.body["data"].([]any)) != 0 {
		t.Errorf("unknown environment: %d %v, want an empty page", empty.status, empty.body)
	}
}

var cmpSorted = cmpopts.SortSlices(func(a, b string) bool { return a < b })

func TestImportCreateErrors(t *testing.T) {
	sim, ts := newServer(t, apimsim.Options{MaxBodyBytes: 4096})
	if _, err := sim.Import("DEFAULT", []byte(def("Taken", "cross-taken", "/taken"))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
	}{
		{name: "malformed JSON", body: `{"api":`, status: 400},
		{name: "not an object", body: `[1]`, status: 400},
		{name: "legacy V2", body: `{"gravitee":"2.0.0","name":"x"}`, status: 400},
		{name: "V2 definition", body: `{"api":{"definitionVersion":"V2","name":"x"}}`, status: 400},
		{name: "no name", body: `{"api":{"definitionVersion":"V4"}}`, status: 400},
		{name: "plans not a list", body: `{"api":{"definitionVersion":"V4","name":"x"},"plans":{}}`, status: 400},
		{name: "too large", body: `{"api":{"definitionVersion":"V4","name":"` + strings.Repeat("x", 5000) + `"}}`, status: 413},
		{name: "wrong content type", contentType: "text/plain", body: def("x", "", "/x"), status: 415},
		{name: "path in use", body: def("Other", "", "/taken/"), status: 400},
		{name: "crossId in use", body: def("Other", "cross-taken", "/free"), status: 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, ts.URL+base+"/_import/definition", strings.NewReader(tt.body))
			ct := tt.contentType
			if ct == "" {
				ct = "application/json"
			}
			req.Header.Set("Content-Type", ct)
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("body: %v", err)
			}
			if resp.StatusCode != tt.status || e["httpStatus"] != float64(tt.status) || e["message"] == "" {
				t.Errorf("got %d %v, want %d with a Gravitee Error", resp.StatusCode, e, tt.status)
			}
		})
	}
	if got := len(sim.APIs("DEFAULT")); got != 1 {
		t.Errorf("%d APIs stored after failed imports, want 1", got)
	}
}

// TestImportIDs checks that ids are recalculated as APIM does and that page
// links survive: on create from old ids, and on update by crossId.
func TestImportIDs(t *testing.T) {
	sim, ts := newServer(t, apimsim.Options{User: "admin", Password: "secret"})
	in := `{"api":{"definitionVersion":"V4","id":"src-api","name":"Docs","listeners":[]},
		"pages":[{"id":"p-folder","crossId":"pc-folder","name":"Legal","type":"FOLDER"},
		         {"id":"p-terms","crossId":"pc-terms","name":"Terms","type":"MARKDOWN","parentId":"p-folder"},
		         {"id":"p-orphan","name":"Orphan","parentId":"p-missing"}],
		"plans":[{"id":"src-plan","crossId":"plc-free","name":"Free","generalConditions":"p-terms","definitionVersion":"V4"},
		         {"crossId":"plc-old","name":"Old","definitionVersion":"V4"}]}`
	created := call(t, ts, http.MethodPost, base+"/_import/definition", in)
	if created.status != http.StatusCreated {
		t.Fatalf("create: %d %v", created.status, created.body)
	}
	apiID := created.body["id"].(string)
	if apiID == "" || apiID == "src-api" || created.body["crossId"] == "" {
		t.Fatalf("create answered id %q crossId %v", apiID, created.body["crossId"])
	}
	if created.body["primaryOwner"].(map[string]any)["displayName"] != "admin" {
		t.Errorf("primaryOwner = %v, want the importing user", created.body["primaryOwner"])
	}
	exp := call(t, ts, http.MethodGet, base+"/"+apiID+"/_export/definition", "")
	pages, plans := byName(exp.body["pages"]), byName(exp.body["plans"])
	if pages["Terms"]["parentId"] != pages["Legal"]["id"] {
		t.Errorf("Terms.parentId = %v, want Legal's new id %v", pages["Terms"]["parentId"], pages["Legal"]["id"])
	}
	if _, ok := pages["Orphan"]["parentId"]; ok {
		t.Errorf("a parentId naming no imported page was kept: %v", pages["Orphan"])
	}
	if plans["Free"]["generalConditions"] != pages["Terms"]["id"] || plans["Free"]["apiId"] != apiID {
		t.Errorf("plan Free = %v, want generalConditions %v and apiId %v", plans["Free"], pages["Terms"]["id"], apiID)
	}
	for _, id := range []any{pages["Legal"]["id"], pages["Terms"]["id"], plans["Free"]["id"]} {
		if s, _ := id.(string); s == "" || strings.HasPrefix(s, "p-") || strings.HasPrefix(s, "src-") {
			t.Errorf("id %v was not recalculated", id)
		}
	}

	// Update by crossId: matching pages and plans keep their ids, plans
	// missing from the import are deleted, pages are upserted.
	upd := `{"api":{"definitionVersion":"V4","name":"Docs v2","listeners":[]},
		"pages":[{"id":"pc-terms","crossId":"pc-terms","name":"Terms","type":"MARKDOWN","content":"new"},
		         {"id":"pc-new","crossId":"pc-new","name":"New","type":"MARKDOWN","parentId":"pc-terms"}],
		"plans":[{"crossId":"plc-free","name":"Free","generalConditions":"pc-terms","definitionVersion":"V4"}]}`
	updated := call(t, ts, http.MethodPut, base+"/"+apiID+"/_import/definition", upd)
	if updated.status != http.StatusOK || updated.body["name"] != "Docs v2" || updated.body["id"] != apiID {
		t.Fatalf("update: %d %v", updated.status, updated.body)
	}
	exp2 := call(t, ts, http.MethodGet, base+"/"+apiID+"/_export/definition", "")
	pages2, plans2 := byName(exp2.body["pages"]), byName(exp2.body["plans"])
	want := map[string]any{
		"terms id kept":          pages["Terms"]["id"],
		"free id kept":           plans["Free"]["id"],
		"conditions remapped":    pages["Terms"]["id"],
		"new page parent":        pages["Terms"]["id"],
		"untouched page kept":    pages["Legal"]["id"],
		"plans after update":     1,
		"primary owner survives": "admin",
	}
	got := map[string]any{
		"terms id kept":          pages2["Terms"]["id"],
		"free id kept":           plans2["Free"]["id"],
		"conditions remapped":    plans2["Free"]["generalConditions"],
		"new page parent":        pages2["New"]["parentId"],
		"untouched page kept":    pages2["Legal"]["id"],
		"plans after update":     len(plans2),
		"primary owner survives": exp2.body["api"].(map[string]any)["primaryOwner"].(map[string]any)["displayName"],
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after update (-want +got):\n%s", diff)
	}
	crossID := created.body["crossId"].(string)
	if sim.Creates(crossID) != 1 || sim.Updates(crossID) != 1 {
		t.Errorf("Creates, Updates = %d, %d; want 1, 1", sim.Creates(crossID), sim.Updates(crossID))
	}

	tests := []struct {
		name, path, body string
		status           int
	}{
		{name: "unknown id", path: base + "/nope/_import/definition", body: upd, status: 404},
		{name: "other crossId", path: base + "/" + apiID + "/_import/definition", body: def("Docs", "someone-else", "/docs"), status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, ts, http.MethodPut, tt.path, tt.body)
			if r.status != tt.status || r.body["httpStatus"] != float64(tt.status) {
				t.Errorf("got %d %v, want %d", r.status, r.body, tt.status)
			}
		})
	}
}

func TestExportExclusions(t *testing.T) {
	sim, ts := newServer(t, apimsim.Options{})
	a, err := sim.Import("DEFAULT", []byte(`{"api":{"definitionVersion":"V4","name":"Shop","apiVersion":"2.1","groups":["g1"]},
		"members":[{"id":"u1","displayName":"U","roles":[{"name":"OWNER","scope":"API"}]}],
		"metadata":[{"key":"k","name":"k","format":"STRING","value":"v"}],
		"pages":[{"name":"P","type":"MARKDOWN"}],"apiMedia":[],
		"plans":[{"name":"Open","status":"PUBLISHED","definitionVersion":"V4"},{"name":"Gone","status":"CLOSED","definitionVersion":"V4"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		query string
		keys  []string
		plans int
	}{
		{name: "full", query: "", keys: []string{"api", "apiMedia", "export", "members", "metadata", "pages", "plans", "groups"}, plans: 1},
		{name: "promotion", query: "?excludeAdditionalData=members&excludeAdditionalData=groups", keys: []string{"api", "apiMedia", "export", "metadata", "pages", "plans"}, plans: 1},
		{name: "everything", query: "?excludeAdditionalData=groups,members,metadata,pages,plans&excludeAdditionalData=bogus", keys: []string{"api", "export"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, ts, http.MethodGet, base+"/"+a.ID+"/_export/definition"+tt.query, "")
			if r.status != 200 {
				t.Fatalf("status %d: %v", r.status, r.body)
			}
			var keys []string
			for k := range r.body {
				keys = append(keys, k)
			}
			if _, ok := r.body["api"].(map[string]any)["groups"]; ok {
				keys = append(keys, "groups")
			}
			if diff := cmp.Diff(tt.keys, keys, cmpSorted); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if plans, _ := r.body["plans"].([]any); len(plans) != tt.plans {
				t.Errorf("%d plans exported, want %d (closed plans never are)", len(plans), tt.plans)
			}
			if got := r.header.Get("Content-Disposition"); got != "attachment;filename=shop-2.1.json" {
				t.Errorf("Content-Disposition = %q", got)
			}
		})
	}
	if r := call(t, ts, http.MethodGet, base+"/missing/_export/definition", ""); r.status != 404 || r.body["technicalCode"] != "api.notFound" {
		t.Errorf("export of a missing API: %d %v", r.status, r.body)
	}
}

func TestFaults(t *testing.T) {
	sim, ts := newServer(t, apimsim.Options{})
	sim.FailNext(2, http.StatusServiceUnavailable)
	for i, want := range []int{503, 503, 200} {
		if r := call(t, ts, http.MethodGet, base, ""); r.status != want {
			t.Errorf("request %d: status %d, want %d", i, r.status, want)
		}
	}
	if got := sim.Hits(apimsim.OpListAPIs); got != 3 {
		t.Errorf("Hits(list) = %d, want 3", got)
	}

	sim.DropResponseAfterApply(1)
	req, _ := http.NewRequest(http.MethodPost, ts.URL+base+"/_import/definition", strings.NewReader(def("Dropped", "cross-drop", "/drop")))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := ts.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want the connection closed without an answer", resp.StatusCode)
	}
	if got := sim.Creates("cross-drop"); got != 1 {
		t.Errorf("Creates = %d, want 1: the import is applied before the hang-up", got)
	}
	if r := call(t, ts, http.MethodPost, base+"/_import/definition", def("Next", "cross-next", "/next")); r.status != 201 {
		t.Errorf("the fault outlived its count: %d", r.status)
	}
}

func TestSeed(t *testing.T) {
	sim, _ := newServer(t, apimsim.Options{})
	if err := sim.Seed("../../deploy/seed/dev"); err != nil {
		t.Fatalf("Seed: %v", err)
	}
	var names []string
	for _, a := range sim.APIs("DEFAULT") {
		names = append(names, a.Name)
	}
	if diff := cmp.Diff([]string{"Inventory API", "Orders API", "Payments API"}, names); diff != "" {
		t.Errorf("seeded APIs (-want +got):\n%s", diff)
	}
	if err := sim.Seed(t.TempDir()); err == nil {
		t.Errorf("Seed of an empty folder succeeded")
	}
}

func TestConcurrentImports(t *testing.T) {
	sim, ts := newServer(t, apimsim.Options{})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			body := def(fmt.Sprintf("C%d", i), fmt.Sprintf("cross-%d", i), fmt.Sprintf("/c%d", i))
			req, _ := http.NewRequest(http.MethodPost, ts.URL+base+"/_import/definition", bytes.NewReader([]byte(body)))
			req.Header.Set("Content-Type", "application/json")
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 201 {
				t.Errorf("import %d: %d", i, resp.StatusCode)
			}
			_ = sim.APIs("DEFAULT")
		})
	}
	wg.Wait()
	if got := len(sim.APIs("DEFAULT")); got != 20 {
		t.Errorf("%d APIs, want 20", got)
	}
}

func byName(v any) map[string]map[string]any {
	out := map[string]map[string]any{}
	arr, _ := v.([]any)
	for _, item := range arr {
		m := item.(map[string]any)
		out[m["name"].(string)] = m
	}
	return out
}
