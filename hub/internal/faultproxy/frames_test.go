package faultproxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// frame encodes one WebSocket frame; a non-nil mask masks it as a client
// does.
func frame(fin bool, op byte, payload []byte, mask []byte) []byte {
	var b []byte
	h0 := op
	if fin {
		h0 |= 0x80
	}
	b = append(b, h0)
	m := byte(0)
	if mask != nil {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n < 1<<16:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if mask == nil {
		return append(b, payload...)
	}
	b = append(b, mask...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

// readFrame decodes one frame from r, unmasking it.
func readFrame(r *bufio.Reader) (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0f
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var x [2]byte
		if _, err = io.ReadFull(r, x[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		if _, err = io.ReadFull(r, x[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(x[:])
	}
	var mask [4]byte
	masked := h[1]&0x80 != 0
	if masked {
		if _, err = io.ReadFull(r, mask[:]); err != nil {
			return
		}
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return
	}
	if masked {
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
	}
	return
}

// msgSeen is one data message or control frame as a peer read it.
type msgSeen struct {
	op      byte
	payload string
}

// readMessages reads frames until n data messages have arrived (fragments
// joined) and returns them with the control frames read meanwhile, in
// order.
func readMessages(r *bufio.Reader, n int) ([]msgSeen, error) {
	var out []msgSeen
	var cur []byte
	var curOp byte
	for data := 0; data < n; {
		fin, op, p, err := readFrame(r)
		if err != nil {
			return out, err
		}
		if op >= 8 {
			out = append(out, msgSeen{op, string(p)})
			continue
		}
		if op != 0 {
			curOp, cur = op, nil
		}
		cur = append(cur, p...)
		if fin {
			out = append(out, msgSeen{curOp, string(cur)})
			data++
		}
	}
	return out, nil
}

const head101 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"

// TestFramerFollowsSlicedStream feeds a server stream (101 head, then
// frames of every length encoding, a fragmented message with a ping in
// the middle and an empty message) to a framer in 1-16 byte pieces and
// checks it finds each data message, whole, where it ends.
func TestFramerFollowsSlicedStream(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 7000) // 70,000 bytes: 64-bit length
	mid := bytes.Repeat([]byte("m"), 300)           // 16-bit length
	for _, masked := range []bool{false, true} {
		t.Run(fmt.Sprintf("masked=%v", masked), func(t *testing.T) {
			var mask []byte
			if masked {
				mask = []byte{0x11, 0x22, 0x33, 0x44}
			}
			var stream []byte
			dir := ServerToClient
			up := new(atomic.Bool)
			if masked {
				dir = ClientToServer
				up.Store(true) // the 101 went the other way
			} else {
				stream = append(stream, head101...)
			}
			want := []string{"hello", string(mid), "frag-one|frag-two", "", string(big)}
			var ends []int
			add := func(b []byte, end bool) {
				stream = append(stream, b...)
				if end {
					ends = append(ends, len(stream))
				}
			}
			add(frame(true, 1, []byte("hello"), mask), true)
			add(frame(true, 2, mid, mask), true)
			add(frame(false, 1, []byte("frag-one|"), mask), false)
			add(frame(true, 9, []byte("ping"), mask), false)
			add(frame(true, 0, []byte("frag-two"), mask), true)
			add(frame(true, 1, nil, mask), true)
			add(frame(true, 10, []byte("pong"), mask), false)
			add(frame(true, 2, big, mask), true)

			fr := &framer{dir: dir, up: up}
			var got []string
			var gotEnds []int
			for off := 0; off < len(stream); {
				n := min(len(stream)-off, 1+rand.IntN(16))
				for _, m := range fr.feed(stream[off : off+n]) {
					got = append(got, string(m.payload))
					gotEnds = append(gotEnds, off+m.end)
					// The fragmented message has a ping among its
					// frames; the others are contiguous in the stream.
					end := off + m.end
					if string(m.payload) != "frag-one|frag-two" && !bytes.Equal(m.raw, stream[end-len(m.raw):end]) {
						t.Errorf("raw copy of %q is not the bytes sent", trunc(m.payload))
					}
				}
				off += n
			}
			if len(got) != len(want) {
				t.Fatalf("found %d messages, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("message %d = %q, want %q", i, trunc([]byte(got[i])), trunc([]byte(want[i])))
				}
				if gotEnds[i] != ends[i] {
					t.Errorf("message %d ends at %d, want %d", i, gotEnds[i], ends[i])
				}
			}
		})
	}
}

func trunc(b []byte) string {
	if len(b) > 20 {
		return string(b[:20]) + "…"
	}
	return string(b)
}

// wsPeers starts a fake WebSocket server behind a proxy and connects a
// fake client to it through the proxy: the client sends an upgrade
// request, the server answers 101. It returns the proxy and both ends.
func wsPeers(t *testing.T, configure func(*Proxy)) (p *Proxy, client, server net.Conn, cr, sr *bufio.Reader) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		accepted <- c
	}()
	p, err = Listen("127.0.0.1:0", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if configure != nil {
		configure(p)
	}
	client, err = net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if _, err := io.WriteString(client, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case server = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the proxy did not dial the server")
	}
	t.Cleanup(func() { server.Close() })
	sr = bufio.NewReader(server)
	for {
		line, err := sr.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	if _, err := io.WriteString(server, head101); err != nil {
		t.Fatal(err)
	}
	cr = bufio.NewReader(client)
	for {
		line, err := cr.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	_ = server.SetDeadline(time.Now().Add(10 * time.Second))
	return p, client, server, cr, sr
}

// TestDuplicateByDirectionAndMatch: with duplication of messages holding
// "dup" client→server, each such message reaches the server twice right
// after itself (masked frames verbatim, fragments included), others and
// control frames once, and nothing is duplicated server→client; the
// observer sees each message once.
func TestDuplicateByDirectionAndMatch(t *testing.T) {
	var mu sync.Mutex
	observed := map[Direction][]string{}
	p, client, server, cr, sr := wsPeers(t, func(p *Proxy) {
		p.SetDuplicate(ClientToServer, func(_ Direction, _ byte, b []byte) bool { return strings.Contains(string(b), "dup") })
		p.Observe(func(dir Direction, _ byte, b []byte) {
			mu.Lock()
			observed[dir] = append(observed[dir], string(b))
			mu.Unlock()
		})
	})
	mask := []byte{1, 2, 3, 4}
	var out []byte
	out = append(out, frame(true, 1, []byte("dup-1"), mask)...)
	out = append(out, frame(true, 1, []byte("once-2"), mask)...)
	out = append(out, frame(false, 1, []byte("dup-"), mask)...)
	out = append(out, frame(true, 9, []byte("ping"), mask)...)
	out = append(out, frame(true, 0, []byte("frag-3"), mask)...)
	big := "dup-" + strings.Repeat("b", 100_000)
	out = append(out, frame(true, 2, []byte(big), mask)...)
	// Write in small pieces so messages straddle reads.
	go func() {
		for len(out) > 0 {
			n := min(len(out), 1+rand.IntN(4096))
			if _, err := client.Write(out[:n]); err != nil {
				return
			}
			out = out[n:]
		}
	}()
	got, err := readMessages(sr, 7)
	if err != nil {
		t.Fatalf("server read: %v (got %v)", err, got)
	}
	want := []msgSeen{{1, "dup-1"}, {1, "dup-1"}, {1, "once-2"}, {9, "ping"}, {1, "dup-frag-3"}, {1, "dup-frag-3"}, {2, big}, {2, big}}
	if err := sameSeen(got, want); err != nil {
		t.Error("client→server:", err)
	}

	// Server→client is not duplicated.
	if _, err := server.Write(append(frame(true, 1, []byte("dup-from-server"), nil), frame(true, 1, []byte("last"), nil)...)); err != nil {
		t.Fatal(err)
	}
	got, err = readMessages(cr, 2)
	if err != nil {
		t.Fatalf("client read: %v", err)
	}
	if err := sameSeen(got, []msgSeen{{1, "dup-from-server"}, {1, "last"}}); err != nil {
		t.Error("server→client:", err)
	}
	if n := p.Duplicated(); n != 3 {
		t.Errorf("Duplicated() = %d, want 3", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := len(observed[ClientToServer]); n != 4 {
		t.Errorf("observer saw %d client messages, want 4: %v", n, observed[ClientToServer])
	}
	if n := len(observed[ServerToClient]); n != 2 {
		t.Errorf("observer saw %d server messages, want 2", n)
	}
}

// TestDuplicateBothWaysAfterEnable: duplication switched on for both
// directions mid-connection applies to the next message each way.
func TestDuplicateBothWaysAfterEnable(t *testing.T) {
	p, client, server, cr, sr := wsPeers(t, nil)
	mask := []byte{9, 8, 7, 6}
	if _, err := client.Write(frame(true, 1, []byte("before"), mask)); err != nil {
		t.Fatal(err)
	}
	if got, err := readMessages(sr, 1); err != nil || sameSeen(got, []msgSeen{{1, "before"}}) != nil {
		t.Fatalf("before: %v %v", got, err)
	}
	p.SetDuplicate(BothDirections, nil)
	if _, err := client.Write(frame(true, 1, []byte("c2s"), mask)); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Write(frame(true, 1, []byte("s2c"), nil)); err != nil {
		t.Fatal(err)
	}
	if got, err := readMessages(sr, 2); err != nil || sameSeen(got, []msgSeen{{1, "c2s"}, {1, "c2s"}}) != nil {
		t.Errorf("server got %v, %v; want c2s twice", got, err)
	}
	if got, err := readMessages(cr, 2); err != nil || sameSeen(got, []msgSeen{{1, "s2c"}, {1, "s2c"}}) != nil {
		t.Errorf("client got %v, %v; want s2c twice", got, err)
	}
	p.SetDuplicate(0, nil)
	if _, err := client.Write(append(frame(true, 1, []byte("after"), mask), frame(true, 1, []byte("end"), mask)...)); err != nil {
		t.Fatal(err)
	}
	if got, err := readMessages(sr, 2); err != nil || sameSeen(got, []msgSeen{{1, "after"}, {1, "end"}}) != nil {
		t.Errorf("after removing: server got %v, %v", got, err)
	}
}

// TestPlainHTTPUntouched: a connection whose first response is not a 101
// is never parsed as frames, even when its bytes look like frames.
func TestPlainHTTPUntouched(t *testing.T) {
	p, err := Listen("127.0.0.1:0", echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.SetDuplicate(BothDirections, nil)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The echo server sends back what it gets: a "response" that is not a
	// 101, followed by bytes that parse as a text frame.
	msg := append([]byte("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"), frame(true, 1, []byte("hello"), nil)...)
	if err := roundTrip(t, c, msg, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := p.Duplicated(); n != 0 {
		t.Errorf("Duplicated() = %d on a plain HTTP connection", n)
	}
}

func sameSeen(got, want []msgSeen) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d messages/frames %v, want %d", len(got), short(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			return fmt.Errorf("#%d = {%d %q}, want {%d %q}", i, got[i].op, trunc([]byte(got[i].payload)), want[i].op, trunc([]byte(want[i].payload)))
		}
	}
	return nil
}

func short(s []msgSeen) []string {
	var out []string
	for _, m := range s {
		out = append(out, fmt.Sprintf("%d:%s", m.op, trunc([]byte(m.payload))))
	}
	return out
}

// TestLatencyPipelined: with 200 ± 50 ms latency, ten writes 20 ms apart
// all arrive within about 200 ms of being sent (the delays overlap), and
// the bytes keep their order.
func TestLatencyPipelined(t *testing.T) {
	p, c := start(t)
	p.SetLatency(200*time.Millisecond, 50*time.Millisecond)
	begin := time.Now()
	var want []byte
	for i := range 10 {
		b := []byte(fmt.Sprintf("chunk-%02d;", i))
		want = append(want, b...)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	if !bytes.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// Sent over 200 ms; each byte goes through twice (to the echo server
	// and back): 300-500 ms of latency after the last write.
	if took < 500*time.Millisecond || took > 1200*time.Millisecond {
		t.Errorf("ten pipelined chunks took %v, want 0.5-1.2s (serial delays would take ≥ 3s)", took)
	}
}
