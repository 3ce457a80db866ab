// Package daemon is the agent's composition root: it gets the installation
// credential, builds the APIM client, the local store (taskstore, in
// <data-dir>/agent.db), the task runner, the link client and the HTTP
// surface (the REST API under /api/v1/, /healthz, /metrics), runs them under
// one errgroup and shuts them down in order: drain the link (in-flight hub
// commands finish), stop HTTP (in-flight REST requests finish), stop the task
// runner, close the store.
//
// The REST API has no authentication yet (see package web): it is served on
// the --listen address, loopback by default, and decisions are attributed to
// "console@<hostname>".
//
// Nothing imports daemon except cmd/ferry-agent and end-to-end tests.
package daemon
