package faultstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"ferry.dev/hub/internal/state"
)

// Store wraps a state.Store and injects faults into every call but Close.
type Store struct {
	s state.Store

	// mu guards err, only, stall and ambiguous.
	mu        sync.Mutex
	err       error           // returned by every call (or those in only) while not nil
	only      map[string]bool // when not nil, err applies to these operations only
	stall     bool            // every call waits for its context while set
	ambiguous map[string]bool // operations that succeed, then report a network error

	calls   atomic.Int64 // calls made
	faulted atomic.Int64 // calls failed or stalled
}

var _ state.Store = (*Store)(nil)

// Wrap returns s with fault injection, healthy until told otherwise.
func Wrap(s state.Store) *Store { return &Store{s: s} }

// Fail makes every call fail with err; nil means an error wrapping
// state.ErrUnavailable.
func (s *Store) Fail(err error) {
	if err == nil {
		err = fmt.Errorf("faultstore: injected outage: %w", state.ErrUnavailable)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err, s.only, s.stall = err, nil, false
}

// FailOnly makes the calls of the named operations (method names, e.g.
// "AppendAudit") fail with err, and lets every other call through; nil
// means an error wrapping state.ErrUnavailable.
func (s *Store) FailOnly(err error, ops ...string) {
	if err == nil {
		err = fmt.Errorf("faultstore: injected outage: %w", state.ErrUnavailable)
	}
	only := map[string]bool{}
	for _, op := range ops {
		only[op] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err, s.only, s.stall = err, only, false
}

// Ambiguous makes the calls of the named operations (every operation when
// none is named) reach the wrapped store and then, when they succeeded
// there, fail with ErrAmbiguous: the write is committed but the caller
// hears a network error (row A11).
func (s *Store) Ambiguous(ops ...string) {
	amb := map[string]bool{}
	for _, op := range ops {
		amb[op] = true
	}
	if len(ops) == 0 {
		amb["*"] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ambiguous = amb
}

// ErrAmbiguous is what Ambiguous operations return after succeeding. It
// wraps state.ErrUnavailable, as a store reports a connection lost before
// the answer.
var ErrAmbiguous = fmt.Errorf("faultstore: connection reset after the operation was applied: %w", state.ErrUnavailable)

// Stall makes every call block until its context ends, then fail with the
// context's error wrapped with state.ErrUnavailable.
func (s *Store) Stall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err, s.only, s.stall = nil, nil, true
}

// Recover ends Fail, FailOnly, Stall and Ambiguous: calls reach the
// wrapped store again and report what it says.
func (s *Store) Recover() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err, s.only, s.stall, s.ambiguous = nil, nil, false, nil
}

// Calls is how many calls were made, and how many of them were faulted.
func (s *Store) Calls() (total, faulted int64) { return s.calls.Load(), s.faulted.Load() }

// Close closes the wrapped store; it is never faulted.
func (s *Store) Close() error { return s.s.Close() }

// fault returns the error op must fail with, or nil to go ahead.
func (s *Store) fault(ctx context.Context, op string) error {
	s.calls.Add(1)
	s.mu.Lock()
	err, stall := s.err, s.stall
	if err != nil && s.only != nil && !s.only[op] {
		err = nil
	}
	s.mu.Unlock()
	switch {
	case err != nil:
		s.faulted.Add(1)
		return fmt.Errorf("%s: %w", op, err)
	case stall:
		s.faulted.Add(1)
		<-ctx.Done()
		return fmt.Errorf("%s: faultstore: stalled until %w: %w", op, ctx.Err(), state.ErrUnavailable)
	}
	return nil
}

// after turns *err, the result of op at the wrapped store, into
// ErrAmbiguous when op succeeded and is ambiguous.
func (s *Store) after(op string, err *error) {
	if *err != nil {
		return
	}
	s.mu.Lock()
	amb := s.ambiguous[op] || s.ambiguous["*"]
	s.mu.Unlock()
	if amb {
		s.faulted.Add(1)
		*err = fmt.Errorf("%s: %w", op, ErrAmbiguous)
	}
}
