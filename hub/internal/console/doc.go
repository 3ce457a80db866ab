// Package console is the hub console: the web pages an organization's
// admins use to see the organization map (environments and the
// installations linked to them, online or offline), create link tokens,
// follow promotions across environments and read the audit trail. It is
// served by the hub under /console/.
//
// Pages are html/template shells embedded in the binary with a little
// JavaScript that calls the hub's REST API from the same origin, with the
// token the user signed in with (a session token from POST
// /api/v1/auth/session, or a pasted API token) kept in the tab's
// sessionStorage and sent as a Bearer token; nothing loads from a CDN. The
// console adds one endpoint of its own:
//
//	GET /console/events?watch=/api/v1/…   server-sent events: the REST API's answer
//	                                      for each watched path whenever it changes
//
// The console never decides who may do what: event streams read the REST
// API in process with the caller's own Authorization header, so its
// authentication and permission checks apply unchanged.
//
// A Handler is safe for concurrent use. Close ends open event streams; call
// it when the HTTP server shuts down (http.Server.RegisterOnShutdown).
package console
