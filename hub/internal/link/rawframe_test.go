package link_test

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"ferry.dev/hub/internal/agenttest"
	"ferry.dev/shared/protocol"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opClose        = 0x8
	opPing         = 0x9
)

// rawConn is an agent link driven frame by frame over plain TCP, to send
// what gorilla's client never would (reserved bits, unmasked frames,
// oversized control frames).
type rawConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	resp *http.Response
}

// rawUpgrade dials the hub and sends an upgrade request with the link's
// usual headers plus extra ("Name: value" lines); it returns the hub's
// response, whatever its status.
func (h *testHub) rawUpgrade(t *testing.T, extra ...string) *rawConn {
	t.Helper()
	addr := strings.TrimPrefix(h.srv.URL, "http://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := "GET " + agenttest.LinkPath + " HTTP/1.1\r\nHost: " + addr + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key[:]) + "\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + protocol.Subprotocol + "\r\n" +
		"Authorization: Bearer " + cred1 + "\r\n"
	for _, e := range extra {
		req += e + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read upgrade response: %v", err)
	}
	return &rawConn{t: t, conn: conn, br: br, resp: resp}
}

// rawConnect upgrades, says hello and reads the hello reply.
func (h *testHub) rawConnect(t *testing.T) *rawConn {
	t.Helper()
	rc := h.rawUpgrade(t)
	if rc.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", rc.resp.Status)
	}
	hello, _ := json.Marshal(map[string]any{"v": protocol.Version, "type": "hello", "id": "a1", "payload": map[string]any{"agent_version": "raw"}})
	rc.write(true, 0, opText, true, hello)
	_, op, payload, err := rc.read()
	if err != nil || op != opText || !strings.Contains(string(payload), `"hello_reply"`) {
		t.Fatalf("hello reply: op %d %s (%v)", op, payload, err)
	}
	return rc
}

// write sends one frame (see frame). Errors are returned, not fatal: the
// hub may have closed the socket already.
func (rc *rawConn) write(fin bool, rsv, op byte, mask bool, payload []byte) error {
	_, err := rc.conn.Write(frame(fin, rsv, op, mask, payload))
	return err
}

// frame encodes one frame; rsv holds the RSV1-3 bits (0x40, 0x20, 0x10).
// Clients must mask; mask=false builds the frame unmasked.
func frame(fin bool, rsv, op byte, mask bool, payload []byte) []byte {
	b0 := rsv | op
	if fin {
		b0 |= 0x80
	}
	hdr := []byte{b0, 0}
	switch n := len(payload); {
	case n < 126:
		hdr[1] = byte(n)
	case n <= 0xffff:
		hdr[1] = 126
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr[1] = 127
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	body := payload
	if mask {
		hdr[1] |= 0x80
		var k [4]byte
		_, _ = rand.Read(k[:])
		hdr = append(hdr, k[:]...)
		body = make([]byte, len(payload))
		for i, c := range payload {
			body[i] = c ^ k[i%4]
		}
	}
	return append(hdr, body...)
}

// read reads one frame from the hub (which never masks).
func (rc *rawConn) read() (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(rc.br, h[:]); err != nil {
		return false, 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(rc.br, b[:]); err != nil {
			return false, 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(rc.br, b[:]); err != nil {
			return false, 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if h[1]&0x80 != 0 {
		return false, 0, nil, errors.New("the hub sent a masked frame")
	}
	if n > 1<<20 {
		return false, 0, nil, fmt.Errorf("frame of %d bytes from the hub", n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(rc.br, payload); err != nil {
		return false, 0, nil, err
	}
	return h[0]&0x80 != 0, h[0] & 0x0f, payload, nil
}

// closeCode reads frames until the hub's close frame and returns its code
// and reason; it fails the test if the socket ends first.
func (rc *rawConn) closeCode() (int, string) {
	rc.t.Helper()
	_ = rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, op, payload, err := rc.read()
		if err != nil {
			rc.t.Fatalf("no close frame from the hub: %v", err)
			return 0, ""
		}
		if op != opClose {
			continue
		}
		if len(payload) < 2 {
			return 1005, ""
		}
		return int(binary.BigEndian.Uint16(payload)), string(payload[2:])
	}
}

// closeCodeAsync reads the close frame in a goroutine, for tests whose
// writes may block until the hub reads (or closes).
func (rc *rawConn) closeCodeAsync() <-chan int {
	ch := make(chan int, 1)
	go func() {
		_ = rc.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		for {
			_, op, payload, err := rc.read()
			if err != nil {
				ch <- -1
				return
			}
			if op == opClose && len(payload) >= 2 {
				ch <- int(binary.BigEndian.Uint16(payload))
				return
			}
		}
	}()
	return ch
}
