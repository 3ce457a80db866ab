package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// Problem is an RFC 9457 problem document with Ferry's stable error code.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail,omitempty"`
	// ActiveID names the conflicting object, e.g. the active promotion.
	ActiveID string `json:"activeId,omitempty"`
}

// statusOf maps an error code to its HTTP status. This is the only such
// mapping in the hub.
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

// codeOf classifies any error the handlers see.
func codeOf(err error) protocol.Code {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return pe.Code
	case errors.Is(err, state.ErrNotFound):
		return protocol.CodeNotFound
	case errors.Is(err, state.ErrConflict):
		return protocol.CodeConflict
	case errors.Is(err, state.ErrUnavailable):
		return protocol.CodeUnavailable
	}
	return protocol.CodeInternal
}

// ActiveConflict is an error naming the object that caused a conflict.
type ActiveConflict struct {
	ID  string
	Msg string
}

func (e *ActiveConflict) Error() string { return e.Msg }

func (a *API) fail(c *gin.Context, err error) {
	code := codeOf(err)
	status := statusOf(code)
	p := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: string(code)}
	var pe *protocol.Error
	var ac *ActiveConflict
	var um *unsupportedMedia
	var bb *badBody
	var bp *badParam
	switch {
	case errors.As(err, &bp):
		p.Status, p.Title, p.Code, p.Detail = http.StatusBadRequest, http.StatusText(http.StatusBadRequest), "invalid_parameter", bp.detail
	case errors.As(err, &bb):
		p.Status, p.Title, p.Code, p.Detail = http.StatusBadRequest, http.StatusText(http.StatusBadRequest), bb.code, bb.detail
	case errors.As(err, &um):
		p.Status, p.Title, p.Code, p.Detail = http.StatusUnsupportedMediaType, http.StatusText(http.StatusUnsupportedMediaType), "unsupported_media_type", um.Error()
	case errors.As(err, &ac):
		p.Code, p.Status, p.Title = string(protocol.CodeConflict), http.StatusConflict, http.StatusText(http.StatusConflict)
		p.Detail, p.ActiveID = ac.Msg, ac.ID
	case errors.As(err, &pe):
		p.Detail = pe.Message
	case code == protocol.CodeNotFound:
		p.Detail = "no such object in this organization"
	case code == protocol.CodeConflict:
		p.Detail = "it already exists"
	case code == protocol.CodeUnavailable:
		p.Detail = "the hub's store is unavailable; retry shortly"
	default:
		a.log.Error("request failed", "method", c.Request.Method, "path", c.FullPath(), "err", err)
		p.Detail = "internal error; the hub logged the details"
	}
	if p.Status == http.StatusServiceUnavailable || p.Status == http.StatusTooManyRequests {
		c.Header("Retry-After", "5")
	}
	b, _ := json.Marshal(p)
	c.Data(p.Status, "application/problem+json", b)
	c.Abort()
}

func (a *API) problem(c *gin.Context, code protocol.Code, detail string) {
	a.fail(c, protocol.Errorf(code, detail))
}
