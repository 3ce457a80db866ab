package apimsim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStatsHandler(t *testing.T) {
	sim := New(Options{})
	a, err := sim.Import(DefaultEnvID, []byte(`{"api":{"definitionVersion":"V4","type":"PROXY","name":"s","apiVersion":"1","crossId":"cross-stats","listeners":[{"type":"HTTP","paths":[{"path":"/stats/"}],"entrypoints":[{"type":"http-proxy"}]}],"endpointGroups":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.StatsHandler())
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got Stats
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := Stats{Creates: map[string]int{a.CrossID: 1}, Updates: map[string]int{}, Hits: map[string]int{}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}

	resp, err = http.Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
}
