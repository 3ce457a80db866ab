package apim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// API is an API of the environment, as listed or returned by APIM.
type API struct {
	// ID is the API's id in this environment.
	ID string
	// CrossID identifies the API across environments. Empty if it has none.
	CrossID string
	// Name is the API's name.
	Name string
	// APIVersion is the API's own version label (apiVersion).
	APIVersion string
	// DefinitionVersion is V4, V2, FEDERATED or FEDERATED_AGENT.
	DefinitionVersion string
	// Description is the API's description.
	Description string
	// UpdatedAt is when the API was last changed. Zero if APIM did not say.
	UpdatedAt time.Time
	// Raw is the API object exactly as APIM sent it.
	Raw json.RawMessage
}

// UnmarshalJSON implements json.Unmarshaler for one element of
// ApisResponse.data or an ApiV4 body.
func (a *API) UnmarshalJSON(b []byte) error {
	var wire struct {
		ID                string          `json:"id"`
		CrossID           string          `json:"crossId"`
		Name              string          `json:"name"`
		APIVersion        string          `json:"apiVersion"`
		DefinitionVersion string          `json:"definitionVersion"`
		Description       string          `json:"description"`
		UpdatedAt         json.RawMessage `json:"updatedAt"`
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		return err
	}
	updated, err := parseTime(wire.UpdatedAt)
	if err != nil {
		return fmt.Errorf("updatedAt: %w", err)
	}
	*a = API{
		ID:                wire.ID,
		CrossID:           wire.CrossID,
		Name:              wire.Name,
		APIVersion:        wire.APIVersion,
		DefinitionVersion: wire.DefinitionVersion,
		Description:       wire.Description,
		UpdatedAt:         updated,
		Raw:               append(json.RawMessage(nil), b...),
	}
	return nil
}

// parseTime reads a Gravitee timestamp: an RFC 3339 string, or a number of
// milliseconds since the epoch (older APIM versions and the spec's examples).
func parseTime(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == "" {
			return time.Time{}, nil
		}
		return time.Parse(time.RFC3339Nano, s)
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("neither a date-time string nor milliseconds: %s", raw)
	}
	return time.UnixMilli(ms).UTC(), nil
}
