package herdtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/agent/internal/enroll"
	"ferry.dev/agent/internal/link"
	"ferry.dev/shared/protocol"
)

// hubBin is the ferry-hub binary built by TestMain.
var hubBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-herd-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hubBin = filepath.Join(dir, "ferry-hub")
	// go.work puts the hub module beside this one.
	cmd := exec.Command("go", "build", "-o", hubBin, "ferry.dev/hub/cmd/ferry-hub")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build ferry-hub:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const adminToken = "herd-admin-token-0123456789abcdef"

// hubProc is a running ferry-hub whose output is kept.
type hubProc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startHub starts ferry-hub on addr with dir, asking agents for rate
// redials per second after a restart (FERRY_RECONNECT_RATE), and waits for
// /readyz. The rate limits are off: every client of this test dials from
// 127.0.0.1, where the real herd comes from as many addresses as agents,
// and the test creates hundreds of environments with one admin token.
func startHub(t *testing.T, addr, dir string, rate int, out *lockedBuffer) *hubProc {
	t.Helper()
	cmd := exec.Command(hubBin, "--listen", addr, "--data-dir", dir, "--log-level", "info")
	cmd.Env = append(os.Environ(), "FERRY_ADMIN_TOKEN="+adminToken, "FERRY_RECONNECT_RATE="+strconv.Itoa(rate),
		"FERRY_RATE_LIMIT_TOKEN=off", "FERRY_RATE_LIMIT_SIGNIN=off", "FERRY_RATE_LIMIT_LINK=off")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &hubProc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(h.done) }()
	t.Cleanup(h.kill)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h
			}
		}
		select {
		case <-h.done:
			t.Fatalf("ferry-hub exited at start:\n%s", out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ferry-hub not ready within 20s:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *hubProc) kill() {
	select {
	case <-h.done:
		return
	default:
	}
	_ = h.cmd.Process.Signal(syscall.SIGKILL)
	<-h.done
}

func (h *hubProc) alive() bool {
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// rest makes an admin REST call and decodes a 2xx answer into out.
func rest(t *testing.T, method, url string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s %s", method, url, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
}

// counter is a TCP forwarder in front of the hub that records when each
// connection (each dial of a link client) arrives. A connection the hub
// refuses (it is down) is closed at once, as the hub's own port would.
type counter struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	times []time.Time
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newCounter(t *testing.T, target string) *counter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	c.wg.Add(1)
	go c.accept()
	t.Cleanup(c.close)
	return c
}

func (c *counter) accept() {
	defer c.wg.Done()
	for {
		down, err := c.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		c.mu.Lock()
		c.times = append(c.times, time.Now())
		c.conns[down] = struct{}{}
		c.mu.Unlock()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer func() {
				c.mu.Lock()
				delete(c.conns, down)
				c.mu.Unlock()
				down.Close()
			}()
			up, err := net.DialTimeout("tcp", c.target, 5*time.Second)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, down); up.Close(); done <- struct{}{} }()
			go func() { _, _ = io.Copy(down, up); down.Close(); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

// since returns the arrival times of connections from t0 on.
func (c *counter) since(t0 time.Time) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, x := range c.times {
		if !x.Before(t0) {
			out = append(out, x)
		}
	}
	return out
}

func (c *counter) close() {
	c.ln.Close()
	c.mu.Lock()
	for conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// metric reads an unlabelled metric of the hub, or -1.
func metric(url, name string) float64 {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") {
			var v float64
			fmt.Sscanf(strings.TrimPrefix(line, name+" "), "%g", &v)
			return v
		}
	}
	return -1
}

// TestReconnectHerd is B3: FERRY_HERD_AGENTS installations (100; 500 in
// scripts/herd), each with its own environment, are linked by the agent's
// real link client (package link, with the real agent's default backoff:
// the daemon passes none), in process, through a forwarder that records
// every dial. The hub is SIGKILLed and started again at once on the same
// address and data directory. Pass: before the kill, every client holds
// the reconnect spread the hub sized to the fleet; every client is
// connected again within 60 s of the kill and the hub shows them all; no
// 1-second window (counted from the kill) holds more than
// FERRY_HERD_MAX_SHARE % of the dials made after the kill; the hub is
// still up.
//
// The hub asks for FERRY_HERD_RECONNECT_RATE redials a second (its
// --reconnect-rate): 10 here, so 100 agents spread their first redial
// uniformly over 10 s; scripts/herd runs 500 at the hub's default, 50,
// which is 10 s again. The clients are started one after another, so each
// hello is sized for the clients connected so far; the spread check shows
// that the hub's later settings messages brought the early ones up to the
// fleet's figure (without them the first 100 of 500 clients would keep
// 2 s, and the worst second after the kill held 26 %). Over 10 s a second
// holds 10 % on average; dials that reach the hub before it is ready fail
// and come again within a second, which adds to the early windows. At 500
// agents (FERRY_HERD_MAX_SHARE=20, the catalogue's figure) the worst
// second stays well under 20 %. At 100 agents chance weighs more; the CI
// bound is 30 %, which a 10 s spread exceeds about once in 10,000 runs
// even with a 2 s hub restart, and which the unspread client (75-98 % in
// the first second) fails.
func TestReconnectHerd(t *testing.T) {
	n := envInt(t, "FERRY_HERD_AGENTS", 100)
	maxShare := float64(envInt(t, "FERRY_HERD_MAX_SHARE", 30))
	rate := envInt(t, "FERRY_HERD_RECONNECT_RATE", 10)
	// What the hub advertises to n agents (n/rate s within 2-60 s); every
	// client holds at least 4/5 of it, the hub's readvertising step.
	fleetSpread := min(max(time.Duration(n)*time.Second/time.Duration(rate), 2*time.Second), 60*time.Second)
	minSpread := fleetSpread * 4 / 5
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	url := "http://" + addr
	out := &lockedBuffer{}
	h := startHub(t, addr, filepath.Join(dir, "hub"), rate, out)
	defer func() {
		if t.Failed() {
			s := out.String()
			if len(s) > 8000 {
				s = "…" + s[len(s)-8000:]
			}
			t.Logf("--- hub output (tail) ---\n%s", s)
		}
	}()
	rest(t, "POST", url+"/api/v1/orgs", map[string]string{"name": "herd"}, nil)
	fwd := newCounter(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// Enroll and link every installation.
	clients := make([]*link.Client, n)
	lastUp := make([]atomic.Int64, n) // unix nanos of each client's last hello
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	setup := time.Now()
	for i := range n {
		env := fmt.Sprintf("H%04d", i)
		rest(t, "POST", url+"/api/v1/orgs/herd/environments", map[string]string{"name": env}, nil)
		var tok struct{ Token string }
		rest(t, "POST", url+"/api/v1/orgs/herd/environments/"+env+"/link-tokens", nil, &tok)
		ectx, ecancel := context.WithTimeout(ctx, 30*time.Second)
		cred, err := enroll.Credential(ectx, enroll.Request{HubURL: url, DataDir: t.TempDir(), LinkToken: tok.Token, AgentVersion: "herd"}, log)
		ecancel()
		if err != nil {
			t.Fatalf("enroll %s: %v", env, err)
		}
		c, err := link.New(link.Config{HubURL: "http://" + fwd.ln.Addr().String(), Credential: cred, AgentVersion: "herd", Hostname: env}, log, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		c.OnConnect(func(*protocol.HelloReply) { lastUp[i].Store(time.Now().UnixNano()) })
		clients[i] = c
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Run(ctx) }()
	}
	connected := func(after time.Time) int {
		k := 0
		for i := range clients {
			if clients[i].State() == link.StateConnected && lastUp[i].Load() > after.UnixNano() {
				k++
			}
		}
		return k
	}
	for deadline := time.Now().Add(60 * time.Second); connected(setup) < n || metric(url, "ferry_hub_agents_connected") != float64(n); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d clients connected 60s after the set-up (hub shows %v)", connected(setup), n, metric(url, "ferry_hub_agents_connected"))
		}
	}
	t.Logf("%d clients connected (set-up took %v)", n, time.Since(setup).Round(time.Millisecond))
	spreads := func() (lo, hi time.Duration) {
		lo = time.Duration(1<<63 - 1)
		for _, c := range clients {
			lo, hi = min(lo, c.ReconnectSpread()), max(hi, c.ReconnectSpread())
		}
		return lo, hi
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if lo, hi := spreads(); lo >= minSpread && hi <= fleetSpread {
			break
		}
		if time.Now().After(deadline) {
			lo, hi := spreads()
			t.Fatalf("the clients hold reconnect spreads from %v to %v; the hub sized %v for %d agents at %d/s, want each within [%v, %v]", lo, hi, fleetSpread, n, rate, minSpread, fleetSpread)
		}
	}
	lo, hi := spreads()
	time.Sleep(2 * time.Second) // every session is past the link's HealthyIn

	// The herd.
	kill := time.Now()
	h.kill()
	h = startHub(t, addr, filepath.Join(dir, "hub"), rate, out)
	restarted := time.Since(kill)
	var all time.Duration
	for {
		if connected(kill) == n && metric(url, "ferry_hub_agents_connected") == float64(n) {
			all = time.Since(kill)
			break
		}
		if time.Since(kill) > 90*time.Second {
			break
		}
		if !h.alive() {
			t.Fatalf("the hub died during the herd:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	dials := fwd.since(kill)
	windows := map[int]int{}
	for _, d := range dials {
		windows[int(d.Sub(kill)/time.Second)]++
	}
	worst, worstAt := 0, 0
	for w, c := range windows {
		if c > worst || (c == worst && w < worstAt) {
			worst, worstAt = c, w
		}
	}
	share := 0.0
	if len(dials) > 0 {
		share = float64(worst) / float64(len(dials)) * 100
	}
	var spread []string
	for w := 0; w <= 10; w++ {
		spread = append(spread, strconv.Itoa(windows[w]))
	}
	rss := metric(url, "process_resident_memory_bytes")
	t.Logf("herd summary: agents=%d reconnect_rate=%d/s spreads_held=[%v,%v] hub_restart=%v all_reconnected=%v dials=%d worst_window=[%ds,%ds) worst_window_dials=%d worst_window_share=%.1f%% dials_per_second_0-10s=[%s] hub_up=%v hub_rss=%.1fMiB",
		n, rate, lo, hi, restarted.Round(time.Millisecond), all.Round(time.Millisecond), len(dials), worstAt, worstAt+1, worst, share, strings.Join(spread, " "), h.alive(), rss/(1<<20))
	if all == 0 {
		t.Errorf("%d of %d clients reconnected 90s after the hub was killed (hub shows %v)", connected(kill), n, metric(url, "ferry_hub_agents_connected"))
	} else if all > 60*time.Second {
		t.Errorf("every client reconnected %v after the kill, want ≤ 60s", all.Round(time.Millisecond))
	}
	if share > maxShare {
		t.Errorf("the 1s window [%ds,%ds) after the kill holds %d of %d dials (%.1f%%), want ≤ %.0f%%", worstAt, worstAt+1, worst, len(dials), share, maxShare)
	}
	if !h.alive() {
		t.Error("the hub is down after the herd")
	}
}
