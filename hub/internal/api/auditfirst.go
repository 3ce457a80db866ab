package api

import (
	"errors"

	"github.com/gin-gonic/gin"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// errNotAudited answers a change refused because its audit entry could
// not be written.
var errNotAudited = protocol.Errorf(protocol.CodeUnavailable,
	"the audit trail cannot be written, so nothing was changed; retry shortly")

// auditFirst writes ev before the change it records, so that no change is
// made without its entry (row E3, fail closed): when the trail cannot be
// written it returns errNotAudited, which the caller answers (503) without
// making the change. Otherwise the caller makes the change and passes its
// error to done: a failed change gets an ACTION_NOT_DONE entry after ev,
// so the trail does not claim what did not happen.
func (a *API) auditFirst(c *gin.Context, ev audit.Event) (done func(error), err error) {
	if _, err := a.audit.Record(c.Request.Context(), ev); err != nil {
		a.log.Error("audit entry could not be written; the change was not made", "event", ev.Event, "actor", ev.Actor, "detail", ev.Detail, "err", err)
		return nil, errNotAudited
	}
	return func(err error) {
		if err == nil {
			return
		}
		a.record(c, audit.Event{OrgID: ev.OrgID, Event: audit.ActionNotDone, Actor: ev.Actor, EnvID: ev.EnvID, PromotionID: ev.PromotionID,
			Detail: ev.Event + " (" + ev.Detail + ") was not done: " + notDoneReason(err)})
	}, nil
}

// notDoneReason says briefly why a change failed, for the audit trail.
func notDoneReason(err error) string {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return pe.Message
	case errors.Is(err, state.ErrNotFound):
		return "no such object"
	case errors.Is(err, state.ErrConflict):
		return "it conflicts with what exists"
	case errors.Is(err, state.ErrUnavailable):
		return "the store is unavailable (if it applied the change anyway, the object shows it)"
	}
	return "internal error"
}
