// Package daemon is the agent's composition root: it gets the installation
// credential, builds the APIM client, the local store (taskstore, in
// <data-dir>/agent.db), the task runner, the link client and the HTTP
// surface (the REST API under /api/v1/, /healthz, /metrics), runs them under
// one errgroup and shuts them down in order: drain the link (in-flight hub
// commands finish), stop HTTP (in-flight REST requests finish), stop the task
// runner, close the store.
//
// The REST API authenticates hub-signed user sessions (see packages web and
// authn). The hub's session keys reach the agent only over the link: every
// hello's keys are kept in memory and persisted in the store, and loaded at
// start, so sessions verify offline after a restart with the hub down.
// Requests and decisions are attributed to the session's user.
//
// Nothing imports daemon except cmd/ferry-agent and end-to-end tests.
package daemon
