// Package promotion is the hub's promotion workflow: validate a request,
// persist it, deliver it to the target environment's agent (waiting for the
// agent when it is offline, never failing for that), record the target's
// decision, tell the source, and write every step to the audit trail.
//
// Every action names its Caller. Unless the caller is trusted (the platform
// admin, or an installation acting on its own), the workflow checks
// Gravitee's permissions: a request needs API_DEFINITION[UPDATE] on the API
// in the source environment (checked once the export tells the crossId), a
// decision needs ENVIRONMENT_API[CREATE] and [UPDATE] on the target, a
// cancel needs the requester or an organization admin. A refusal is an
// ACCESS_DENIED audit entry and a forbidden error naming what is missing.
//
// Creation fails closed: its PROMOTION_CREATED entry is written before the
// promotion is stored, and a promotion whose entry cannot be written is not
// created (CodeUnavailable, 503). A request carrying an Idempotency-Key
// (CreateAtHubOnce) stores a digest of the key, unique per organization,
// with the promotion: a retry after an ambiguous failure gets the same
// promotion back instead of a second one or a 409.
//
// Delivery and notification are at-least-once with the promotion id as the
// idempotency key; a background loop (Run) retries them until they succeed.
// Every state change is a conditional update in the store, so concurrent
// hubs, duplicate messages and late replies cannot move a promotion backwards
// or change a terminal one. Service is safe for concurrent use.
package promotion
