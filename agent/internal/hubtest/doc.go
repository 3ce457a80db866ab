// Package hubtest is a fake Ferry hub for agent tests.
//
// A Hub is an http.Handler that serves the agents' link endpoint
// (/api/v1/link) with gorilla/websocket and speaks shared/protocol: it
// authenticates the upgrade, answers the agent's hello, answers the agent's
// commands, pings, and records every frame in both directions. Hooks script
// its answers; Conn methods let a test call the agent, send raw frames, say
// goodbye, fall silent, close or drop the connection.
//
// The zero Hub works: Start it (or mount it yourself), point the agent at
// URL, and it accepts any non-empty bearer credential, answers hello with
// DefaultHelloReply, answers every command unsupported and never pings.
//
// Concurrency: each connection has one reader (the HTTP handler's goroutine)
// and, when PingInterval is set, one pinger goroutine; command hooks run in
// goroutines of their own. Writes are serialized by a mutex. Close ends them
// all and waits. Hub and Conn are safe for concurrent use; set hooks before
// the first connection.
package hubtest
