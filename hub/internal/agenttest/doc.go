// Package agenttest is a fake Ferry agent for hub tests.
//
// An Agent is a script: the credential and headers to dial with, the hello to
// say, how to answer the hub's commands, and how to misbehave (skip the hello,
// ignore pings, stop reading). Dial runs the script against a hub's link
// endpoint and returns a Conn, through which a test sends frames (well-formed
// or raw), calls the hub, waits for frames and for the link's end, or drops
// the connection.
//
// The zero Agent works: it dials without a credential, says a default hello,
// answers pings, health checks, and answers every command unsupported.
//
// Concurrency: each Conn has one reader goroutine (none when NoRead is set);
// command hooks run in goroutines of their own. Close stops the reader and
// waits for it and for the hooks; Drop only closes the socket, so hooks may
// call it. Writes are serialized by a mutex. Conn is safe for concurrent use;
// an Agent must not be changed while Dial runs.
package agenttest
