// Package api is the hub's REST API: the gin router, request and response
// types (DTOs), bearer-token authentication, and the mapping from error kinds
// to HTTP statuses in application/problem+json. It is the only package that
// imports gin; the agents' WebSocket endpoint is mounted as a plain
// http.Handler.
//
// Handlers are safe for concurrent use; the API keeps no state of its own.
package api
