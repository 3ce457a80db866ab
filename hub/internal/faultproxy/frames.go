package faultproxy

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
)

// Direction is one direction of a proxied connection, or both.
type Direction int

// Directions. The client is the side that dialled the proxy (the agent);
// the server is the target (the hub).
const (
	ClientToServer Direction = 1 << iota
	ServerToClient
	BothDirections = ClientToServer | ServerToClient
)

func (d Direction) String() string {
	switch d {
	case ClientToServer:
		return "client→server"
	case ServerToClient:
		return "server→client"
	case BothDirections:
		return "both"
	}
	return "none"
}

// MessageMatch chooses WebSocket data messages. payload is the whole
// message (its fragments joined), unmasked; op is 1 (text) or 2 (binary).
// It must not keep payload.
type MessageMatch func(dir Direction, op byte, payload []byte) bool

// maxHTTPHead bounds the response head the proxy looks at to find a 101.
const maxHTTPHead = 64 << 10

// maxHeldMessage bounds the copy of one message kept for duplication; a
// longer message goes through once.
const maxHeldMessage = 16 << 20

// framer follows the WebSocket frames (RFC 6455 section 5.2) of one
// direction of a connection, byte by byte as they stream through, without
// holding any back. It keeps a copy of the data message under way so that
// the proxy can write it again right after its last byte.
//
// A connection is upgraded when the first response from the server starts
// "HTTP/1.x 101"; everything the server sends after that response's head,
// and everything the client sends after the proxy has seen it, is frames.
// Other connections (plain HTTP, or a refused upgrade) pass untouched.
type framer struct {
	dir  Direction
	up   *atomic.Bool // set once the server's 101 is seen; shared by the pair's two framers
	mode int          // modeHTTP, modeFrames or modePass

	head []byte // server→client: the response head so far (modeHTTP)

	hdr     []byte // the frame header so far (modeFrames, remaining == 0)
	need    int    // header length, once known (2 until the length bits are read)
	remain  uint64 // payload bytes of the current frame still to come
	op      byte   // opcode of the current frame
	fin     bool   // FIN of the current frame
	mask    [4]byte
	masked  bool
	pos     uint64 // payload bytes of the current frame seen
	data    bool   // the current frame belongs to a data message
	msgOp   byte   // opcode of the data message under way
	raw     []byte // the data message's frames as sent (masked as they were)
	payload []byte // the data message's payload, unmasked
	tooBig  bool   // the data message outgrew maxHeldMessage
}

const (
	modeHTTP = iota
	modeFrames
	modePass
)

// message is a complete data message seen by a framer.
type message struct {
	end     int    // offset in the fed chunk just after its last byte
	op      byte   // 1 text, 2 binary
	raw     []byte // its frames as sent
	payload []byte // unmasked
}

// feed follows chunk and returns the data messages that end in it, in
// order. The slices of a returned message are its own.
func (f *framer) feed(chunk []byte) []message {
	var out []message
	i := 0
	for i < len(chunk) {
		switch f.mode {
		case modePass:
			return out
		case modeHTTP:
			if f.dir == ClientToServer {
				// The server→client framer sets up before it forwards
				// the 101, and the client sends its first frame only
				// after it got the 101.
				if !f.up.Load() {
					return out // request bytes
				}
				f.mode = modeFrames
				continue
			}
			n := f.readHead(chunk[i:])
			i += n
		case modeFrames:
			n, msg := f.step(chunk[i:])
			i += n
			if msg != nil {
				msg.end = i
				out = append(out, *msg)
			}
		}
	}
	return out
}

// readHead takes bytes of the server's first response head and switches
// mode at its end; it returns how many bytes it took.
func (f *framer) readHead(b []byte) int {
	for i, c := range b {
		f.head = append(f.head, c)
		if c == '\n' && bytes.HasSuffix(f.head, []byte("\r\n\r\n")) {
			if bytes.HasPrefix(f.head, []byte("HTTP/1.1 101")) || bytes.HasPrefix(f.head, []byte("HTTP/1.0 101")) {
				f.mode = modeFrames
				f.up.Store(true)
			} else {
				f.mode = modePass
			}
			f.head = nil
			return i + 1
		}
		if len(f.head) > maxHTTPHead {
			f.mode, f.head = modePass, nil
			return i + 1
		}
	}
	return len(b)
}

// step consumes bytes of the current frame (header or payload) and returns
// how many, and the message when that frame ended one.
func (f *framer) step(b []byte) (int, *message) {
	if f.remain == 0 && (f.need == 0 || len(f.hdr) < f.need) {
		// Header.
		if f.need == 0 {
			f.need = 2
		}
		n := 0
		for n < len(b) && len(f.hdr) < f.need {
			f.hdr = append(f.hdr, b[n])
			n++
			if len(f.hdr) == 2 {
				f.need = 2
				switch f.hdr[1] & 0x7f {
				case 126:
					f.need += 2
				case 127:
					f.need += 8
				}
				if f.hdr[1]&0x80 != 0 {
					f.need += 4
				}
			}
		}
		if len(f.hdr) < f.need {
			return n, nil
		}
		f.startFrame()
		if f.remain > 0 {
			return n, nil
		}
		return n, f.endFrame() // an empty frame
	}
	// Payload.
	n := int(min(uint64(len(b)), f.remain))
	if f.data && !f.tooBig {
		f.raw = append(f.raw, b[:n]...)
		for j := range n {
			c := b[j]
			if f.masked {
				c ^= f.mask[(f.pos+uint64(j))%4]
			}
			f.payload = append(f.payload, c)
		}
	}
	f.pos += uint64(n)
	f.remain -= uint64(n)
	if f.remain > 0 {
		return n, nil
	}
	return n, f.endFrame()
}

// startFrame decodes the complete header in f.hdr.
func (f *framer) startFrame() {
	h := f.hdr
	f.fin, f.op = h[0]&0x80 != 0, h[0]&0x0f
	f.masked = h[1]&0x80 != 0
	l, k := uint64(h[1]&0x7f), 2
	switch l {
	case 126:
		l, k = uint64(binary.BigEndian.Uint16(h[2:4])), 4
	case 127:
		l, k = binary.BigEndian.Uint64(h[2:10]), 10
	}
	if f.masked {
		copy(f.mask[:], h[k:k+4])
	}
	f.remain, f.pos = l, 0
	f.data = f.op < 8 // text, binary or continuation
	if f.data {
		if f.op != 0 { // the first frame of a message
			f.msgOp, f.raw, f.payload, f.tooBig = f.op, f.raw[:0], f.payload[:0], false
		}
		if uint64(len(f.raw))+uint64(len(h))+l > maxHeldMessage {
			f.tooBig = true
		}
		if !f.tooBig {
			f.raw = append(f.raw, h...)
		}
	}
}

// endFrame resets for the next header and returns the message the frame
// completed, if any.
func (f *framer) endFrame() *message {
	f.hdr, f.need = f.hdr[:0], 0
	if !f.data || !f.fin || f.tooBig {
		return nil
	}
	return &message{op: f.msgOp, raw: bytes.Clone(f.raw), payload: bytes.Clone(f.payload)}
}
