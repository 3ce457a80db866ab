// Package api is the hub's REST API: the gin router, request and response
// types (DTOs), bearer-token authentication, and the mapping from error kinds
// to HTTP statuses in application/problem+json. It is the only package that
// imports gin; the agents' WebSocket endpoint is mounted as a plain
// http.Handler.
//
// # Authentication
//
// Every route under /api/v1 but the session and enrollment routes takes
// "Authorization: Bearer <credential>": the platform admin's token
// (FERRY_ADMIN_TOKEN; every power everywhere, no organization), a user's
// personal access token (ferry_at_…), or a hub-signed session (a JWT: two
// dots). For users, permissions are computed from the current role bindings
// on every call, and a disabled or deleted user is refused at once (401);
// the claims inside a session serve agents, which check them offline until
// the session expires (15 minutes).
//
//	POST /api/v1/auth/session   {"org"|"orgId", "username", "password"}, or a
//	                            personal access token as bearer and no body
//	                            → 200 {"token", "expiresAt"}
//	GET  /api/v1/auth/me        → {"kind": platform|token|session, "orgId",
//	                            "userId", "username", "displayName",
//	                            "orgAdmin", "env": {envId: [perm]},
//	                            "api": {"envId/crossId": [perm]}}
//
// # Authorization
//
// Under /api/v1/orgs/{org} (id or name), an organization the caller does not
// belong to, and any id of another organization (promotion, user, token,
// role binding, environment id or name, in the path, the query or the body),
// answers 404 exactly like a missing one. A missing permission answers 403
// with code "forbidden" and a detail naming it, e.g. "needs
// API_DEFINITION[UPDATE] on API orders in Dev". Every refusal is an
// ACCESS_DENIED audit entry (actor "user:<username>"); a request naming
// another organization is recorded in the caller's own trail.
//
//	GET    /orgs/{org}, /environments, /installations      any member
//	POST   /environments, /environments/{env}/link-tokens  organization ADMIN
//	DELETE /installations/{id}       organization ADMIN: revokes the credential and
//	                                closes the agent's link (4401); link it again to return
//	POST   /promotions              API_DEFINITION[UPDATE] on the API in the source
//	GET    /promotions[?env=]       ENVIRONMENT_API[READ] on env; without env,
//	                                the promotions of every readable environment
//	GET    /promotions/{id}         ENVIRONMENT_API[READ] on its source or target,
//	                                or its requester
//	POST   /promotions/{id}/_cancel its requester or an organization ADMIN
//	GET    /audit, /audit/_verify   organization ADMIN
//	POST|GET          /users                 organization ADMIN, as everything below
//	GET|PATCH|DELETE  /users/{user}          {user} is an id or a username
//	POST|GET          /role-bindings         GET filters: ?userId=&env=
//	DELETE            /role-bindings/{id}
//	POST|GET          /roles                 GET lists built-in roles, then custom ones
//	DELETE            /roles/{scope}/{name}  refused (409) while bound
//	POST|GET          /tokens                GET filter: ?userId=
//	DELETE            /tokens/{id}           revokes; answers the token
//
// Bad input changes nothing. Bodies decode strictly: application/json only
// (else 415); at most 4 MiB on POST /promotions and 64 KiB everywhere else
// (else 413 too_large, from the declared length before any of the body is
// read); valid UTF-8 and one JSON value (else 400 malformed_json); nested
// at most 128 levels deep (else 400 too_deep, found by a scan before
// decoding); unknown and server-owned fields refused as 400 unknown_field.
// A header block over 8 KiB is 431; a method a route does not take is 405
// method_not_allowed (the audit routes take GET only).
//
// Every list takes limit (1-100, default 100) and offset (0-1000000) and
// answers at most 100 items; a bad value is 400 invalid_parameter. A full
// page carries nextOffset (the audit trail: nextAfterSeq, paged with
// afterSeq).
//
// A missing, empty, padded or non-Bearer Authorization header, and an
// unknown, revoked or expired credential, answer 401 unauthenticated with
// WWW-Authenticate: Bearer. A Ferry token with a bad checksum is refused
// before any lookup. An agent's installation credential answers 403: it is
// for the link only. ferry_hub_auth_rejected_total{reason} counts the
// refusals.
//
// Each authenticated caller (token or session) has a token bucket, and so
// has each peer IP on sign-in, enroll and the link upgrade; an empty bucket
// answers 429 rate_limited with Retry-After. X-Forwarded-For is ignored.
// Creating requests (POST /orgs, /environments, /link-tokens, /promotions,
// /users, /tokens) honour an Idempotency-Key header (1-128 printable ASCII
// characters), and POST /promotions requires one (else 400
// idempotency_key_required): a retry by the same caller with the same
// request replays the first answer (with Idempotent-Replayed: true); the
// same key with another request is 422 idempotency_key_mismatch; one still
// running is 409 idempotency_key_in_use with Retry-After.
//
// Handlers are safe for concurrent use. The API's only state is in memory:
// the rate limiters and the idempotency records (bounded, with a TTL), each
// guarded by its own mutex.
package api
