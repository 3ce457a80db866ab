// Package promotion is the hub's promotion workflow: validate a request,
// persist it, deliver it to the target environment's agent (waiting for the
// agent when it is offline, never failing for that), record the target's
// decision, tell the source, and write every step to the audit trail.
//
// Delivery and notification are at-least-once with the promotion id as the
// idempotency key; a background loop (Run) retries them until they succeed.
// Every state change is a conditional update in the store, so concurrent
// hubs, duplicate messages and late replies cannot move a promotion backwards
// or change a terminal one. Service is safe for concurrent use.
package promotion
