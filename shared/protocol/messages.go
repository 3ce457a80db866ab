package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Hello is the agent's first message on every connection.
type Hello struct {
	// AgentVersion is the agent's build version, e.g. "0.1.0". Required.
	AgentVersion string `json:"agent_version"`
	// Hostname is the agent host's name, for operators. Empty means unknown.
	Hostname string `json:"hostname,omitempty"`
	// APIMURL is the management API the agent drives, for operators. Empty
	// means unknown.
	APIMURL string `json:"apim_url,omitempty"`
	// Capabilities lists optional operations the agent supports. Empty means
	// the operations of its protocol version only.
	Capabilities []string `json:"capabilities,omitempty"`
}

// Validate checks required fields.
func (h *Hello) Validate() error {
	if h.AgentVersion == "" {
		return errors.New("hello: agent_version is required")
	}
	if len(h.AgentVersion) > 64 || len(h.Hostname) > 255 || len(h.APIMURL) > 2048 || len(h.Capabilities) > 64 {
		return errors.New("hello: field too long")
	}
	return nil
}

// InstallationStatus is the hub's view of an installation. Append-only.
type InstallationStatus string

// Installation statuses.
const (
	InstallationAccepted InstallationStatus = "ACCEPTED"
	InstallationRevoked  InstallationStatus = "REVOKED"
)

// Environment describes one environment of an organization.
type Environment struct {
	// ID is the hub's environment id. Required.
	ID string `json:"id"`
	// Name is the display name, e.g. "Prod". Required.
	Name string `json:"name"`
}

// HelloReply is the hub's answer to Hello. After it the link is connected.
type HelloReply struct {
	// InstallationID is the hub's id for this installation.
	InstallationID string `json:"installation_id"`
	// OrgID and OrgName identify the organization the installation belongs to.
	OrgID   string `json:"org_id"`
	OrgName string `json:"org_name"`
	// Environments are the environments this installation serves.
	Environments []Environment `json:"environments"`
	// Status is the hub's view of the installation.
	Status InstallationStatus `json:"status"`
	// HubVersion is the hub's build version.
	HubVersion string `json:"hub_version"`
	// HeartbeatSeconds is how often the hub pings; zero means 10.
	HeartbeatSeconds int `json:"heartbeat_seconds,omitempty"`
	// SessionKeys are the hub's Ed25519 public keys (base64, standard
	// encoding, 32 bytes each) that sign user session tokens; agents verify
	// sessions offline with them. Empty means the hub issues no sessions.
	// Added in version 1 (2026-11-27).
	SessionKeys []string `json:"session_keys,omitempty"`
	// ReconnectSpreadMs is the window, in milliseconds, over which the
	// agent spreads its first redial after a healthy session ends, until
	// the hub advertises another. The hub sizes it to its fleet, so that
	// its agents come back at a rate it can take after a restart and a
	// lone agent whose link was cut is not kept waiting. Zero means the
	// agent's own default. Agents bound it (the agent of this repository
	// to 0-120 s). Added in version 1 (2026-11-27).
	ReconnectSpreadMs int64 `json:"reconnect_spread_ms,omitempty"`
}

// Settings is the payload of a settings message: the hub's new figures for
// settings it advertised in its hello reply, which the agent uses from then
// on as if that reply had carried them. A zero field leaves the agent's
// figure as it was. Added in version 1 (2026-11-27).
type Settings struct {
	// ReconnectSpreadMs replaces HelloReply.ReconnectSpreadMs; the hub sends
	// it when its fleet has grown since the agent's hello. Zero leaves the
	// figure unchanged.
	ReconnectSpreadMs int64 `json:"reconnect_spread_ms,omitempty"`
}

// HealthCheck asks the peer whether it is healthy. Its answer is a Reply with
// a Health body.
type HealthCheck struct{}

// Health is the body of the reply to a HealthCheck.
type Health struct {
	// Healthy is false when the peer cannot do its job (e.g. APIM unreachable).
	Healthy bool `json:"healthy"`
	// Detail says why, for operators. Empty when healthy.
	Detail string `json:"detail,omitempty"`
}

// Goodbye announces that the sender is closing the link.
type Goodbye struct {
	// Reason is for operators' logs.
	Reason string `json:"reason,omitempty"`
	// Reconnect is true when the receiver should reconnect (e.g. hub restart)
	// and false when the installation was revoked.
	Reconnect bool `json:"reconnect"`
}

// Command asks the peer to perform Op with Body. Exactly one Reply follows.
type Command struct {
	// Op names the operation. Required; see the Op constants.
	Op Op `json:"op"`
	// Body is the operation's input; its shape depends on Op.
	Body json.RawMessage `json:"body,omitempty"`
}

// Validate checks required fields.
func (c *Command) Validate() error {
	if c.Op == "" {
		return errors.New("command: op is required")
	}
	if len(c.Op) > 64 {
		return errors.New("command: op longer than 64 bytes")
	}
	return nil
}

// ReplyStatus says how a command ended. Append-only.
type ReplyStatus string

// Reply statuses.
const (
	StatusOK    ReplyStatus = "ok"
	StatusError ReplyStatus = "error"
)

// Reply answers a Command (or a HealthCheck).
type Reply struct {
	// Status is ok or error. Required.
	Status ReplyStatus `json:"status"`
	// Error is set when Status is error.
	Error *Error `json:"error,omitempty"`
	// Body is the operation's output when Status is ok.
	Body json.RawMessage `json:"body,omitempty"`
	// Duplicate is true when the reply answers a copy of a command the
	// link had already received (a frame the network duplicated): it is
	// the first copy's reply again, and the command did not run twice.
	// False on the first reply.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Validate checks that status and error agree.
func (r *Reply) Validate() error {
	switch r.Status {
	case StatusOK:
		return nil
	case StatusError:
		if r.Error == nil || r.Error.Code == "" {
			return errors.New("reply: error status without an error code")
		}
		return nil
	}
	return fmt.Errorf("reply: unknown status %q", r.Status)
}

// OKReply builds a successful reply with body v.
func OKReply(v any) (*Reply, error) {
	r := &Reply{Status: StatusOK}
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode reply body: %w", err)
		}
		r.Body = b
	}
	return r, nil
}

// ErrorReply builds a failed reply.
func ErrorReply(code Code, msg string) *Reply {
	return &Reply{Status: StatusError, Error: &Error{Code: code, Message: msg}}
}
