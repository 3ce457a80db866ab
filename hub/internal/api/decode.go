package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"

	"ferry.dev/shared/protocol"
)

// decode reads a JSON body strictly: correct content type, one object, no
// unknown fields, within the size limit.
func decode(c *gin.Context, v any) error {
	if c.Request.ContentLength == 0 || c.Request.Body == nil || c.Request.Body == http.NoBody {
		return protocol.Errorf(protocol.CodeInvalid, "request body is required")
	}
	if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mt != "application/json" {
		return &unsupportedMedia{}
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return protocol.Errorf(protocol.CodeTooLarge, "request body exceeds 1 MiB")
		}
		return protocol.Errorf(protocol.CodeInvalid, "could not read the request body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// Server-owned fields (id, status, createdAt, …) are not in the
		// request types, so they are refused here as unknown.
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return &badBody{code: "unknown_field", detail: "unknown or read-only field " + f}
		}
		return &badBody{code: "malformed_json", detail: fmt.Sprintf("malformed JSON body: %v", err)}
	}
	if dec.More() {
		return &badBody{code: "malformed_json", detail: "body must hold exactly one JSON object"}
	}
	return nil
}

// badBody is a 400 refusal of a body that does not decode, with a code
// finer than protocol.CodeInvalid.
type badBody struct{ code, detail string }

func (e *badBody) Error() string { return e.detail }

type unsupportedMedia struct{}

func (*unsupportedMedia) Error() string { return "Content-Type must be application/json" }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$`)

// validName checks a display name (organization, environment).
func validName(field, s string) error {
	if !nameRE.MatchString(s) {
		return protocol.Errorf(protocol.CodeInvalid, field+" must be 1-64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}
