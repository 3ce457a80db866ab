// Package webconsole is the Go code Ferry's two web consoles share: the hub
// console (hub/internal/console) and the environment console
// (agent/internal/console). Their stylesheet and browser script live in
// package consoleassets; this package holds what serves them and what both
// consoles do on the server:
//
//   - API.Call sends a request to the binary's REST API handler in process,
//     as the caller of a browser request, and captures the Response; Relay
//     writes such a response back to the browser.
//   - Events is the GET /console/events?watch=/api/v1/… handler: a
//     server-sent-events stream that polls the watched REST API paths in
//     process and sends each one whenever its answer changes.
//   - Problem, SecurityHeaders and ServeStatic are the small pieces of HTTP
//     plumbing both consoles need alike.
//
// The console never decides who may do what: every in-process call carries
// the browser's own credentials, so the REST API's checks apply unchanged.
//
// The package imports only the standard library (and consoleassets). API and
// Events are safe for concurrent use once built; a Response is not.
package webconsole
