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
		return protocol.Errorf(protocol.CodeInvalid, fmt.Sprintf("malformed JSON body: %v", err))
	}
	if dec.More() {
		return protocol.Errorf(protocol.CodeInvalid, "body must hold exactly one JSON object")
	}
	return nil
}

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
