package link_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/agent/internal/hubtest"
	"ferry.dev/agent/internal/link"
	"ferry.dev/shared/protocol"
)

// spreadSession is what the hub advertises on one session: a reconnect
// spread in its hello reply, then settings messages carrying others (all
// in milliseconds).
type spreadSession struct {
	hello    int64
	settings []int64
}

// TestAdvertisedReconnectSpread: the first redial after a healthy session
// is spread over the reconnect spread the hub last advertised, in its
// hello or in a later settings message (rows A3 and B3: the hub sizes it
// to its fleet); over the client's own when the last hello advertised none;
// and never over more than 2 minutes. The draws are fixed at 0.5, so each
// wait is half the spread in use. The client's own spread is an hour: a
// redial that ignored the hub's figure would wait half an hour, and the
// test would not see the next session.
func TestAdvertisedReconnectSpread(t *testing.T) {
	tests := []struct {
		name     string
		sessions []spreadSession
		waits    []string // logged before each redial
	}{
		{"the last hello's figure, then none", []spreadSession{{hello: 40}, {hello: 100}, {hello: 0}}, []string{"20ms", "50ms", "30m0s"}},
		// A zero in a settings message leaves the figure; the next hello
		// replaces it.
		{"settings replace the hello's figure", []spreadSession{{hello: 40, settings: []int64{100, 0}}, {hello: 40}}, []string{"50ms", "20ms"}},
		{"negative is none", []spreadSession{{hello: -40}}, []string{"30m0s"}},
		{"bounded to 2m", []spreadSession{{hello: 500_000}}, []string{"1m0s"}},
		{"bounded to 2m in settings", []spreadSession{{hello: 40, settings: []int64{500_000}}}, []string{"1m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.waits, redialWaits(t, tt.sessions)); diff != "" {
				t.Errorf("waits before the redials (-want +got):\n%s", diff)
			}
		})
	}
}

// redialWaits links a client to a hub that advertises sessions[i] on its
// i-th session, drops each session once the client has taken the figures,
// and returns the waits the client logged before redialling, one per
// session.
func redialWaits(t *testing.T, sessions []spreadSession) []string {
	t.Helper()
	var mu sync.Mutex
	hellos := 0
	hub := startHub(t, &hubtest.Hub{OnHello: func(*hubtest.Conn, *protocol.Hello) (*protocol.HelloReply, error) {
		mu.Lock()
		defer mu.Unlock()
		r := hubtest.DefaultHelloReply()
		r.ReconnectSpreadMs = sessions[min(hellos, len(sessions)-1)].hello
		hellos++
		return r, nil
	}})
	var logs syncBuffer
	cfg := link.Config{
		HubURL: hub.URL(), Credential: "cred-test", AgentVersion: "1.2.3",
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		HealthyIn:       time.Millisecond, // every session below is healthy
		ReconnectSpread: time.Hour,
	}
	c, err := link.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	link.SetRand(c, func() float64 { return 0.5 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	for i, s := range sessions {
		conn := waitConn(t, hub, i+1)
		if err := c.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
			t.Fatalf("session %d: %v", i+1, err)
		}
		if got := c.Hello().ReconnectSpreadMs; got != s.hello {
			t.Fatalf("session %d: Hello() advertises %dms, want %dms", i+1, got, s.hello)
		}
		for j, ms := range s.settings {
			env, err := protocol.New(protocol.TypeSettings, "", "", &protocol.Settings{ReconnectSpreadMs: ms})
			if err != nil {
				t.Fatal(err)
			}
			if err := conn.Send(env); err != nil {
				t.Fatal(err)
			}
			// The agent reads in order: once it has answered a health
			// check sent after the settings, it has taken them.
			id := fmt.Sprintf("hc-%d-%d", i, j)
			hc, err := protocol.New(protocol.TypeHealthCheck, id, "", &protocol.HealthCheck{})
			if err != nil {
				t.Fatal(err)
			}
			if err := conn.Send(hc); err != nil {
				t.Fatal(err)
			}
			if _, err := hub.WaitFrame(ctxTimeout(t, 5*time.Second), func(f hubtest.Frame) bool {
				return f.FromAgent && f.Env != nil && f.Env.ReplyTo == id
			}); err != nil {
				t.Fatalf("session %d: health check after settings: %v", i+1, err)
			}
		}
		time.Sleep(5 * time.Millisecond) // a session longer than HealthyIn
		conn.Drop()
	}
	// The last wait may be long; its log line comes at once.
	retryIn := regexp.MustCompile(`retry_in=(\S+)`)
	var waits []string
	for deadline := time.Now().Add(5 * time.Second); len(waits) < len(sessions) && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		waits = waits[:0]
		for _, m := range retryIn.FindAllStringSubmatch(logs.String(), -1) {
			waits = append(waits, m[1])
		}
	}
	return waits
}
