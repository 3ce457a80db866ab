package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Version is the protocol version spoken by this build.
//
// History:
//
//	1 (2026-11-26): envelope, hello/hello_reply, health_check, command/reply,
//	  goodbye; promotion operations.
//	1 (2026-11-27, additive): the error message type, codes bad_message and
//	  unsupported_version, the ferry.v1 subprotocol and close code 4000.
//	1 (2026-11-27, additive): hello_reply.reconnect_spread_ms and the
//	  settings message type.
//	1 (2026-11-27, additive): the credential.rotate operation.
const Version = 1

// MinVersion is the oldest protocol Version this build still speaks. A hello
// outside [MinVersion, Version] is refused with CodeUnsupportedVersion.
const MinVersion = 1

// Subprotocol is the WebSocket subprotocol (Sec-WebSocket-Protocol) of the
// link. Agents must offer it; the hub refuses an upgrade without it.
const Subprotocol = "ferry.v1"

// Application close codes (RFC 6455 reserves 4000-4999 for applications).
// Append-only.
const (
	// CloseSuperseded ends a connection because a newer connection of the
	// same installation replaced it. The agent backs off as usual instead
	// of reconnecting at once.
	CloseSuperseded = 4000
	// CloseRevoked ends a connection because an administrator revoked the
	// installation's credential. Reconnecting is refused with 401 until
	// the agent is linked again with a new link token.
	CloseRevoked = 4401
)

// MaxFrameBytes is the largest frame either side accepts. A larger frame
// closes the link with CloseMessageTooBig.
const MaxFrameBytes = 4 << 20

// Type names a kind of message. Append-only.
type Type string

// Message types.
const (
	TypeHello       Type = "hello"
	TypeHelloReply  Type = "hello_reply"
	TypeHealthCheck Type = "health_check"
	TypeCommand     Type = "command"
	TypeReply       Type = "reply"
	TypeGoodbye     Type = "goodbye"
	// TypeError reports a message the receiver could not accept (see
	// CodeBadMessage); its payload is an Error whose Ref is the offending
	// message's ID, when it had one. It answers nothing and is never
	// answered.
	TypeError Type = "error"
	// TypeSettings updates, during a session, settings the hub advertised in
	// its hello reply; its payload is a Settings. The hub sends it, without
	// an ID: it answers nothing and is never answered, and agents that do
	// not know it ignore it.
	TypeSettings Type = "settings"
)

// Known reports whether t is a message type of this protocol version.
func (t Type) Known() bool {
	switch t {
	case TypeHello, TypeHelloReply, TypeHealthCheck, TypeCommand, TypeReply, TypeGoodbye, TypeError, TypeSettings:
		return true
	}
	return false
}

// Envelope is one frame on the link.
type Envelope struct {
	// Version is the sender's protocol Version. Zero is invalid.
	Version int `json:"v"`
	// Type is the kind of message in Payload.
	Type Type `json:"type"`
	// ID identifies this message; unique per sender and link. Required for
	// hello, health_check and command, whose answers refer to it.
	ID string `json:"id,omitempty"`
	// ReplyTo is the ID of the message this one answers. Empty when the
	// message answers nothing.
	ReplyTo string `json:"reply_to,omitempty"`
	// Payload is the message body; its shape depends on Type. Empty means {}.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// MaxIDLen bounds message IDs.
const MaxIDLen = 128

// Validate checks the envelope's own fields, not its payload.
func (e *Envelope) Validate() error {
	if e.Version <= 0 {
		return errors.New("envelope: missing protocol version")
	}
	if e.Type == "" {
		return errors.New("envelope: missing type")
	}
	if len(e.ID) > MaxIDLen || len(e.ReplyTo) > MaxIDLen {
		return errors.New("envelope: id longer than 128 bytes")
	}
	switch e.Type {
	case TypeHello, TypeHealthCheck, TypeCommand:
		if e.ID == "" {
			return fmt.Errorf("envelope: %s needs an id", e.Type)
		}
	case TypeHelloReply, TypeReply:
		if e.ReplyTo == "" {
			return fmt.Errorf("envelope: %s needs reply_to", e.Type)
		}
	}
	return nil
}

// Decode parses one frame. It rejects frames that are not a single JSON
// object or whose envelope is invalid. Unknown types decode successfully so the
// receiver can answer CodeUnsupported.
func Decode(frame []byte) (*Envelope, error) {
	if len(frame) > MaxFrameBytes {
		return nil, fmt.Errorf("decode envelope: frame of %d bytes exceeds %d", len(frame), MaxFrameBytes)
	}
	var e Envelope
	if err := json.Unmarshal(frame, &e); err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

// New builds an envelope with payload p marshalled as JSON.
func New(t Type, id, replyTo string, p any) (*Envelope, error) {
	e := &Envelope{Version: Version, Type: t, ID: id, ReplyTo: replyTo}
	if p != nil {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encode %s payload: %w", t, err)
		}
		e.Payload = b
	}
	return e, nil
}

// DecodePayload unmarshals the envelope's payload into v and validates it when
// v has a Validate method.
func (e *Envelope) DecodePayload(v any) error {
	p := e.Payload
	if len(p) == 0 {
		p = []byte("{}")
	}
	if err := json.Unmarshal(p, v); err != nil {
		return fmt.Errorf("decode %s payload: %w", e.Type, err)
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("invalid %s payload: %w", e.Type, err)
		}
	}
	return nil
}
