package api

import (
	"encoding/json"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// Limit is a token-bucket rate limit. A zero Rate means unlimited.
type Limit struct {
	Rate  float64 // requests per second
	Burst int     // bucket size; at least 1 when Rate is set
}

// Limits are the REST API's rate limits. The zero value limits nothing.
type Limits struct {
	// Token limits each authenticated caller (API token or user session).
	Token Limit
	// SignIn limits each peer IP on the unauthenticated sign-in and enroll
	// routes.
	SignIn Limit
	// Link limits each peer IP on the agents' WebSocket upgrade.
	Link Limit
}

const (
	// maxLimiters bounds each map of limiters; idle ones are evicted first.
	maxLimiters = 10000
	// limiterIdle is how long a limiter is kept after its last use. A full
	// bucket refills well within it at any sensible rate.
	limiterIdle = 10 * time.Minute
)

// limiters is a bounded map of token buckets, one per key (a caller or a
// peer IP).
type limiters struct {
	limit Limit
	now   func() time.Time

	mu sync.Mutex // guards m
	m  map[string]*limiterEntry
}

type limiterEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiters(l Limit) *limiters {
	if l.Rate <= 0 {
		return nil
	}
	if l.Burst < 1 {
		l.Burst = 1
	}
	return &limiters{limit: l, now: time.Now, m: make(map[string]*limiterEntry)}
}

// allow takes one token from key's bucket. When the bucket is empty it
// returns false and how long until a token is available.
func (s *limiters) allow(key string) (bool, time.Duration) {
	if s == nil {
		return true, 0
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok {
		if len(s.m) >= maxLimiters {
			s.evictLocked(now)
		}
		e = &limiterEntry{lim: rate.NewLimiter(rate.Limit(s.limit.Rate), s.limit.Burst)}
		s.m[key] = e
	}
	e.seen = now
	r := e.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// evictLocked drops idle limiters; if none is idle, it drops the least
// recently used one, which at worst hands that caller a fresh bucket.
func (s *limiters) evictLocked(now time.Time) {
	var oldKey string
	var oldest time.Time
	for k, e := range s.m {
		if now.Sub(e.seen) > limiterIdle {
			delete(s.m, k)
			continue
		}
		if oldKey == "" || e.seen.Before(oldest) {
			oldKey, oldest = k, e.seen
		}
	}
	if len(s.m) >= maxLimiters {
		delete(s.m, oldKey)
	}
}

func (s *limiters) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// peerIP is the socket peer's address. X-Forwarded-For is ignored on
// purpose: the hub trusts no proxy, so a client cannot pick its own key.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limitIP is middleware limiting each peer IP.
func (a *API) limitIP(s *limiters) gin.HandlerFunc {
	return func(c *gin.Context) {
		if ok, wait := s.allow(peerIP(c.Request)); !ok {
			a.tooMany(c, wait)
			return
		}
		c.Next()
	}
}

// limitCaller limits the authenticated caller; it runs after authenticate.
func (a *API) limitCaller(c *gin.Context) {
	if ok, wait := a.tokenLimits.allow(principal(c).limitKey()); !ok {
		a.tooMany(c, wait)
		return
	}
	c.Next()
}

// limitKey names the caller's bucket: the token, or the user for sessions.
func (p Principal) limitKey() string {
	if p.TokenID != "" {
		return "token:" + p.TokenID
	}
	return "user:" + p.OrgID + "/" + p.UserID
}

// tooMany answers 429 with a Retry-After of whole seconds.
func (a *API) tooMany(c *gin.Context, wait time.Duration) {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	c.Header("Retry-After", strconv.Itoa(secs))
	writeProblem(c, http.StatusTooManyRequests, "rate_limited", "too many requests; retry after the time in Retry-After")
}

// writeProblem answers a problem document with a code that has no
// protocol.Code of its own.
func writeProblem(c *gin.Context, status int, code, detail string) {
	b, _ := json.Marshal(Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code, Detail: detail})
	c.Data(status, "application/problem+json", b)
	c.Abort()
}
