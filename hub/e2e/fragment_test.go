package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"ferry.dev/hub/internal/faultproxy"
	"ferry.dev/hub/internal/testbed"
	"ferry.dev/shared/protocol"
)

// enroll trades a link token of org/env for an installation credential, as
// a first-start agent does.
func enroll(t *testing.T, h *hub, org, env string) string {
	t.Helper()
	var out struct{ Credential string }
	st, body := testbed.DoJSON(t, "POST", h.url+"/api/v1/link/enroll", h.linkToken(t, org, env), map[string]string{"agentVersion": "e2e"}, &out)
	if st != http.StatusCreated || out.Credential == "" {
		t.Fatalf("enroll %s/%s: %d %s", org, env, st, body)
	}
	return out.Credential
}

// wsLink is a bare WebSocket link to the hub (or a proxy in front of it),
// after the hello: what an agent's link client does, with every message
// written and read kept as bytes.
type wsLink struct {
	ws  *websocket.Conn
	wmu sync.Mutex // serializes writes
}

// dialLink dials the link at addr with cred and says hello; it returns the
// hello it wrote and the hub's answer.
func dialLink(ctx context.Context, addr, cred string) (l *wsLink, hello, reply []byte, err error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{"ferry.v1"}}
	ws, resp, err := d.DialContext(ctx, "ws://"+addr+"/api/v1/link", http.Header{"Authorization": {"Bearer " + cred}})
	if err != nil {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		return nil, nil, nil, fmt.Errorf("dial link (status %d): %w", st, err)
	}
	ws.SetReadLimit(protocol.MaxFrameBytes)
	l = &wsLink{ws: ws}
	env, _ := protocol.New(protocol.TypeHello, "hello-1", "", &protocol.Hello{AgentVersion: "e2e"})
	hello, _ = json.Marshal(env)
	if err := l.write(hello); err != nil {
		ws.Close()
		return nil, nil, nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, reply, err = ws.ReadMessage(); err != nil {
		ws.Close()
		return nil, nil, nil, fmt.Errorf("read hello reply: %w", err)
	}
	return l, hello, reply, nil
}

func (l *wsLink) write(b []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	_ = l.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return l.ws.WriteMessage(websocket.TextMessage, b)
}

// multiset counts byte strings.
type multiset struct {
	mu sync.Mutex
	m  map[string]int
	n  int
}

func (s *multiset) add(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]int{}
	}
	s.m[string(b)]++
	s.n++
}

// diff says how o differs from s, or "" when they hold the same strings.
func (s *multiset) diff(o *multiset) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	var missing, extra int
	var example string
	for k, v := range s.m {
		if d := v - o.m[k]; d > 0 {
			missing += d
			example = k
		}
	}
	for k, v := range o.m {
		if d := v - s.m[k]; d > 0 {
			extra += d
			if example == "" {
				example = k
			}
		}
	}
	if missing == 0 && extra == 0 {
		return ""
	}
	if len(example) > 120 {
		example = example[:120] + "…"
	}
	return fmt.Sprintf("%d messages missing and %d unexpected (e.g. %q)", missing, extra, example)
}

// TestFragmentation is A7: links of real installations run through a
// faultproxy slicer that writes the stream in 1-16 byte segments, both
// ways, while FERRY_FRAGMENT_N messages (10,000) cross it: health checks
// from the clients and the hub's replies. A second faultproxy between the
// slicer and the hub records every message after slicing, so both
// directions are compared byte for byte: what each client wrote with what
// reached the hub's side of the slicer, and what the hub sent with what
// the clients decoded. Every check is answered (the hub decoded it) and
// the hub counted no bad message.
//
// The hub lets one link send 100 messages/s, so the load is spread over
// FERRY_FRAGMENT_LINKS links (10), each below that rate.
func TestFragmentation(t *testing.T) {
	t.Parallel()
	total := chaosInt(t, "FERRY_FRAGMENT_N", 10000)
	links := chaosInt(t, "FERRY_FRAGMENT_LINKS", 10)
	perLink := (total + 2*links - 1) / (2 * links) // checks per link; each has a reply
	dir := t.TempDir()
	h := startHub(t, testbed.FreeAddr(t), filepath.Join(dir, "hub"), "FERRY_RATE_LIMIT_SIGNIN=off", "FERRY_RATE_LIMIT_LINK=off")
	envs := make([]string, links)
	for i := range envs {
		envs[i] = fmt.Sprintf("F%02d", i)
	}
	h.setupOrg(t, "frag", envs...)
	creds := make([]string, links)
	for i, e := range envs {
		creds[i] = enroll(t, h, "frag", e)
	}

	recorder, err := faultproxy.Listen("127.0.0.1:0", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer recorder.Close()
	slicer, err := faultproxy.Listen("127.0.0.1:0", recorder.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer slicer.Close()
	slicer.SetSlice(16)
	atHub := map[faultproxy.Direction]*multiset{faultproxy.ClientToServer: {}, faultproxy.ServerToClient: {}}
	recorder.Observe(func(d faultproxy.Direction, _ byte, p []byte) { atHub[d].add(p) })
	var sent, got multiset

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, links)
	for i := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fragmentLink(ctx, slicer.Addr(), creds[i], i, perLink, &sent, &got); err != nil {
				errs <- fmt.Errorf("link %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	took := time.Since(start)
	// The recorder sees the hub's last replies a moment before the client.
	time.Sleep(200 * time.Millisecond)
	up, down := sent.diff(atHub[faultproxy.ClientToServer]), atHub[faultproxy.ServerToClient].diff(&got)
	if up != "" {
		t.Errorf("client→hub through the slicer: %s", up)
	}
	if down != "" {
		t.Errorf("hub→client through the slicer: %s", down)
	}
	bad := metric(t, h.url, "ferry_hub_link_bad_messages_total")
	if bad > 0 {
		t.Errorf("the hub counted %v bad messages", bad)
	}
	identical := 0
	if up == "" && down == "" {
		identical = sent.n + got.n
	}
	t.Logf("chaos summary: test=Fragmentation links=%d messages=%d client_to_hub=%d hub_to_client=%d byte_identical=%d slice=1-16 took=%v",
		links, sent.n+got.n, sent.n, got.n, identical, took.Round(time.Millisecond))
	if sent.n+got.n < total {
		t.Errorf("%d messages crossed the slicer, want ≥ %d", sent.n+got.n, total)
	}
}

// fragmentLink says hello on one link and sends n health checks at ~80/s
// with ids of random length, answering the hub's own checks, until every
// check has its reply. Every message written goes to sent and every one
// read to got.
func fragmentLink(ctx context.Context, addr, cred string, idx, n int, sent, got *multiset) error {
	l, hello, reply, err := dialLink(ctx, addr, cred)
	if err != nil {
		return err
	}
	defer l.ws.Close()
	// The hello went through the slicer too.
	sent.add(hello)
	got.add(reply)

	want := map[string]bool{}
	var mu sync.Mutex
	werr := make(chan error, 1)
	go func() {
		tick := time.NewTicker(12500 * time.Microsecond)
		defer tick.Stop()
		for i := range n {
			pad := strings.Repeat("x", rand.IntN(100))
			id := fmt.Sprintf("l%d-%d-%s", idx, i, pad)
			env, _ := protocol.New(protocol.TypeHealthCheck, id, "", nil)
			b, _ := json.Marshal(env)
			mu.Lock()
			want[id] = true
			mu.Unlock()
			if err := l.write(b); err != nil {
				werr <- err
				return
			}
			sent.add(b)
			select {
			case <-tick.C:
			case <-ctx.Done():
				werr <- ctx.Err()
				return
			}
		}
		werr <- nil
	}()
	replies := 0
	for replies < n {
		_ = l.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, m, err := l.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("after %d of %d replies: %w", replies, n, err)
		}
		got.add(m)
		env, err := protocol.Decode(m)
		if err != nil {
			return fmt.Errorf("the hub's message does not decode after slicing: %w", err)
		}
		switch env.Type {
		case protocol.TypeReply:
			mu.Lock()
			ok := want[env.ReplyTo]
			delete(want, env.ReplyTo)
			mu.Unlock()
			if !ok {
				return fmt.Errorf("reply to %q, which is not an outstanding check", env.ReplyTo)
			}
			replies++
		case protocol.TypeHealthCheck:
			r, _ := protocol.OKReply(&protocol.Health{Healthy: true})
			rep, _ := protocol.New(protocol.TypeReply, "r-"+env.ID, env.ID, r)
			b, _ := json.Marshal(rep)
			if err := l.write(b); err != nil {
				return err
			}
			sent.add(b)
		}
	}
	return <-werr
}
