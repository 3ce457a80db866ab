package apim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// ErrUnreachable is wrapped by errors from requests that got no HTTP
// response: the connection could not be made, broke, or timed out.
var ErrUnreachable = errors.New("apim unreachable")

// ErrOutcomeUnknown is wrapped by ImportCreate errors when the create may or
// may not have been applied. Look the API up by crossId before retrying.
var ErrOutcomeUnknown = errors.New("outcome unknown: the API may have been created")

// errTooLarge is wrapped by errors for a response body over
// Config.MaxResponseBytes. ListAPIs recovers from it with smaller pages.
var errTooLarge = errors.New("response too large")

// ErrAmbiguousCrossID is returned by FindByCrossID when several APIs of the
// environment share the crossId.
var ErrAmbiguousCrossID = errors.New("crossId matches several APIs")

// Error is an HTTP response from APIM with an unexpected status. Its fields
// come from Gravitee's error body when there is one.
type Error struct {
	// Op is the client operation, for example "import_create".
	Op string
	// Status is the HTTP status code of the response.
	Status int
	// Message is Gravitee's message, or the start of the body, or the status
	// text.
	Message string
	// TechnicalCode is Gravitee's machine-readable code, for example
	// "api.notFound". Empty if the body had none.
	TechnicalCode string
	// Parameters are the values Gravitee substituted into Message.
	Parameters map[string]string
	// Details lists field-level problems, for validation errors.
	Details []ErrorDetail
}

// ErrorDetail is one entry of Gravitee's error details.
type ErrorDetail struct {
	// Message says what is wrong with the field.
	Message string `json:"message,omitempty"`
	// Location is the JSON path of the field, for example api.name.
	Location string `json:"location,omitempty"`
	// InvalidValue is the value that was refused, if APIM echoed it.
	InvalidValue any `json:"invalidValue,omitempty"`
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "apim %s: %d", e.Op, e.Status)
	if e.TechnicalCode != "" {
		fmt.Fprintf(&b, " %s", e.TechnicalCode)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// Temporary reports whether the same request may succeed later: a 5xx
// status, 408 or 429. Every other status is permanent.
func (e *Error) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests
}

// IsConflict reports whether err is an *Error with status 409.
func IsConflict(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusConflict
}

// IsNotFound reports whether err is an *Error with status 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// IsTemporary reports whether the same call may succeed later: APIM was
// unreachable, or answered with a temporary status (see Error.Temporary).
// Cancelled contexts and 4xx answers are not temporary.
func IsTemporary(err error) bool {
	var e *Error
	switch {
	case err == nil:
		return false
	case errors.As(err, &e):
		return e.Temporary()
	default:
		return errors.Is(err, ErrUnreachable)
	}
}

// maxErrorText caps the part of a non-JSON error body kept as Message.
const maxErrorText = 512

// parseError builds an *Error from a response with an unexpected status.
func parseError(op string, status int, body []byte) *Error {
	e := &Error{Op: op, Status: status}
	var wire struct {
		HTTPStatus    int               `json:"httpStatus"`
		Message       string            `json:"message"`
		TechnicalCode string            `json:"technicalCode"`
		Parameters    map[string]string `json:"parameters"`
		Details       []ErrorDetail     `json:"details"`
	}
	if err := json.Unmarshal(body, &wire); err == nil && (wire.Message != "" || wire.TechnicalCode != "") {
		e.Message = wire.Message
		e.TechnicalCode = wire.TechnicalCode
		e.Parameters = wire.Parameters
		e.Details = wire.Details
		return e
	}
	text := strings.TrimSpace(string(body))
	if len(text) > maxErrorText {
		text = text[:maxErrorText]
		for !utf8.ValidString(text) {
			text = text[:len(text)-1]
		}
		text += "…"
	}
	if text == "" {
		text = http.StatusText(status)
	}
	e.Message = text
	return e
}
