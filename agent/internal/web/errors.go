package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"ferry.dev/shared/protocol"
)

// Problem is an RFC 9457 problem document with a stable code.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	// Code is one of the protocol's error codes (invalid, not_found,
	// conflict, unavailable, upstream, too_large, ...) or
	// unsupported_media_type, method_not_allowed.
	Code   string `json:"code"`
	Detail string `json:"detail,omitempty"`
	// ActiveID names the active promotion that blocks a new one (conflict).
	ActiveID string `json:"activeId,omitempty"`
}

// Codes this package adds to the protocol's.
const (
	codeUnsupportedMedia = "unsupported_media_type"
	codeMethodNotAllowed = "method_not_allowed"
)

// statusOf maps an error code to its HTTP status. This is the only such
// mapping in the agent.
func statusOf(c protocol.Code) int {
	switch c {
	case protocol.CodeInvalid:
		return http.StatusBadRequest
	case protocol.CodeUnauthorized:
		return http.StatusUnauthorized
	case protocol.CodeForbidden:
		return http.StatusForbidden
	case protocol.CodeNotFound:
		return http.StatusNotFound
	case protocol.CodeConflict, protocol.CodeDuplicate, protocol.CodeInvalidState:
		return http.StatusConflict
	case protocol.CodePreconditionFailed:
		return http.StatusPreconditionFailed
	case protocol.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case protocol.CodeRateLimited:
		return http.StatusTooManyRequests
	case protocol.CodeUnavailable, protocol.CodeDisconnected, protocol.CodeBacklogFull:
		return http.StatusServiceUnavailable
	case protocol.CodeSecretInDefinition:
		return http.StatusUnprocessableEntity
	case protocol.CodeTimeout:
		return http.StatusGatewayTimeout
	case protocol.CodeUpstream:
		return http.StatusBadGateway
	case protocol.CodeUnsupported:
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}

// fail writes err as a problem document.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away; nobody reads the answer
	}
	if errors.Is(err, errUnsupportedMedia) {
		h.problem(w, Problem{Status: http.StatusUnsupportedMediaType, Code: codeUnsupportedMedia, Detail: err.Error()})
		return
	}
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe) && pe.Code != protocol.CodeInternal:
	case errors.Is(err, context.DeadlineExceeded):
		pe = protocol.Errorf(protocol.CodeTimeout, "the operation took too long; retry")
	default:
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		pe = protocol.Errorf(protocol.CodeInternal, "internal error; the agent logged the details")
	}
	if pe.Code == protocol.CodeForbidden {
		u, _ := userOf(r)
		h.log.Warn("permission refused", "user", u.ID(), "method", r.Method, "route", r.Pattern, "path", r.URL.Path, "detail", pe.Message)
	}
	p := Problem{Code: string(pe.Code), Status: statusOf(pe.Code), Detail: pe.Message}
	if pe.Code == protocol.CodeConflict {
		p.ActiveID = pe.Ref
	}
	h.problem(w, p)
}

// problem writes p, filling in its type and title.
func (h *Handler) problem(w http.ResponseWriter, p Problem) {
	p.Type, p.Title = "about:blank", http.StatusText(p.Status)
	if p.Status == http.StatusServiceUnavailable || p.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "5")
	}
	b, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(b, '\n'))
}

// invalid writes a 400 problem.
func (h *Handler) invalid(w http.ResponseWriter, detail string) {
	h.problem(w, Problem{Status: http.StatusBadRequest, Code: string(protocol.CodeInvalid), Detail: detail})
}
