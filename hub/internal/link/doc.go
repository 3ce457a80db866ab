// Package link is the hub's end of the agent WebSocket links.
//
// Endpoint is a plain http.Handler mounted at /api/v1/link. It authenticates
// the upgrade with the installation credential in the Authorization header,
// refuses browser Origins, requires a hello as the first frame, and then
// registers the connection in a Registry, superseding an older connection of
// the same installation.
//
// Each Conn has exactly one reader and one writer goroutine; the writer owns
// every write, including pings and the close frame. The HTTP handler reads
// the hello, then starts the reader and returns, so that net/http frees what
// it holds per request; Shutdown waits for the links it started. Sends go through a bounded queue: when it is full the agent is
// disconnected as slow and the hub never blocks. Commands in both directions
// are correlated by message id; every Call has a deadline and fails at once
// when the connection drops.
//
// An agent's policy violations (messages only the hub sends, a command id
// replayed on the connection, a reply to a command never sent, or a refusal
// a handler marks with Violation) are refused with their code and counted;
// the MaxViolations-th closes the link with 1008.
//
// Registry is safe for concurrent use; it never does I/O while holding its
// lock.
package link
