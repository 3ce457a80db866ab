package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"ferry.dev/agent/internal/config"
	"ferry.dev/agent/internal/enroll"
	"ferry.dev/agent/internal/link"
)

// Version is the agent's build version.
var Version = "0.1.0"

// Daemon is a running agent.
type Daemon struct {
	cfg config.Config
	log *slog.Logger
	reg *prometheus.Registry
	ln  net.Listener
}

// New validates the configuration; Run does the work.
func New(cfg config.Config, log *slog.Logger) (*Daemon, error) {
	if log == nil {
		return nil, errors.New("daemon: logger is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Daemon{cfg: cfg, log: log, reg: prometheus.NewRegistry()}, nil
}

// Run links the agent (first start), then serves until ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	host, _ := os.Hostname()
	ln, err := net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another agent running?)", d.cfg.Listen, err)
	}
	d.ln = ln
	cred, err := enroll.Credential(ctx, enroll.Request{
		HubURL: d.cfg.HubURL, DataDir: d.cfg.DataDir, LinkToken: d.cfg.LinkToken, AgentVersion: Version, Hostname: host,
	}, d.log.With("component", "enroll"))
	if err != nil {
		ln.Close()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	lc, err := link.New(link.Config{HubURL: d.cfg.HubURL, Credential: cred, AgentVersion: Version, Hostname: host, APIMURL: d.cfg.APIMURL}, d.log, d.reg)
	if err != nil {
		ln.Close()
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"ok","link":%q}`+"\n", lc.State().String())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}

	linkCtx, stopLink := context.WithCancel(context.Background())
	defer stopLink()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := lc.Run(linkCtx)
		if err != nil {
			return fmt.Errorf("link: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		d.log.Info("agent serving", "listen", ln.Addr().String(), "hub", d.cfg.HubURL, "version", Version)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		lc.Drain(sctx)
		stopLink()
		return srv.Shutdown(sctx)
	})
	err = g.Wait()
	d.log.Info("agent stopped")
	if ctx.Err() != nil && err == nil {
		return nil
	}
	return err
}
