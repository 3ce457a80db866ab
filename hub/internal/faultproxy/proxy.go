package faultproxy

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards TCP connections from its listener to a target address,
// injecting the faults it is told to.
type Proxy struct {
	ln     net.Listener
	target string
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	// mu guards the fields below it.
	mu        sync.Mutex
	conns     map[*pair]struct{}
	hung      bool
	healed    chan struct{} // closed by Heal; replaced by Hang
	delay     time.Duration
	rate      int // bytes per second per direction; 0 is unlimited
	lat       time.Duration
	latJitter time.Duration
	slice     int // largest segment written; 0 is whatever was read
	accepted  int
	closed    bool

	dupDir     Direction    // directions whose matching messages are sent twice
	dupMatch   MessageMatch // nil: every data message
	observe    MessageMatch // sees every data message; its result is ignored
	duplicated int          // messages sent twice so far
	acceptLog  []time.Time  // when each connection was accepted, when logging
	logAccepts bool
}

// pair is one proxied connection: the accepted side and the dialled one.
type pair struct {
	down net.Conn
	dead chan struct{} // closed by close

	mu     sync.Mutex // guards up and closed
	up     net.Conn   // nil until dialled
	closed bool

	upgraded atomic.Bool // the server answered the WebSocket upgrade
}

// close closes both sides, with an RST when rst is set; only the first
// call does anything.
func (c *pair) close(rst bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	up := c.up
	c.mu.Unlock()
	close(c.dead)
	for _, n := range []net.Conn{c.down, up} {
		if n == nil {
			continue
		}
		if tc, ok := n.(*net.TCPConn); ok && rst {
			_ = tc.SetLinger(0) // close sends RST instead of FIN
		}
		_ = n.Close()
	}
}

// setUp records the dialled side; false (and up closed) when the pair was
// closed meanwhile.
func (c *pair) setUp(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		up.Close()
		return false
	}
	c.up = up
	return true
}

// Listen listens on addr (e.g. "127.0.0.1:0") and forwards every accepted
// connection to target, until Close.
func Listen(addr, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	healed := make(chan struct{})
	close(healed)
	p := &Proxy{ln: ln, target: target, done: make(chan struct{}), conns: map[*pair]struct{}{}, healed: healed}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every connection and waits for the proxy's
// goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	err := p.ln.Close()
	p.closeAll(false)
	p.wg.Wait()
	return err
}

// Cut closes every open connection, both sides, with a FIN. New
// connections are accepted as before.
func (p *Proxy) Cut() int { return p.closeAll(false) }

// Reset closes every open connection, both sides, with an RST. New
// connections are accepted as before.
func (p *Proxy) Reset() int { return p.closeAll(true) }

// Hang blackholes the link: open connections stop forwarding (what they
// read is held), and new ones are accepted but neither dialled nor
// forwarded, until Heal. Nobody is told: connections stay open.
func (p *Proxy) Hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.hung {
		p.hung = true
		p.healed = make(chan struct{})
	}
}

// Heal ends Hang: held bytes and connections go through.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hung {
		p.hung = false
		close(p.healed)
	}
}

// SetDelay holds every chunk read for d before writing it (both
// directions; the delay adds up per chunk, it is not pipelined). Zero
// removes it.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// SetLatency delays every byte by base ± jitter (uniform, drawn per chunk
// read), both directions, pipelined: unlike SetDelay, the delays of
// successive chunks overlap, as on a long link, and never reorder bytes.
// Zero removes it.
func (p *Proxy) SetLatency(base, jitter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lat, p.latJitter = base, min(jitter, base)
}

// SetThrottle caps each direction of each connection at bytesPerSec. Zero
// removes the cap.
func (p *Proxy) SetThrottle(bytesPerSec int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = bytesPerSec
}

// SetSlice writes the stream in segments of 1 to max bytes, each its own
// write (and on loopback usually its own TCP segment). Zero removes it.
func (p *Proxy) SetSlice(max int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.slice = max
}

// SetDuplicate makes the proxy send WebSocket data messages twice: every
// message travelling in a direction of dir that match selects (nil: every
// data message) is written again, frames verbatim (client frames keep
// their mask), right after its last byte. Control frames (ping, pong,
// close) pass once. A zero dir removes it. The proxy follows frames only on
// connections whose first response is a 101 (a WebSocket upgrade).
func (p *Proxy) SetDuplicate(dir Direction, match MessageMatch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dupDir, p.dupMatch = dir, match
}

// Duplicated is how many messages the proxy has sent twice so far.
func (p *Proxy) Duplicated() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.duplicated
}

// Observe shows every WebSocket data message passing through upgraded
// connections to f, once per message as received (copies the proxy adds
// are not shown), from the connection's goroutine; f must be safe for
// concurrent use and must not keep payload. Nil removes it.
func (p *Proxy) Observe(f func(dir Direction, op byte, payload []byte)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f == nil {
		p.observe = nil
		return
	}
	p.observe = func(dir Direction, op byte, payload []byte) bool { f(dir, op, payload); return true }
}

// LogAccepts starts recording when each connection is accepted; see
// AcceptTimes.
func (p *Proxy) LogAccepts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.logAccepts = true
}

// AcceptTimes returns when each connection was accepted since LogAccepts,
// in order.
func (p *Proxy) AcceptTimes() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.acceptLog...)
}

// Conns is how many connections are open now.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Accepted is how many connections the proxy has accepted so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *Proxy) closeAll(rst bool) int {
	p.mu.Lock()
	all := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		all = append(all, c)
	}
	p.mu.Unlock()
	for _, c := range all {
		c.close(rst)
	}
	return len(all)
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-p.done:
				return
			case <-time.After(10 * time.Millisecond):
				continue
			}
		}
		c := &pair{down: down, dead: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			down.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.accepted++
		if p.logAccepts {
			p.acceptLog = append(p.acceptLog, time.Now())
		}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(c)
	}
}

// gate waits while the proxy hangs; false when the proxy or the pair
// closed meanwhile.
func (p *Proxy) gate(c *pair) bool {
	p.mu.Lock()
	healed := p.healed
	p.mu.Unlock()
	select {
	case <-healed:
		return true
	case <-c.dead:
		return false
	case <-p.done:
		return false
	}
}

// serve dials the target and pumps both directions until either fails.
func (p *Proxy) serve(c *pair) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	defer c.close(false)
	if !p.gate(c) {
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil || !c.setUp(up) {
		return
	}
	var inner sync.WaitGroup
	inner.Add(2)
	go func() { defer inner.Done(); p.pump(c, up, c.down, ClientToServer) }()
	go func() { defer inner.Done(); p.pump(c, c.down, up, ServerToClient) }()
	inner.Wait()
}

// pump copies src to dst applying the faults; on any error it closes the
// pair, which ends the other direction too.
//
// A reader hands what it reads to a writer through a short queue, stamped
// with when it is due (SetLatency), so that latency is pipelined: each
// byte arrives late, but bytes read in the same second still leave in the
// same second, throttle permitting.
func (p *Proxy) pump(c *pair, dst, src net.Conn, dir Direction) {
	defer c.close(false)
	type chunk struct {
		b   []byte
		due time.Time
	}
	q := make(chan chunk, 16)
	written := make(chan struct{})
	go func() {
		defer close(written)
		defer c.close(false)
		for ch := range q {
			if !p.gate(c) {
				return
			}
			if wait := time.Until(ch.due); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-c.dead:
					t.Stop()
					return
				case <-p.done:
					t.Stop()
					return
				}
			}
			if err := p.write(c, dst, ch.b); err != nil {
				return
			}
		}
	}()
	defer func() { <-written }()
	defer close(q)
	buf := make([]byte, 32<<10)
	fr := &framer{dir: dir, up: &c.upgraded}
	var last time.Time
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.gate(c) {
				return
			}
			out := bytes.Clone(p.duplicate(dir, buf[:n], fr.feed(buf[:n])))
			due := time.Now().Add(p.latency())
			if due.Before(last) {
				due = last // jitter never reorders bytes
			}
			last = due
			select {
			case q <- chunk{out, due}:
			case <-c.dead:
				return
			}
		}
		if err != nil {
			return // EOF or a closed pair alike: close both sides once written
		}
	}
}

// latency draws the latency of one chunk.
func (p *Proxy) latency() time.Duration {
	p.mu.Lock()
	base, jitter := p.lat, p.latJitter
	p.mu.Unlock()
	if jitter > 0 {
		base += time.Duration(rand.Int64N(int64(2*jitter)+1)) - jitter
	}
	return max(base, 0)
}

// duplicate returns chunk with a second copy of each message in msgs
// (which end in chunk) that the duplication setting selects, right after
// the message's last byte; it shows every message to the observer.
func (p *Proxy) duplicate(dir Direction, chunk []byte, msgs []message) []byte {
	if len(msgs) == 0 {
		return chunk
	}
	p.mu.Lock()
	dupDir, match, observe := p.dupDir, p.dupMatch, p.observe
	p.mu.Unlock()
	var out []byte
	start, copies := 0, 0
	for _, m := range msgs {
		if observe != nil {
			observe(dir, m.op, m.payload)
		}
		if dupDir&dir == 0 || (match != nil && !match(dir, m.op, m.payload)) {
			continue
		}
		out = append(out, chunk[start:m.end]...)
		out = append(out, m.raw...)
		start = m.end
		copies++
	}
	if copies == 0 {
		return chunk
	}
	p.mu.Lock()
	p.duplicated += copies
	p.mu.Unlock()
	return append(out, chunk[start:]...)
}

func (p *Proxy) write(c *pair, dst net.Conn, b []byte) error {
	p.mu.Lock()
	delay, rate, slice := p.delay, p.rate, p.slice
	p.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-c.dead:
			return net.ErrClosed
		case <-p.done:
			return net.ErrClosed
		}
	}
	for len(b) > 0 {
		n := len(b)
		if slice > 0 {
			n = min(n, 1+rand.IntN(slice))
		}
		if _, err := dst.Write(b[:n]); err != nil {
			return err
		}
		if rate > 0 {
			time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
		}
		b = b[n:]
	}
	return nil
}
