package apim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"ferry.dev/agent/internal/apim"
)

// listRecorder sits in front of the stand-in and records every list
// request: the page and perPage it asked for and the size of the answer.
type listRecorder struct {
	mu    sync.Mutex
	pages []listedPage
}

type listedPage struct {
	page, perPage int
	bytes         int
	status        int
}

func (lr *listRecorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/apis") {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		perPage, _ := strconv.Atoi(r.URL.Query().Get("perPage"))
		lr.mu.Lock()
		lr.pages = append(lr.pages, listedPage{page: page, perPage: perPage, bytes: rec.Body.Len(), status: rec.Code})
		lr.mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
}

func (lr *listRecorder) all() []listedPage {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return slices.Clone(lr.pages)
}

// bigDef is an API definition padded through its description to about
// size bytes.
func bigDef(name, crossID, path string, size int) string {
	return fmt.Sprintf(`{"api":{"definitionVersion":"V4","crossId":%q,"type":"PROXY","name":%q,"apiVersion":"1.0","description":%q,
		"listeners":[{"type":"HTTP","paths":[{"path":%q}],"entrypoints":[{"type":"http-proxy"}]}]}}`, crossID, name, strings.Repeat("d", size), path)
}

// TestListAPIsIndexesEveryPage lists, through the crossId index, an
// environment of the real stand-in holding more APIs than one page
// (DefaultPageSize), over HTTP. Every API is indexed, every request names
// a page and a perPage of at most PageSize, and together the pages cover
// every API.
func TestListAPIsIndexesEveryPage(t *testing.T) {
	const n = 2*apim.DefaultPageSize + 37
	lr := &listRecorder{}
	e := newEnv(t, nil, lr.wrap)
	ids := map[string]string{} // crossId → id
	for i := range n {
		a := e.seedAPI(t, fmt.Sprintf("API %03d", i), fmt.Sprintf("cross-%03d", i), fmt.Sprintf("/api-%03d", i))
		ids[a.CrossID] = a.ID
	}

	if _, ok, err := e.client.FindByCrossIDFresh(t.Context(), "cross-none"); err != nil || ok {
		t.Fatalf("FindByCrossIDFresh = %v, %v; want not found", ok, err)
	}
	pages := lr.all()
	if len(pages) < 3 {
		t.Fatalf("%d list requests for %d APIs with %d per page, want at least 3: %+v", len(pages), n, apim.DefaultPageSize, pages)
	}
	covered := make([]bool, n)
	for i, p := range pages {
		if p.status != http.StatusOK || p.page < 1 || p.perPage < 1 || p.perPage > apim.DefaultPageSize {
			t.Errorf("request %d asked page=%d perPage=%d (status %d), want a page of 1-%d APIs", i+1, p.page, p.perPage, p.status, apim.DefaultPageSize)
			continue
		}
		for j := (p.page - 1) * p.perPage; j < min(p.page*p.perPage, n); j++ {
			covered[j] = true
		}
	}
	if i := slices.Index(covered, false); i >= 0 {
		t.Errorf("API %d (in creation order) was on no page asked for: %+v", i, pages)
	}

	// Every API is in the index: each lookup is answered from it (and
	// confirmed by a GET), with no listing.
	for crossID, id := range ids {
		a, ok, err := e.client.FindByCrossID(t.Context(), crossID)
		if err != nil || !ok || a.ID != id {
			t.Fatalf("FindByCrossID(%s) = %s, %v, %v; want %s", crossID, a.ID, ok, err, id)
		}
	}
	if got := len(lr.all()); got != len(pages) {
		t.Errorf("%d lookups made %d more list requests, want none: every API was indexed", n, got-len(pages))
	}
	if got := lookups(t, e, "hit"); got != n {
		t.Errorf("index hits = %v, want %d", got, n)
	}
}

// TestListAPIsLargerThanResponseCap lists an environment whose listing in
// one page is larger than Config.MaxResponseBytes (64 KiB here, for 32
// MiB in production): before paging by size, ListAPIs asked for
// DefaultPageSize APIs in one response and failed. Now every API comes
// back and no answer comes near the cap.
func TestListAPIsLargerThanResponseCap(t *testing.T) {
	const (
		limit = 64 << 10
		n     = 60
		size  = 4 << 10
	)
	lr := &listRecorder{}
	e := newEnv(t, func(c *apim.Config) { c.MaxResponseBytes = limit }, lr.wrap)
	var want []string
	for i := range n {
		a, err := e.sim.Import("DEFAULT", []byte(bigDef(fmt.Sprintf("Big %02d", i), fmt.Sprintf("cross-big-%02d", i), fmt.Sprintf("/big-%02d", i), size)))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, a.ID)
	}
	// What the client used to ask for, in one response, is over the cap.
	whole := getList(t, e, url.Values{"page": {"1"}, "perPage": {strconv.Itoa(apim.DefaultPageSize)}})
	if whole <= limit {
		t.Fatalf("the single-page listing is %d bytes, want more than the %d-byte cap for this test to mean anything", whole, limit)
	}
	before := len(lr.all())

	for round := range 2 { // the second listing starts from what the first measured
		apis, err := e.client.ListAPIs(t.Context())
		if err != nil {
			t.Fatalf("listing %d: %v", round+1, err)
		}
		var got []string
		for _, a := range apis {
			got = append(got, a.ID)
			if !strings.Contains(string(a.Raw), strings.Repeat("d", size)) {
				t.Errorf("API %s was listed without its description", a.ID)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("listing %d: %d APIs %v, want %d %v", round+1, len(got), got, len(want), want)
		}
	}
	pages := lr.all()[before:]
	largest := 0
	for i, p := range pages {
		largest = max(largest, p.bytes)
		if p.bytes > limit/2 {
			t.Errorf("answer %d (page=%d perPage=%d) is %d bytes, want at most half the %d-byte cap", i+1, p.page, p.perPage, p.bytes, limit)
		}
	}
	if strings.Contains(e.logs.String(), "page too large") {
		t.Errorf("a page of steady-sized APIs was too large:\n%s", e.logs.String())
	}
	t.Logf("2 listings of %d APIs of %d bytes (%d in one page): %d requests, largest answer %d bytes", n, size, whole, len(pages), largest)
}

// TestListAPIsAPIsGrowMidListing: APIs much larger than the ones measured
// on the first pages overflow the cap; the page is asked again with fewer
// APIs and the listing completes.
func TestListAPIsAPIsGrowMidListing(t *testing.T) {
	const limit = 64 << 10
	lr := &listRecorder{}
	e := newEnv(t, func(c *apim.Config) { c.MaxResponseBytes = limit }, lr.wrap)
	var want []string
	for i := range 30 {
		size := 100
		if i >= 20 {
			size = 20 << 10 // three of them are about the cap
		}
		a, err := e.sim.Import("DEFAULT", []byte(bigDef(fmt.Sprintf("API %02d", i), fmt.Sprintf("cross-%02d", i), fmt.Sprintf("/api-%02d", i), size)))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, a.ID)
	}
	apis, err := e.client.ListAPIs(t.Context())
	if err != nil {
		t.Fatalf("ListAPIs: %v", err)
	}
	var got []string
	for _, a := range apis {
		got = append(got, a.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	if !strings.Contains(e.logs.String(), "page too large") {
		t.Errorf("no page was asked again smaller; the test did not overflow the cap: %+v", lr.all())
	}

	// One API over the cap cannot be listed: an error, not a loop.
	if _, err := e.sim.Import("DEFAULT", []byte(bigDef("Huge", "cross-huge", "/huge", limit))); err != nil {
		t.Fatal(err)
	}
	before := len(lr.all())
	if _, err := e.client.ListAPIs(t.Context()); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("listing with an API over the cap: %v, want a too-large error", err)
	}
	if n := len(lr.all()) - before; n > 20 {
		t.Errorf("%d list requests before giving up, want few", n)
	}
}

// TestListAPIsUnknownTotalCount: Gravitee reports totalCount -1 when it
// cannot count in time; the listing then goes on until a short page.
func TestListAPIsUnknownTotalCount(t *testing.T) {
	uncounted := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var body map[string]any
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/apis") || rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
				w.WriteHeader(rec.Code)
				w.Write(rec.Body.Bytes())
				return
			}
			p := body["pagination"].(map[string]any)
			p["totalCount"], p["pageCount"] = -1, -1
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(body)
		})
	}
	// 23 ends with a short page; 25, a multiple of the page size, ends with
	// APIM refusing the page past the end (pagination.invalid).
	for _, n := range []int{23, 25} {
		e := newEnv(t, func(c *apim.Config) { c.PageSize = 5 }, uncounted)
		for i := range n {
			e.seedAPI(t, fmt.Sprintf("API %02d", i), fmt.Sprintf("cross-%02d", i), fmt.Sprintf("/api-%02d", i))
		}
		apis, err := e.client.ListAPIs(t.Context())
		if err != nil || len(apis) != n {
			t.Fatalf("ListAPIs = %d APIs, %v; want %d", len(apis), err, n)
		}
		seen := map[string]bool{}
		for _, a := range apis {
			if seen[a.ID] {
				t.Errorf("API %s listed twice", a.ID)
			}
			seen[a.ID] = true
		}
	}
}

// getList GETs the stand-in's listing with q, bypassing the client, and
// returns the size of the answer.
func getList(t *testing.T, e *env, q url.Values) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/management/v2/environments/DEFAULT/apis?"+q.Encode(), nil)
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("list: %s %v", resp.Status, err)
	}
	return b.Len()
}

// lookups reads ferry_agent_apim_crossid_lookups_total{result}.
func lookups(t *testing.T, e *env, result string) int {
	t.Helper()
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "ferry_agent_apim_crossid_lookups_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}
