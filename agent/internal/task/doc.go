// Package task is the agent's side of promotion: it turns promotions the hub
// delivers into tasks for this environment's admin, imports what the admin
// accepts into the local APIM, reports every decision to the hub until it is
// acknowledged, and, on the source side, exports and sanitizes an API and
// asks the hub to promote it.
//
// # Tasks
//
// A delivered promotion is stored (taskstore) before the hub is answered, so
// an acknowledged delivery is never lost; a duplicate delivery stores
// nothing. The task's id is the promotion's id.
//
// Accepting is crash-safe and idempotent:
//
//  0. the user (an authn.User) must hold ENVIRONMENT_API CREATE and UPDATE
//     on the task's target environment; otherwise the accept is refused as
//     forbidden and nothing is recorded or imported (rejecting needs the
//     same);
//  1. the intent (ACCEPTING, actor, the user's session token, time) is
//     recorded durably;
//  2. the target API is looked up by crossId, then by the API that an
//     earlier accepted promotion of the same crossId created here;
//  3. it is updated, or else created. The created API carries the crossId,
//     so a retry after a crash between the import and step 4 finds it and
//     updates it instead of creating a second API (the task also records
//     that a create was attempted, so the decision still says "created");
//  4. the decision and the task's new state are stored in one transaction;
//  5. the decision is reported to the hub from the outbox, with the user's
//     session token so that the hub checks the permission again. The
//     token is erased once the hub acknowledged or refused the report.
//
// Tasks left ACCEPTING by a crash or shutdown are resumed when Run starts
// (and retried periodically). An APIM failure that the APIM client's own
// retries did not overcome ends the task with an ERROR decision carrying the
// reason; a cancelled context does not, and leaves the task to be resumed.
//
// # Reports
//
// Decisions are the outbox: Run reports each unacknowledged decision on every
// (re)connection (Connected) and every ReportInterval while any is pending,
// with a per-decision backoff. A hub answer of conflict (the promotion was
// cancelled or decided meanwhile) abandons that report with a warning;
// temporary errors are retried, across restarts.
//
// # Promotion requests
//
// RequestPromotion exports and sanitizes the API first (reads only), then
// requires API_DEFINITION UPDATE on the resulting crossId in this
// environment, and only then asks the hub, with the user as requester and
// their session token. A refusal asks the hub nothing.
//
// # Hub pushes and reconciliation
//
// The hub's promotion updates refresh a local view of this environment's
// promotions; a cancel withdraws a pending task (conflict if the admin already
// accepted it). On every connection Run also fetches the hub's list of
// promotions, refreshes the view, and withdraws pending tasks whose promotion
// is already terminal at the hub.
//
// # Dependencies and concurrency
//
// The package declares what it needs (Hub, APIM, Store) and never imports
// the link client, the REST layer or the daemon. The Handle* methods have the
// shape of the link client's handlers. A Runner is safe for concurrent use;
// Run owns every goroutine the Runner starts and returns only after they have
// exited.
package task
