package protocol

import "errors"

// Code is a machine-readable error kind that crosses the wire. Append-only.
type Code string

// Error codes.
const (
	CodeInvalid      Code = "invalid"      // the request is malformed or fails validation
	CodeUnauthorized Code = "unauthorized" // missing or wrong credentials
	CodeForbidden    Code = "forbidden"    // authenticated but not allowed
	CodeNotFound     Code = "not_found"    // no such object, or not visible to the caller
	CodeConflict     Code = "conflict"     // conflicts with current state (e.g. active promotion)
	CodeUnsupported  Code = "unsupported"  // unknown message type or operation
	CodeUnavailable  Code = "unavailable"  // dependency down (store, APIM, peer offline); retry later
	CodeTimeout      Code = "timeout"      // the peer did not answer in time
	CodeInternal     Code = "internal"     // a bug or unexpected failure
	CodeTooLarge     Code = "too_large"    // a message or body exceeds a limit
	CodeRateLimited  Code = "rate_limited" // too many requests; retry later
	CodeDuplicate    Code = "duplicate"    // already processed; the reply carries the original outcome
	CodeUpstream     Code = "upstream"     // APIM refused or failed the operation
	CodeDisconnected Code = "disconnected" // the link dropped before the reply arrived

	CodeBadMessage         Code = "bad_message"         // a link message that is not a valid envelope or payload
	CodeUnsupportedVersion Code = "unsupported_version" // the peer's protocol version is not spoken here

	CodeSecretInDefinition Code = "secret_in_definition"     // an API definition carries a plaintext secret; the message names its JSON pointer, never its value
	CodeBacklogFull        Code = "environment_backlog_full" // the target environment has too many undelivered promotions; retry later
	CodePreconditionFailed Code = "precondition_failed"      // the object changed since the caller read it (If-Match); read it again
	CodeInvalidState       Code = "invalid_state"            // the object is not in a state that allows the action (a task already decided); HTTP 409
)

// Temporary reports whether retrying the same request later may succeed.
func (c Code) Temporary() bool {
	switch c {
	case CodeUnavailable, CodeTimeout, CodeRateLimited, CodeDisconnected, CodeBacklogFull:
		return true
	}
	return false
}

// Error is an error that crosses the wire. It satisfies the error interface.
type Error struct {
	// Code is the error kind. Required.
	Code Code `json:"code"`
	// Message says what happened and what to do, for humans.
	Message string `json:"message,omitempty"`
	// Ref names the object the error is about, e.g. the active promotion
	// behind a conflict. Empty when none.
	Ref string `json:"ref,omitempty"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}

// Is makes errors.Is(err, &Error{Code: c}) match on code alone.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
	}
	return false
}

// Errorf builds an *Error.
func Errorf(code Code, msg string) *Error { return &Error{Code: code, Message: msg} }

// CodeOf returns the code of err if it wraps an *Error, and CodeInternal
// otherwise.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
