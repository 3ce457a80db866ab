package definition

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// MaxSize is the largest definition, in bytes, that Sanitize and Info accept.
const MaxSize = 8 << 20

// Errors returned by Sanitize and Info, always wrapped with details. Test for
// them with errors.Is.
var (
	// ErrInvalid means the input is not a JSON object, or a field this
	// package reads has the wrong type.
	ErrInvalid = errors.New("invalid definition")
	// ErrUnsupported means the input is a definition this package does not
	// handle: the legacy V2 export format, or an api.definitionVersion other
	// than V4.
	ErrUnsupported = errors.New("unsupported definition")
	// ErrTooLarge means the input is larger than MaxSize.
	ErrTooLarge = errors.New("definition too large")
)

// Definition versions reported in Summary.DefinitionVersion.
const (
	// V4 is the only version Sanitize accepts.
	V4 = "V4"
	// V2 is reported by Info for the legacy export format.
	V2 = "V2"
)

// Summary identifies an API definition.
type Summary struct {
	// CrossID identifies the API across environments. Empty if the
	// definition has none (Info only; Sanitize always sets it).
	CrossID string
	// Name is the API's name (api.name). Empty if absent.
	Name string
	// Version is the API's own version label (api.apiVersion). Empty if
	// absent.
	Version string
	// DefinitionVersion is V4 or V2 (or whatever api.definitionVersion says,
	// for Info).
	DefinitionVersion string
}

// Sanitized is the result of Sanitize.
type Sanitized struct {
	Summary
	// JSON is the sanitized ExportApiV4 document: compact, with object keys
	// sorted.
	JSON []byte
}

// Info reads the crossId, name and versions of an export without changing
// it. It understands ExportApiV4 (any api.definitionVersion) and the legacy
// V2 export format (reported with DefinitionVersion V2).
func Info(raw []byte) (Summary, error) {
	root, err := decode(raw)
	if err != nil {
		return Summary{}, fmt.Errorf("read definition: %w", err)
	}
	if _, legacy := root["gravitee"]; legacy {
		return Summary{
			CrossID:           stringField(root, "crossId"),
			Name:              stringField(root, "name"),
			Version:           stringField(root, "version"),
			DefinitionVersion: V2,
		}, nil
	}
	api, ok := root["api"].(map[string]any)
	if !ok {
		return Summary{}, fmt.Errorf("read definition: %w: no api object", ErrInvalid)
	}
	return summaryOf(api), nil
}

// Sanitize removes environment-local data from an ExportApiV4 document, as
// described in the package documentation. fallbackCrossID is used as the
// API's crossId when the export has none; it may be empty only if the export
// has one.
func Sanitize(raw []byte, fallbackCrossID string) (Sanitized, error) {
	root, err := decode(raw)
	if err != nil {
		return Sanitized{}, fmt.Errorf("sanitize definition: %w", err)
	}
	api, err := checkV4(root)
	if err != nil {
		return Sanitized{}, fmt.Errorf("sanitize definition: %w", err)
	}
	if err := sanitize(root, api, fallbackCrossID); err != nil {
		return Sanitized{}, fmt.Errorf("sanitize definition: %w", err)
	}
	out, err := encode(root)
	if err != nil {
		return Sanitized{}, fmt.Errorf("sanitize definition: %w", err)
	}
	return Sanitized{Summary: summaryOf(api), JSON: out}, nil
}

// checkV4 returns the api object of an ExportApiV4 document with
// definitionVersion V4.
func checkV4(root map[string]any) (map[string]any, error) {
	if v, legacy := root["gravitee"]; legacy {
		return nil, fmt.Errorf("%w: legacy export format (gravitee: %v); only V4 definitions are supported", ErrUnsupported, v)
	}
	api, ok := root["api"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: no api object", ErrInvalid)
	}
	dv, ok := api["definitionVersion"].(string)
	if !ok {
		return nil, fmt.Errorf("%w: api.definitionVersion is missing or not a string", ErrUnsupported)
	}
	if dv != V4 {
		return nil, fmt.Errorf("%w: api.definitionVersion is %q; only V4 definitions are supported", ErrUnsupported, dv)
	}
	return api, nil
}

func summaryOf(api map[string]any) Summary {
	return Summary{
		CrossID:           stringField(api, "crossId"),
		Name:              stringField(api, "name"),
		Version:           stringField(api, "apiVersion"),
		DefinitionVersion: stringField(api, "definitionVersion"),
	}
}

// stringField returns obj[key] if it is a string, and "" otherwise.
func stringField(obj map[string]any, key string) string {
	s, _ := obj[key].(string)
	return s
}

// decode parses raw into a JSON object, keeping numbers as json.Number so
// that they are written back exactly as they came.
func decode(raw []byte) (map[string]any, error) {
	if len(raw) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit is %d", ErrTooLarge, len(raw), MaxSize)
	}
	if !utf8.Valid(raw) {
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the JSON value", ErrInvalid)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalid)
	}
	return obj, nil
}

// encode writes v as compact JSON without HTML escaping.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
