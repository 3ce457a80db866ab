// Package link is the agent's end of its WebSocket link to the hub.
//
// Client dials out (so agents work behind firewalls), authenticates with the
// installation credential in the Authorization header, sends hello first and
// waits for the hub's reply, then serves commands from the hub and carries the
// agent's own calls. Run is a supervised loop with an explicit state
// (connecting → connected → draining → closed) and jittered, capped
// exponential backoff that resets after a healthy connection. The first
// redial after a healthy connection is spread uniformly over the reconnect
// spread the hub last advertised (in its hello reply or a settings message,
// sized to its fleet: 2 s for a handful of agents, 10 s for 500), or over
// Config.ReconnectSpread (10 s) when it advertised none, so the agents of a
// restarted hub do not all come back in the same second while a lone agent
// whose link was cut comes back quickly.
//
// When the hub rotates the installation's credential it sends the new one
// over the link (protocol.OpRotateCredential); the client has it kept
// (Config.KeepCredential) before it acknowledges it, and presents it from
// the next dial on. The session it came on stays up.
//
// Each session has one reader (Run's goroutine) and one writer goroutine
// that owns every data write; the send queue is bounded. Client is safe for
// concurrent use.
package link
