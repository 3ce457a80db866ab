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

	// mu guards err and stall.
	mu    sync.Mutex
	err   error // returned by every call while not nil
	stall bool  // every call waits for its context while set

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
	s.err, s.stall = err, false
}

// Stall makes every call block until its context ends, then fail with the
// context's error wrapped with state.ErrUnavailable.
func (s *Store) Stall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err, s.stall = nil, true
}

// Recover ends Fail and Stall: calls reach the wrapped store again.
func (s *Store) Recover() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err, s.stall = nil, false
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
