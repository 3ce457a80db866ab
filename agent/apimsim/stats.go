package apimsim

import (
	"maps"
	"net/http"
)

// Stats is a snapshot of the side effects the stand-in has applied, for
// tests that run it as a process and count what reached it.
type Stats struct {
	// Creates counts successful imports that created an API, by crossId.
	Creates map[string]int `json:"creates"`
	// Updates counts successful imports that updated an API, by crossId.
	Updates map[string]int `json:"updates"`
	// Hits counts requests received, by operation (the Op constants),
	// whatever their outcome.
	Hits map[string]int `json:"hits"`
}

// Stats returns a copy of the create, update and hit counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Creates: maps.Clone(s.creates), Updates: maps.Clone(s.updates), Hits: maps.Clone(s.hits)}
}

// StatsPath is where StatsHandler is meant to be mounted: outside the
// /management/v2 tree, so it never looks like part of APIM's API.
const StatsPath = "/_sim/stats"

// StatsHandler serves Stats as JSON on GET. It is read-only and is not
// part of the Server's own routes; cmd/apim-sim mounts it at StatsPath.
// It is not authenticated: serve it on loopback only.
func (s *Server) StatsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		writeJSON(w, http.StatusOK, s.Stats())
	})
}
