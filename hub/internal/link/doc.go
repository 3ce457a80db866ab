// Package link is the hub's end of the agent WebSocket links.
//
// Endpoint is a plain http.Handler mounted at /api/v1/link. Before the
// upgrade it refuses any query string (401: credentials travel only in the
// Authorization header), browser Origins (403), WebSocket versions other
// than 13 (426) and upgrades that do not offer the protocol.Subprotocol
// subprotocol (400); then it authenticates the installation credential. An
// installation that enrolled with a client certificate (mTLS) is bound to its
// key: an upgrade that presents no verified certificate with that key is
// refused with 403 client_certificate_mismatch and reported to the
// OnSecurityEvent hook, before any 101. An AuthenticateAgent error that is
// a *Refusal answers 401 with the problem code and detail it carries (a
// rotated-out credential past its overlap: credential_expired).
// Compression is never negotiated. The hello must be the first frame and
// speak a protocol version in [protocol.MinVersion, protocol.Version]
// (otherwise an unsupported_version error frame, then 1008). The connection
// is then registered in a Registry, superseding an older connection of the
// same installation, which is closed with protocol.CloseSuperseded (4000).
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
// a handler marks with Violation) are refused with their code, counted and
// reported to the OnSecurityEvent hook; the MaxViolations-th closes the link
// with 1008. Separately, every connection's messages draw from a token
// bucket (DefaultMessageRate, DefaultMessageBurst) and bad messages (not a
// valid envelope, an unknown type, an invalid command payload) are answered
// with bad_message and allowed DefaultMaxBadMessages per
// DefaultBadMessageWindow; exceeding either closes the link with 1008 and is
// a security event. Text frames that are not UTF-8 close it with 1007;
// gorilla closes frames that break RFC 6455 with 1002 and messages over the
// read limit, however fragmented, with 1009.
//
// Every hello reply advertises a reconnect spread sized to the agents
// connected: Config.ReconnectRate redials a second, within 2-60 s. As the
// fleet grows (after a restart, all of it returns one agent at a time) a
// settings message tells every agent the larger figure once it has grown by
// a quarter, so each agent holds the fleet's figure when the next restart
// comes. The message is advice: an agent whose queue is full misses it
// rather than being disconnected.
//
// Registry is safe for concurrent use; it never does I/O while holding its
// lock.
package link
