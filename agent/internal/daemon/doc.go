// Package daemon is the agent's composition root: it gets the installation
// credential, builds the APIM client, the local store, the task runner, the
// link client and the HTTP surface (REST API, console, /healthz, /metrics),
// runs them under one errgroup and shuts them down in order: drain the link,
// stop HTTP, close the store.
//
// Nothing imports daemon except cmd/ferry-agent and end-to-end tests.
package daemon
