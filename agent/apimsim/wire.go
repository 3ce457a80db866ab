package apimsim

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// apiError is an error answered with Gravitee's Error body.
type apiError struct {
	status  int
	message string
	code    string // technicalCode
	params  map[string]string
	details []errorDetail
}

type errorDetail struct {
	Message      string `json:"message,omitempty"`
	Location     string `json:"location,omitempty"`
	InvalidValue any    `json:"invalidValue,omitempty"`
}

func (e apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message) }

func badRequest(format string, args ...any) apiError {
	return apiError{status: http.StatusBadRequest, message: fmt.Sprintf(format, args...), code: "invalid.import.definition"}
}

func notFound(apiID string) apiError {
	return apiError{
		status:  http.StatusNotFound,
		message: fmt.Sprintf("Api [%s] cannot be found.", apiID),
		code:    "api.notFound",
		params:  map[string]string{"api": apiID},
	}
}

// writeError answers with Gravitee's Error shape.
func writeError(w http.ResponseWriter, e apiError) {
	params := e.params
	if params == nil {
		params = map[string]string{}
	}
	body := struct {
		HTTPStatus    int               `json:"httpStatus"`
		Message       string            `json:"message"`
		TechnicalCode string            `json:"technicalCode,omitempty"`
		Parameters    map[string]string `json:"parameters"`
		Details       []errorDetail     `json:"details,omitempty"`
	}{e.status, e.message, e.code, params, e.details}
	writeJSON(w, e.status, body)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := encode(v)
	if err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// decode parses JSON keeping numbers as json.Number, so that definitions go
// back out exactly as they came in. Trailing data is an error.
func decode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after the JSON value")
	}
	return v, nil
}

// encode writes v as compact JSON without HTML escaping.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// randomID returns a random version 4 UUID.
func randomID() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // never fails
	return formatUUID(u, 4)
}

// derivedID returns a UUID derived from parts, like APIM's
// UuidString.generateForEnvironment: the same parts give the same id.
func derivedID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var u [16]byte
	copy(u[:], h.Sum(nil))
	return formatUUID(u, 8)
}

func formatUUID(u [16]byte, version byte) string {
	u[6] = u[6]&0x0f | version<<4
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}
