package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ferry.dev/shared/protocol"
)

// Per-connection settings of the echo server, the hub link's defaults.
const (
	echoPingInterval = 10 * time.Second
	echoPongWait     = 30 * time.Second
	echoWriteWait    = 10 * time.Second
	echoSendQueue    = 64
	echoReadLimit    = 4 << 20
)

// echoServer is the baseline: the same per-connection shape as the hub's
// link (one reader, one writer owning every write, a bounded queue, pings)
// with nothing else.
type echoServer struct {
	upgrader  websocket.Upgrader
	connected prometheus.Gauge
	maxConns  int
	stop      chan struct{} // closed at shutdown: every writer closes its link

	mu    sync.Mutex // guards conns
	conns int
	wg    sync.WaitGroup // one per connection handler
}

func echoMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "loopback address to listen on")
	maxConns := fs.Int("max-conns", 20000, "connections accepted at once")
	maxTime := fs.Duration("max-time", 30*time.Minute, "stop after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopbackAddr(*listen); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *maxTime)
	defer cancel()

	reg := prometheus.NewRegistry()
	s := &echoServer{
		upgrader: websocket.Upgrader{
			ReadBufferSize:  1024,
			WriteBufferSize: 1024,
			WriteBufferPool: &sync.Pool{},
			Subprotocols:    []string{protocol.Subprotocol}, // select it as the hub does
			CheckOrigin:     func(r *http.Request) bool { return r.Header.Get("Origin") == "" },
		},
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ferry", Subsystem: "linkbench", Name: "connected",
			Help: "WebSocket connections open on the echo server.",
		}),
		maxConns: *maxConns,
		stop:     make(chan struct{}),
	}
	reg.MustRegister(s.connected, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("GET /api/v1/link", s)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"mode": "echo", "listen": ln.Addr().String(), "pid": os.Getpid()})

	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx) // stops accepting; hijacked links are ours to close
	close(s.stop)
	s.wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *echoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	full := s.conns >= s.maxConns
	if !full {
		s.conns++
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if full {
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.done()
		return
	}
	// Like the hub: serve the link from a goroutine of its own so that
	// net/http frees its per-request buffers when this handler returns.
	go func() {
		defer s.done()
		s.serve(ws)
	}()
}

func (s *echoServer) done() {
	s.mu.Lock()
	s.conns--
	s.mu.Unlock()
	s.wg.Done()
}

// serve reads until the link fails, queueing every frame for the writer.
func (s *echoServer) serve(ws *websocket.Conn) {
	ws.SetReadLimit(echoReadLimit)
	s.connected.Inc()
	defer s.connected.Dec()

	send := make(chan []byte, echoSendQueue)
	quit := make(chan struct{}) // closed when the reader ends
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeLoop(ws, send, quit)
	}()
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(echoPongWait)) })
	for {
		_ = ws.SetReadDeadline(time.Now().Add(echoPongWait))
		typ, frame, err := ws.ReadMessage()
		if err != nil || typ != websocket.TextMessage {
			break
		}
		select {
		case send <- frame:
		default: // a slow reader: drop it, as the hub would
		}
	}
	close(quit)
	<-writerDone
}

// writeLoop owns every write on ws.
func (s *echoServer) writeLoop(ws *websocket.Conn, send <-chan []byte, quit <-chan struct{}) {
	defer ws.Close()
	ping := time.NewTicker(echoPingInterval)
	defer ping.Stop()
	for {
		select {
		case b := <-send:
			_ = ws.SetWriteDeadline(time.Now().Add(echoWriteWait))
			if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
				return
			}
		case <-ping.C:
			if err := ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(echoWriteWait)); err != nil {
				return
			}
		case <-quit:
			return
		case <-s.stop:
			_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "echo server stopping"), time.Now().Add(time.Second))
			return
		}
	}
}
