package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"

	"ferry.dev/shared/protocol"
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 1 << 20

// errUnsupportedMedia is returned by decode for a body that is not JSON.
var errUnsupportedMedia = errors.New("Content-Type must be application/json")

// decode reads a JSON body strictly into v: Content-Type application/json,
// one object, no unknown fields, at most MaxBodyBytes. When optional is true
// an empty body leaves v as it is, but the content type is still required:
// a cross-site form cannot send it without a CORS preflight, so every POST
// handler calls decode, even one that needs no body.
func decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	if !jsonContent(r) {
		return errUnsupportedMedia
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return protocol.Errorf(protocol.CodeTooLarge, "request body exceeds 1 MiB")
		}
		return protocol.Errorf(protocol.CodeInvalid, "could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return protocol.Errorf(protocol.CodeInvalid, "request body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return protocol.Errorf(protocol.CodeInvalid, fmt.Sprintf("malformed JSON body: %v", err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return protocol.Errorf(protocol.CodeInvalid, "body must hold exactly one JSON object")
	}
	return nil
}

// jsonContent reports whether r declares a JSON body.
func jsonContent(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// idRE bounds path ids: task and promotion ids from the hub, API ids from
// APIM (UUIDs or Gravitee's own ids).
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,255}$`)

// validID reports whether s is a well-formed id.
func validID(s string) bool { return idRE.MatchString(s) }
