// Package fleet is the hub's inventory of installations: it links agents with
// one-time link tokens, authenticates their credentials, records hello and
// liveness (answering with the hub's session-verifying public keys), and
// lists installations with their online status. An agent that enrolls with a
// verified client certificate binds its installation to that certificate's
// key; the link endpoint enforces the binding. It rotates installation
// credentials: the new one goes to the agent over its link (never to the
// admin), and the old one opens links until an overlap ends.
//
// Fleet is safe for concurrent use; it keeps no state of its own beyond the
// store and the Presence it is given, caches of names and identities, and a
// lock per installation whose credential is changing.
package fleet
