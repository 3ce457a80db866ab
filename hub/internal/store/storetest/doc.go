// Package storetest is the conformance suite of state.Store: every storage
// engine in package store runs Run against a real instance of itself.
//
// Run opens a fresh, empty store for each case and closes it afterwards.
// Its cases use the stores from several goroutines at once, as the hub does.
package storetest
