// Package fleet is the hub's inventory of installations: it links agents with
// one-time link tokens, authenticates their credentials, records hello and
// liveness (answering with the hub's session-verifying public keys), and
// lists installations with their online status. An agent that enrolls with a
// verified client certificate binds its installation to that certificate's
// key; the link endpoint enforces the binding.
//
// Fleet is safe for concurrent use; it keeps no state of its own beyond the
// store and the Presence it is given.
package fleet
