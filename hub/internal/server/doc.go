// Package server is the hub's composition root. It opens the store, loads
// the session signing key (authz), builds the fleet, the link endpoint and
// the operations agents call on it (which re-check the user sessions agents
// relay), the promotion service and the REST API, owns
// the HTTP server and the Prometheus registry, and shuts them down in order:
// stop accepting, say goodbye to agents, drain, close the store.
//
// Nothing imports server except cmd/ferry-hub and the hub's end-to-end tests.
package server
