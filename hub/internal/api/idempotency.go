package api

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

const (
	// idempotencyTTL is how long a creating request's answer is replayed.
	idempotencyTTL = 24 * time.Hour
	// maxIdempotencyRecords bounds the records; the oldest go first.
	maxIdempotencyRecords = 10000
	// maxIdempotencyKey is the longest Idempotency-Key accepted.
	maxIdempotencyKey = 128
)

// idempotencyHeader names the header that makes a creating request
// idempotent.
const idempotencyHeader = "Idempotency-Key"

// idempotency remembers the answers to creating requests that carried an
// Idempotency-Key, per caller, so that a retry gets the original answer
// instead of creating a second object.
//
// The records live in this hub's memory: they are lost on restart, and a
// multi-hub deployment behind a load balancer would need them in the shared
// store (keyed the same way, with a TTL index) for a retry that reaches
// another hub to be recognised. One hub is the supported setup today.
type idempotency struct {
	now func() time.Time

	mu    sync.Mutex // guards byKey and order
	byKey map[string]*list.Element
	order *list.List // of *idemRecord, oldest first (all share one TTL)
}

type idemRecord struct {
	key      string
	hash     [32]byte
	created  time.Time
	done     bool // false while the first request is in flight
	status   int
	ctype    string
	body     []byte
	location string
}

func newIdempotency(now func() time.Time) *idempotency {
	return &idempotency{now: now, byKey: make(map[string]*list.Element), order: list.New()}
}

// begin looks key up. It returns the finished record to replay, or
// reserves key for a new request (rec == nil, err == nil), or an error
// naming why the request is refused.
func (s *idempotency) begin(key string, hash [32]byte) (*idemRecord, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	if el, ok := s.byKey[key]; ok {
		r := el.Value.(*idemRecord)
		switch {
		case r.hash != hash:
			return nil, errIdemReused
		case !r.done:
			return nil, errIdemInFlight
		}
		cp := *r
		return &cp, nil
	}
	for s.order.Len() >= maxIdempotencyRecords {
		s.removeLocked(s.order.Front())
	}
	s.byKey[key] = s.order.PushBack(&idemRecord{key: key, hash: hash, created: now})
	return nil, nil
}

// finish stores the answer of the request that reserved key, or forgets
// the key when the answer is not final (so that a retry runs again).
func (s *idempotency) finish(key string, final bool, status int, ctype, location string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.byKey[key]
	if !ok {
		return
	}
	if !final {
		s.removeLocked(el)
		return
	}
	r := el.Value.(*idemRecord)
	r.done, r.status, r.ctype, r.location, r.body = true, status, ctype, location, body
}

func (s *idempotency) expireLocked(now time.Time) {
	for el := s.order.Front(); el != nil; el = s.order.Front() {
		if now.Sub(el.Value.(*idemRecord).created) < idempotencyTTL {
			return
		}
		s.removeLocked(el)
	}
}

func (s *idempotency) removeLocked(el *list.Element) {
	delete(s.byKey, el.Value.(*idemRecord).key)
	s.order.Remove(el)
}

var (
	errIdemReused   = errors.New("idempotency key reused with a different request")
	errIdemInFlight = errors.New("idempotency key in use")
)

// validIdempotencyKey accepts 1-128 printable ASCII characters.
func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > maxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// capture tees what a handler writes.
type capture struct {
	gin.ResponseWriter
	buf bytes.Buffer
}

func (w *capture) Write(b []byte) (int, error) {
	w.buf.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *capture) WriteString(s string) (int, error) {
	w.buf.WriteString(s)
	return w.ResponseWriter.WriteString(s)
}

// idempotent is middleware for creating requests. Without an
// Idempotency-Key it does nothing, except on the promotion-creating routes,
// which require one (400 idempotency_key_required). With one, a retry by
// the same caller with the same method, path and body gets the original
// status and body (and Idempotent-Replayed: true); the same key with a
// different request is refused with 422 idempotency_key_mismatch, and a
// retry while the first is still running with 409 idempotency_key_in_use
// and Retry-After. Answers that are not final (5xx, 429) are not kept, so
// a retry runs again. Promotion answers are not kept either: the promotion
// holds its key, and the workflow answers retries from the store.
func (a *API) idempotent(c *gin.Context) {
	key := c.GetHeader(idempotencyHeader)
	if key == "" {
		if promotionRoutes[c.Request.Method+" "+c.FullPath()] {
			writeProblem(c, http.StatusBadRequest, "idempotency_key_required",
				"creating a promotion needs an Idempotency-Key header (1-128 printable ASCII characters, e.g. a UUID); retry with the same key")
			return
		}
		c.Next()
		return
	}
	if !validIdempotencyKey(key) {
		writeProblem(c, http.StatusBadRequest, "invalid", "Idempotency-Key must be 1-128 printable ASCII characters")
		return
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			a.fail(c, tooLarge(mbe.Limit))
			return
		}
		a.problem(c, "invalid", "could not read the request body")
		return
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	h := sha256.New()
	for _, part := range []string{c.Request.Method, c.Request.URL.Path, c.GetHeader("Content-Type")} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(body)
	var sum [32]byte
	h.Sum(sum[:0])

	rkey := principal(c).limitKey() + "\x00" + key
	rec, err := a.idem.begin(rkey, sum)
	switch {
	case errors.Is(err, errIdemReused):
		writeProblem(c, http.StatusUnprocessableEntity, "idempotency_key_mismatch", "this Idempotency-Key was used with a different request")
		return
	case errors.Is(err, errIdemInFlight):
		c.Header("Retry-After", "1")
		writeProblem(c, http.StatusConflict, "idempotency_key_in_use", "a request with this Idempotency-Key is still being processed")
		return
	case rec != nil:
		c.Header("Idempotent-Replayed", "true")
		if rec.location != "" {
			c.Header("Location", rec.location)
		}
		c.Data(rec.status, rec.ctype, rec.body)
		c.Abort()
		return
	}
	w := &capture{ResponseWriter: c.Writer}
	c.Writer = w
	final := false
	defer func() {
		// A panic leaves final false: the key is released.
		a.idem.finish(rkey, final, w.Status(), w.Header().Get("Content-Type"), w.Header().Get("Location"), w.buf.Bytes())
	}()
	c.Next()
	st := w.Status()
	// Promotions keep their key in the store (CreateAtHubOnce), which
	// replays them after a restart too; holding their answers here as well
	// would only grow the heap with every promotion.
	durable := promotionRoutes[c.Request.Method+" "+c.FullPath()]
	final = st < 500 && st != http.StatusTooManyRequests && !durable
}
