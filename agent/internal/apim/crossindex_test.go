package apim_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ferry.dev/agent/internal/apim"
)

// indexRig is a stand-in APIM that counts listings and can hide APIs from
// GET, and a client on a clock the test moves.
type indexRig struct {
	*env
	lists  atomic.Int32
	mu     sync.Mutex
	hidden map[string]bool // ids whose GET answers 404
	now    time.Time
	// loseCreates makes APIM apply each create and answer 502.
	loseCreates atomic.Bool
}

func newIndexRig(t *testing.T) *indexRig {
	r := &indexRig{hidden: map[string]bool{}, now: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	r.env = newEnv(t, func(c *apim.Config) {
		c.CrossIDIndexTTL = 10 * time.Second
		c.Now = func() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.now }
	}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/apis") {
				r.lists.Add(1)
			}
			r.mu.Lock()
			hide := false
			for id := range r.hidden {
				if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/apis/"+id) {
					hide = true
				}
			}
			r.mu.Unlock()
			if r.loseCreates.Load() && req.Method == http.MethodPost {
				next.ServeHTTP(httptest.NewRecorder(), req)
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			if hide {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				w.Write([]byte(`{"httpStatus":404,"message":"Api not found","technicalCode":"api.notFound"}`))
				return
			}
			next.ServeHTTP(w, req)
		})
	})
	return r
}

func (r *indexRig) advance(d time.Duration) { r.mu.Lock(); r.now = r.now.Add(d); r.mu.Unlock() }

func (r *indexRig) find(t *testing.T, crossID string) (apim.API, bool) {
	t.Helper()
	a, ok, err := r.client.FindByCrossID(t.Context(), crossID)
	if err != nil {
		t.Fatalf("FindByCrossID(%s): %v", crossID, err)
	}
	return a, ok
}

func TestCrossIDIndexSparesListings(t *testing.T) {
	r := newIndexRig(t)
	orders := r.seedAPI(t, "Orders", "cross-orders", "/orders")

	if a, ok := r.find(t, "cross-orders"); !ok || a.ID != orders.ID {
		t.Fatalf("first lookup = %v, %v; want %s", a.ID, ok, orders.ID)
	}
	if n := r.lists.Load(); n != 1 {
		t.Fatalf("first lookup listed %d times, want 1", n)
	}
	// Within the TTL: a hit is confirmed by a GET, a miss trusted, neither lists.
	if a, ok := r.find(t, "cross-orders"); !ok || a.ID != orders.ID {
		t.Errorf("indexed hit = %v, %v", a.ID, ok)
	}
	if _, ok := r.find(t, "cross-new"); ok {
		t.Errorf("indexed miss found something")
	}
	// Imports made through the client are noted in the index.
	created, err := r.client.ImportCreate(t.Context(), []byte(minimalDef("New", "cross-new", "/new")))
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := r.find(t, "cross-new"); !ok || a.ID != created.ID {
		t.Errorf("lookup after create = %v, %v; want %s", a.ID, ok, created.ID)
	}
	if n := r.lists.Load(); n != 1 {
		t.Errorf("lookups within the TTL listed %d times in all, want 1", n)
	}

	// Past the TTL a miss is not trusted: an API created behind the
	// client's back is found.
	other := r.seedAPI(t, "Other", "cross-other", "/other")
	if _, ok := r.find(t, "cross-other"); ok {
		t.Fatalf("the index saw an API created behind its back before the TTL ran out")
	}
	r.advance(10 * time.Second)
	if a, ok := r.find(t, "cross-other"); !ok || a.ID != other.ID {
		t.Errorf("lookup after the TTL = %v, %v; want %s", a.ID, ok, other.ID)
	}
	if n := r.lists.Load(); n != 2 {
		t.Errorf("listings = %d, want 2", n)
	}
}

func TestCrossIDIndexHitIsConfirmed(t *testing.T) {
	r := newIndexRig(t)
	orders := r.seedAPI(t, "Orders", "cross-orders", "/orders")
	r.find(t, "cross-orders")
	// The indexed API is gone: the lookup lists again instead of answering
	// from the index.
	r.mu.Lock()
	r.hidden[orders.ID] = true
	r.mu.Unlock()
	r.find(t, "cross-orders")
	if n := r.lists.Load(); n != 2 {
		t.Errorf("listings = %d, want 2 (the failed confirmation rebuilds)", n)
	}
}

func TestCrossIDIndexFreshAlwaysLists(t *testing.T) {
	r := newIndexRig(t)
	r.find(t, "cross-nothing")
	behind := r.seedAPI(t, "Behind", "cross-behind", "/behind")
	a, ok, err := r.client.FindByCrossIDFresh(t.Context(), "cross-behind")
	if err != nil || !ok || a.ID != behind.ID {
		t.Errorf("FindByCrossIDFresh = %v, %v, %v; want %s", a.ID, ok, err, behind.ID)
	}
	// The fresh listing rebuilt the index.
	if a, ok := r.find(t, "cross-behind"); !ok || a.ID != behind.ID {
		t.Errorf("indexed lookup after a fresh one = %v, %v", a.ID, ok)
	}
	if n := r.lists.Load(); n != 2 {
		t.Errorf("listings = %d, want 2", n)
	}
}

func TestCrossIDIndexForgetsAfterUnknownOutcome(t *testing.T) {
	r := newIndexRig(t)
	r.find(t, "cross-lost")
	r.loseCreates.Store(true)
	if _, err := r.client.ImportCreate(t.Context(), []byte(minimalDef("Lost", "cross-lost", "/lost"))); !errors.Is(err, apim.ErrOutcomeUnknown) {
		t.Fatalf("ImportCreate error = %v, want an unknown outcome", err)
	}
	if _, ok := r.find(t, "cross-lost"); !ok {
		t.Errorf("after an unknown outcome the index still answered 'not found'")
	}
}
