// Package web is the agent's REST API for the local console and scripts:
// APIs of the local APIM, promotion requests, promotion targets, this
// environment's promotions, and the tasks its admin accepts or rejects.
//
// Routes (all JSON; errors are application/problem+json):
//
//	GET  /api/v1/status
//	GET  /api/v1/apis
//	GET  /api/v1/apis/{apiId}
//	POST /api/v1/apis/{apiId}/_promote        {"targetEnv": "<env id or name>"} → 201
//	GET  /api/v1/promotion-targets
//	GET  /api/v1/promotions[?status=STATUS]
//	GET  /api/v1/tasks                         pending tasks only
//	GET  /api/v1/tasks/{id}
//	POST /api/v1/tasks/{id}/_accept
//	POST /api/v1/tasks/{id}/_reject            optional {"reason": "..."}
//
// REST types are this package's own and are converted at the edge from the
// task, taskstore, apim and protocol types. Request bodies are decoded
// strictly: Content-Type application/json on every POST (415 otherwise), at
// most 1 MiB (413), one JSON object with no unknown fields (400). Path ids are
// validated before use.
//
// Authentication is not there yet: the API is served on the agent's listen
// address, loopback by default, to anyone who can reach it, and decisions are
// attributed to the fixed actor the daemon configures ("console@<hostname>").
// Hub-signed session tokens are a later issue. Until then the package guards
// against browsers only: a request whose Host is not an allowed name (DNS
// rebinding) or whose Origin is another site (cross-site requests) is
// refused with 403, and POSTs need a JSON content type, which a cross-site
// form cannot send without a CORS preflight that this API never grants.
//
// A Handler is safe for concurrent use; it holds no state of its own.
package web
