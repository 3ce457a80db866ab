// Package web is the agent's REST API for the local console and scripts:
// APIs of the local APIM, promotion requests, promotion targets, this
// environment's promotions, and the tasks its admin accepts or rejects.
//
// Routes (all JSON; errors are application/problem+json), with the
// permission each needs (Gravitee's vocabulary; an organization admin holds
// all):
//
//	GET    /api/v1/status                       no session
//	POST   /api/v1/session                      no session; {"token": "<session>"} → sets the cookie
//	DELETE /api/v1/session                      no session; clears the cookie → 204
//	GET    /api/v1/session                      any session: who am I, my permissions here
//	GET    /api/v1/apis                         ENVIRONMENT_API:READ
//	GET    /api/v1/apis/{apiId}                 ENVIRONMENT_API:READ
//	POST   /api/v1/apis/{apiId}/_promote        API_DEFINITION:UPDATE on the API (by crossId)
//	                                            {"targetEnv": "<env id or name>"} → 201
//	GET    /api/v1/promotion-targets            any session
//	GET    /api/v1/promotions[?status=STATUS]   ENVIRONMENT_API:READ (only readable environments' promotions)
//	GET    /api/v1/tasks                        ENVIRONMENT_API:READ; pending tasks only
//	GET    /api/v1/tasks/{id}                   ENVIRONMENT_API:READ on the task's target
//	POST   /api/v1/tasks/{id}/_accept           ENVIRONMENT_API:CREATE and UPDATE on the task's target
//	POST   /api/v1/tasks/{id}/_reject           same; optional {"reason": "..."}
//
// GET /api/v1/tasks/{id} of a pending task carries an ETag naming what was
// reviewed: the incoming definition and the target API as APIM has it. An
// accept with If-Match set to it answers 412 precondition_failed, and
// changes nothing, if the target API changed (or appeared, or went) since;
// without If-Match the accept is unconditional. Accepting or rejecting a
// task that is no longer pending (decided, being accepted, cancelled)
// answers 409 invalid_state and changes nothing.
//
// ENVIRONMENT_API:READ is on one of the environments this agent serves, and
// lists keep only what the user may read.
//
// REST types are this package's own and are converted at the edge from the
// task, taskstore, apim and protocol types. Request bodies are decoded
// strictly: Content-Type application/json on every POST (415 otherwise), at
// most 1 MiB (413), one JSON object with no unknown fields (400). Path ids are
// validated before use.
//
// # Authentication
//
// Callers present a hub-signed session token (POST /api/v1/auth/session at
// the hub) as "Authorization: Bearer <token>" or, for the agent's own pages,
// in the HttpOnly, SameSite=Strict cookie ferry_session that POST
// /api/v1/session sets. The header wins when both are present. The agent
// verifies tokens offline (package authn) with the keys the hub gave over
// the link. No or a bad token (malformed, forged, expired, another
// organization's) answers 401 with a WWW-Authenticate challenge and clears
// a bad cookie; an agent that never reached the hub (no keys) answers 503.
// The permission is checked before anything changes; a refusal answers 403
// naming what is missing ("needs ENVIRONMENT_API[CREATE,UPDATE] on Prod")
// and is logged at Warn with the user and the route. Promotion requests
// and decisions are attributed to the user ("Name (user id)") and carry the
// token to the hub, which checks again; the token is never logged and never
// returned.
//
// Browser guards: a request whose Host is not an allowed name (DNS
// rebinding) or whose Origin is another site (cross-site requests) is
// refused with 403, and so is a cookie-authenticated request that the
// browser marks (Sec-Fetch-Site) as coming from another origin. POSTs need
// a JSON content type, which a cross-site form cannot send without a CORS
// preflight that this API never grants.
//
// A Handler is safe for concurrent use; it holds no state of its own.
package web
