package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"ferry.dev/shared/protocol"
)

// clientsSummary is the JSON line the clients mode prints once every
// handshake has been tried.
type clientsSummary struct {
	Mode           string         `json:"mode"`
	URL            string         `json:"url"`
	N              int            `json:"n"`
	Connected      int            `json:"connected"`
	Failed         int            `json:"failed"`
	Retries        int64          `json:"retries"`
	ElapsedS       float64        `json:"elapsed_s"`
	HandshakesPerS float64        `json:"handshakes_per_s"`
	LatencyMS      map[string]any `json:"latency_ms"`
	Errors         map[string]int `json:"errors,omitempty"`
}

func clientsMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("clients", flag.ContinueOnError)
	hub := fs.String("hub", "", "hub (or echo server) base URL on loopback, e.g. http://127.0.0.1:8080 (required)")
	n := fs.Int("n", 1000, "links to open (1-20000)")
	credsFile := fs.String("creds", "", "credentials, one a line, at least -n of them; empty sends 'bench' (for the echo server)")
	rate := fs.Float64("rate", 0, "handshakes started per second; 0 starts them as fast as -concurrency allows")
	concurrency := fs.Int("concurrency", 64, "handshakes in flight at once")
	hold := fs.Duration("hold", time.Minute, "stay connected this long after the last handshake (SIGTERM ends it sooner)")
	maxTime := fs.Duration("max-time", 10*time.Minute, "give up on handshakes not done after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *hub == "" {
		return errors.New("clients: -hub is required")
	}
	if *n < 1 || *n > 20000 || *concurrency < 1 || *rate < 0 {
		return errors.New("clients: -n must be 1-20000, -concurrency positive and -rate not negative")
	}
	base, err := loopbackURL(*hub)
	if err != nil {
		return err
	}
	target := *base
	target.Scheme = "ws"
	if target.Path == "" {
		target.Path = "/api/v1/link"
	}
	creds, err := readCreds(*credsFile, *n)
	if err != nil {
		return err
	}
	if err := checkFileLimit(*n); err != nil {
		return err
	}

	b := &bench{
		url: target.String(),
		dialer: &websocket.Dialer{
			ReadBufferSize:   1024,
			WriteBufferSize:  1024,
			WriteBufferPool:  &sync.Pool{},
			HandshakeTimeout: 30 * time.Second,
			Subprotocols:     []string{protocol.Subprotocol}, // the hub refuses upgrades without it
		},
		conns:   make([]*websocket.Conn, *n),
		latency: make([]time.Duration, *n),
		errs:    map[string]int{},
	}
	hctx, cancel := context.WithTimeout(ctx, *maxTime)
	defer cancel()
	elapsed := b.connectAll(hctx, creds, *rate, *concurrency)

	s := b.summary(*n, elapsed)
	if err := json.NewEncoder(os.Stdout).Encode(s); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "clients: %d/%d connected; holding for %v\n", s.Connected, *n, *hold)
	t := time.NewTimer(*hold)
	select {
	case <-ctx.Done():
		t.Stop()
	case <-t.C:
	}
	dropped := b.closeAll()
	fmt.Fprintf(os.Stderr, "clients: closed; %d links had ended during the hold\n", dropped)
	if s.Connected == 0 {
		return errors.New("clients: no link connected")
	}
	return nil
}

// readCreds returns n credentials from file, or n times "bench" without one.
func readCreds(file string, n int) ([]string, error) {
	if file == "" {
		return slices.Repeat([]string{"bench"}, n), nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var creds []string
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(creds) < n {
		if c := strings.TrimSpace(sc.Text()); c != "" {
			creds = append(creds, c)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(creds) < n {
		return nil, fmt.Errorf("clients: %s holds %d credentials, want %d", file, len(creds), n)
	}
	return creds, nil
}

// checkFileLimit makes sure n sockets fit under RLIMIT_NOFILE (which the Go
// runtime has already raised to the hard limit).
func checkFileLimit(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // not knowable here; let the dials tell
	}
	if uint64(n)+64 > lim.Cur {
		return fmt.Errorf("clients: %d links need more than the %d open files this process may hold", n, lim.Cur)
	}
	return nil
}

// bench is one run of the clients mode.
type bench struct {
	url     string
	dialer  *websocket.Dialer
	retries atomic.Int64
	stopped atomic.Bool // set before closeAll: reader errors are expected
	dropped atomic.Int64
	readers sync.WaitGroup

	mu      sync.Mutex // guards the fields below
	conns   []*websocket.Conn
	latency []time.Duration // 0: not connected
	errs    map[string]int
}

// connectAll opens one link per credential, at most concurrency handshakes
// at once and rate handshakes started per second, and returns the time from
// the first dial to the last answer.
func (b *bench) connectAll(ctx context.Context, creds []string, rate float64, concurrency int) time.Duration {
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	var last atomic.Int64 // nanoseconds after start of the last answer
	for i, cred := range creds {
		if rate > 0 {
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
				case <-t.C:
				}
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			b.fail(ctx.Err())
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ws, lat, err := b.handshake(ctx, i, cred)
			if err != nil {
				b.fail(err)
				return
			}
			b.mu.Lock()
			b.conns[i], b.latency[i] = ws, lat
			b.mu.Unlock()
			at := int64(time.Since(start))
			for old := last.Load(); at > old && !last.CompareAndSwap(old, at); old = last.Load() {
			}
			b.readers.Add(1)
			go func() {
				defer b.readers.Done()
				for {
					// The default ping handler answers the hub's pings.
					if _, _, err := ws.ReadMessage(); err != nil {
						if !b.stopped.Load() {
							b.dropped.Add(1)
						}
						return
					}
				}
			}()
		}()
	}
	wg.Wait()
	if l := time.Duration(last.Load()); l > 0 {
		return l
	}
	return time.Since(start)
}

// handshake dials, says hello and waits for the first frame back: the hub's
// hello reply, or the echo server's copy of the hello. Dials that fail
// before the upgrade (e.g. a full accept backlog) are retried twice.
func (b *bench) handshake(ctx context.Context, i int, cred string) (*websocket.Conn, time.Duration, error) {
	hello, _ := json.Marshal(map[string]any{
		"v": 1, "type": "hello", "id": "b1",
		"payload": map[string]any{"agent_version": "bench", "hostname": fmt.Sprintf("bench-%05d", i)},
	})
	h := http.Header{"Authorization": {"Bearer " + cred}}
	for attempt := 0; ; attempt++ {
		start := time.Now()
		ws, resp, err := b.dialer.DialContext(ctx, b.url, h)
		if err != nil {
			if resp != nil || attempt == 2 || ctx.Err() != nil {
				if resp != nil {
					return nil, 0, fmt.Errorf("upgrade refused: %s", resp.Status)
				}
				return nil, 0, err
			}
			b.retries.Add(1)
			time.Sleep(time.Duration(100*(attempt+1)) * time.Millisecond)
			continue
		}
		_ = ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := ws.WriteMessage(websocket.TextMessage, hello); err != nil {
			ws.Close()
			return nil, 0, fmt.Errorf("send hello: %w", err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, frame, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return nil, 0, fmt.Errorf("read hello reply: %w", err)
		}
		lat := time.Since(start)
		_ = ws.SetReadDeadline(time.Time{})
		var env struct{ Type string }
		if json.Unmarshal(frame, &env) != nil || (env.Type != "hello_reply" && env.Type != "hello") {
			ws.Close()
			return nil, 0, fmt.Errorf("first frame back was %.60q, want a hello reply", frame)
		}
		return ws, lat, nil
	}
}

func (b *bench) fail(err error) {
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	b.mu.Lock()
	b.errs[msg]++
	b.mu.Unlock()
}

func (b *bench) summary(n int, elapsed time.Duration) clientsSummary {
	b.mu.Lock()
	defer b.mu.Unlock()
	var lats []time.Duration
	for _, l := range b.latency {
		if l > 0 {
			lats = append(lats, l)
		}
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	pct := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		i := int(math.Ceil(p*float64(len(lats)))) - 1
		return round(float64(lats[max(i, 0)])/float64(time.Millisecond), 2)
	}
	s := clientsSummary{
		Mode: "clients", URL: b.url, N: n, Connected: len(lats), Failed: n - len(lats), Retries: b.retries.Load(),
		ElapsedS:  round(elapsed.Seconds(), 3),
		LatencyMS: map[string]any{"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1)},
	}
	if elapsed > 0 {
		s.HandshakesPerS = round(float64(len(lats))/elapsed.Seconds(), 1)
	}
	if len(b.errs) > 0 {
		s.Errors = b.errs
	}
	return s
}

// closeAll says goodbye with a close frame, closes every link, waits for the
// readers and returns how many links had ended before.
func (b *bench) closeAll() int64 {
	b.stopped.Store(true)
	dropped := b.dropped.Load()
	b.mu.Lock()
	conns := b.conns
	b.mu.Unlock()
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done")
	for _, ws := range conns {
		if ws != nil {
			_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(100*time.Millisecond))
			ws.Close()
		}
	}
	b.readers.Wait()
	return dropped
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
