// Package faultstore is a state.Store decorator for tests that fails or
// stalls every operation on command, standing for a store outage (row A10
// of shared/reference/reliability.md): Fail makes every call return an
// error (by default one wrapping state.ErrUnavailable, as a store reports
// an outage), Stall makes every call wait until its context ends, and
// Recover ends either. FailOnly fails only the named operations (e.g. only
// audit appends, row E3), and Ambiguous lets the named operations succeed
// at the wrapped store and then report a network error (row A11). Close is
// never failed.
//
// A Store is safe for concurrent use; it starts no goroutines.
package faultstore
