// Package protocol is Ferry's wire protocol between the hub and its agents.
//
// Every WebSocket text frame carries one JSON Envelope. The first frame an
// agent sends is a Hello; the hub answers with a HelloReply and only then does
// the link carry anything else. Either side may send a Command and must answer
// it with exactly one Reply whose ReplyTo is the command's ID. The hub may
// send Settings at any time after its HelloReply, to update figures the
// reply carried; they are never answered.
//
// The package holds data types, constants and Validate methods only, and
// imports nothing but the standard library. It is safe for concurrent use
// because it holds no state.
//
// Compatibility rules: fields and message types are only ever added; error
// codes and operations are append-only; a receiver answers an unknown message
// type or operation with CodeUnsupported instead of dropping the link.
package protocol
