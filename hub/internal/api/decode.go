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
	"unicode/utf8"

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
			return tooLarge(mbe.Limit)
		}
		return protocol.Errorf(protocol.CodeInvalid, "could not read the request body")
	}
	// encoding/json replaces invalid UTF-8 silently and recurses as deep
	// as the input goes: refuse both before decoding.
	if !utf8.Valid(body) {
		return &badBody{code: "malformed_json", detail: "the request body is not valid UTF-8"}
	}
	if err := checkDepth(body, MaxJSONDepth); err != nil {
		return err
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

// MaxJSONDepth is the deepest nesting of objects and arrays a request body
// may have.
const MaxJSONDepth = 128

// checkDepth refuses a body nested deeper than max. It scans the bytes
// once with a depth counter, skipping strings, and builds nothing, so a
// body of 10,000 opening brackets is refused in microseconds. It does not
// validate the JSON: the decoder does that afterwards.
func checkDepth(body []byte, max int) error {
	depth, inString, escaped := 0, false, false
	for _, b := range body {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
			}
		case b == '"':
			inString = true
		case b == '{' || b == '[':
			if depth++; depth > max {
				return &badBody{code: "too_deep", detail: fmt.Sprintf("JSON nested more than %d levels deep", max)}
			}
		case b == '}' || b == ']':
			depth--
		}
	}
	return nil
}

// tooLarge is the refusal of a body over limit bytes.
func tooLarge(limit int64) error {
	return protocol.Errorf(protocol.CodeTooLarge, "request body exceeds "+sizeText(limit))
}

// sizeText writes a byte count as KiB or MiB.
func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
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
