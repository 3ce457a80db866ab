package api

import (
	"crypto/sha256"
	"strconv"
	"testing"
	"time"
)

func TestLimitersBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newLimiters(Limit{Rate: 1, Burst: 2})
	s.now = func() time.Time { return now }
	for i := range maxLimiters + 50 {
		if ok, _ := s.allow("ip-" + strconv.Itoa(i)); !ok {
			t.Fatalf("a fresh key was refused")
		}
	}
	if n := s.len(); n > maxLimiters {
		t.Errorf("%d limiters, want at most %d", n, maxLimiters)
	}
	s.allow("hot")
	s.allow("hot")
	if ok, wait := s.allow("hot"); ok || wait <= 0 || wait > time.Second {
		t.Errorf("third request in a burst of 2: ok=%v wait=%v, want refused within 1s", ok, wait)
	}
	now = now.Add(limiterIdle + time.Second)
	s.allow("new")
	if n := s.len(); n != 1 {
		t.Errorf("%d limiters after every old one went idle, want 1", n)
	}
	if ok, _ := (*limiters)(nil).allow("x"); !ok {
		t.Error("a nil limiter set refused")
	}
}

func TestIdempotencyBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newIdempotency(func() time.Time { return now })
	h := sha256.Sum256([]byte("body"))
	for i := range maxIdempotencyRecords + 10 {
		k := strconv.Itoa(i)
		if rec, err := s.begin(k, h); rec != nil || err != nil {
			t.Fatalf("begin %s: %v %v", k, rec, err)
		}
		s.finish(k, true, 201, "application/json", "", []byte("{}"))
	}
	if n := s.order.Len(); n != maxIdempotencyRecords || len(s.byKey) != n {
		t.Errorf("%d records (%d keys), want %d", n, len(s.byKey), maxIdempotencyRecords)
	}
	if rec, _ := s.begin("0", h); rec != nil {
		t.Error("the oldest record survived the bound")
	}
	last := strconv.Itoa(maxIdempotencyRecords + 9)
	if rec, _ := s.begin(last, h); rec == nil || rec.status != 201 {
		t.Errorf("newest record: %+v, want a replay of 201", rec)
	}
	if _, err := s.begin(last, sha256.Sum256([]byte("other"))); err != errIdemReused {
		t.Errorf("other body: %v, want errIdemReused", err)
	}
	s.begin("inflight", h)
	if _, err := s.begin("inflight", h); err != errIdemInFlight {
		t.Errorf("in flight: %v, want errIdemInFlight", err)
	}
	s.finish("inflight", false, 503, "", "", nil)
	if rec, err := s.begin("inflight", h); rec != nil || err != nil {
		t.Errorf("after a non-final answer: %v %v, want a fresh run", rec, err)
	}
	now = now.Add(idempotencyTTL)
	if rec, _ := s.begin(last, h); rec != nil {
		t.Error("a record outlived its TTL")
	}
}

func TestValidIdempotencyKey(t *testing.T) {
	for k, want := range map[string]bool{"": false, "a": true, "x y-Z_9": true, "\x00": false, "é": false} {
		if got := validIdempotencyKey(k); got != want {
			t.Errorf("%q: %v, want %v", k, got, want)
		}
	}
	var long [129]byte
	for i := range long {
		long[i] = 'k'
	}
	if validIdempotencyKey(string(long[:])) || !validIdempotencyKey(string(long[:128])) {
		t.Error("the 128-character bound is wrong")
	}
}
