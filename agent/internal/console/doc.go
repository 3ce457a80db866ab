// Package console is the environment console: the web pages an
// environment's admins use to promote APIs and decide on promotion tasks,
// served by the agent under /console/ on its listen address.
//
// Pages are html/template shells embedded in the binary with a little
// JavaScript that calls the agent's REST API (package web) from the same
// origin; nothing loads from a CDN. The console adds these endpoints of its
// own under /console/:
//
//	POST   /console/session         sign in: asks the hub for a session token with the
//	                                user's password, then has the REST API set its
//	                                ferry_session cookie
//	DELETE /console/session         sign out
//	GET    /console/events          server-sent events: watches REST API paths and
//	                                sends each one's JSON whenever it changes
//	GET    /console/changes/{id}    what accepting a task changes: a per-field diff of
//	                                the existing API's definition and the incoming one
//
// The console never decides who may do what. Every read and every action,
// including those behind events and changes, goes through the REST API
// handler in process with the caller's own cookie or bearer token, so the
// REST API's authentication and permission checks apply unchanged.
//
// A Handler is safe for concurrent use. Close ends open event streams; call
// it when the HTTP server shuts down (http.Server.RegisterOnShutdown).
package console
