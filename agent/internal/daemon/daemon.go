package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"ferry.dev/agent/internal/apim"
	"ferry.dev/agent/internal/authn"
	"ferry.dev/agent/internal/config"
	"ferry.dev/agent/internal/console"
	"ferry.dev/agent/internal/enroll"
	"ferry.dev/agent/internal/link"
	"ferry.dev/agent/internal/task"
	"ferry.dev/agent/internal/taskstore"
	"ferry.dev/agent/internal/web"
	"ferry.dev/shared/protocol"
)

// Version is the agent's build version.
var Version = "0.1.0"

// shutdownTimeout bounds the drain of the link and of HTTP requests.
const shutdownTimeout = 10 * time.Second

// Daemon is a running agent.
type Daemon struct {
	cfg  config.Config
	log  *slog.Logger
	reg  *prometheus.Registry
	apim *apim.Client
}

// New validates the configuration; Run does the work.
func New(cfg config.Config, log *slog.Logger) (*Daemon, error) {
	if log == nil {
		return nil, errors.New("daemon: logger is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	// Built here so that an APIM setting the config package cannot judge
	// (e.g. a user without a password) fails before anything starts.
	ac, err := apim.New(apim.Config{
		BaseURL: cfg.APIMURL, EnvID: cfg.APIMEnv, User: cfg.APIMUser, Password: apim.Secret(cfg.APIMPassword),
		Token: apim.Secret(cfg.APIMToken), Logger: log, Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	return &Daemon{cfg: cfg, log: log, reg: reg, apim: ac}, nil
}

// Run links the agent (first start), then serves until ctx ends. Shutdown
// order: drain the link (in-flight hub commands finish), stop HTTP
// (in-flight REST requests finish), stop the task runner, close the store.
func (d *Daemon) Run(ctx context.Context) error {
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	host, _ := os.Hostname()
	ln, err := net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another agent running?)", d.cfg.Listen, err)
	}
	defer ln.Close()
	hubTLS, err := d.cfg.HubTLS()
	if err != nil {
		return err
	}
	var hubClient *http.Client // nil: enroll's default
	if hubTLS != nil {
		hubClient = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: hubTLS, Proxy: http.ProxyFromEnvironment}}
	}
	cred, err := enroll.Credential(ctx, enroll.Request{
		HubURL: d.cfg.HubURL, DataDir: d.cfg.DataDir, LinkToken: d.cfg.LinkToken, AgentVersion: Version, Hostname: host,
		HTTPClient: hubClient,
	}, d.log.With("component", "enroll"))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	store, err := taskstore.Open(ctx, filepath.Join(d.cfg.DataDir, taskstore.FileName))
	if err != nil {
		return err
	}
	defer store.Close()
	// Sessions verify with the keys of the last hello, persisted, until the
	// link brings new ones: the REST API works with the hub down.
	auth, err := authn.New(authn.Config{Store: store, Logger: d.log})
	if err != nil {
		return err
	}
	if err := auth.Load(ctx); err != nil {
		return err
	}
	// A credential the hub rotates to is on disk before the hub hears the
	// agent has it: a crash right after leaves the agent with it.
	keep := func(_ context.Context, c string) error { return enroll.Save(d.cfg.DataDir, c) }
	lc, err := link.New(link.Config{HubURL: d.cfg.HubURL, Credential: cred, AgentVersion: Version, Hostname: host, APIMURL: d.cfg.APIMURL, TLS: hubTLS,
		KeepCredential: keep}, d.log, d.reg)
	if err != nil {
		return err
	}
	runner, err := task.New(task.Config{Store: store, APIM: d.apim, Hub: lc, Logger: d.log, Registerer: d.reg})
	if err != nil {
		return err
	}
	lc.Handle(protocol.OpDeliverPromotion, runner.HandleDeliver)
	lc.Handle(protocol.OpCancelPromotion, runner.HandleCancel)
	lc.Handle(protocol.OpPromotionUpdate, runner.HandleUpdate)
	lc.Handle(protocol.OpExportAPI, runner.HandleExport)
	lc.OnConnect(runner.Connected)
	lc.OnConnect(auth.Connected) // the only source of session keys

	api, err := web.New(web.Config{
		Service:      runner,
		Status:       func() web.Status { return d.status(lc, auth) },
		Auth:         auth,
		Logger:       d.log,
		AllowedHosts: allowedHosts(ln.Addr()),
		Cookie:       cookieName(ln.Addr()),
	})
	if err != nil {
		return err
	}
	con, err := console.New(console.Config{API: api, HubURL: d.cfg.HubURL, Exporter: d.apim, Logger: d.log, AllowedHosts: allowedHosts(ln.Addr()), Cookie: cookieName(ln.Addr())})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", api)
	mux.Handle("/console/", con)
	mux.Handle("GET /{$}", con) // redirects to the console
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"ok","link":%q}`+"\n", lc.State().String())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 8 << 10}
	srv.RegisterOnShutdown(con.Close) // ends the console's event streams

	// The link and the runner outlive ctx so that they can drain in order.
	linkCtx, stopLink := context.WithCancel(context.Background())
	defer stopLink()
	runCtx, stopRunner := context.WithCancel(context.Background())
	defer stopRunner()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := lc.Run(linkCtx); err != nil {
			return fmt.Errorf("link: %w", err)
		}
		return nil
	})
	g.Go(func() error { return runner.Run(runCtx) })
	g.Go(func() error {
		d.log.Info("agent serving", "listen", ln.Addr().String(), "hub", d.cfg.HubURL, "apim", d.cfg.APIMURL, "version", Version)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		lc.Drain(sctx)
		stopLink()
		err := srv.Shutdown(sctx)
		stopRunner()
		return err
	})
	err = g.Wait()
	d.log.Info("agent stopped")
	if ctx.Err() != nil && err == nil {
		return nil
	}
	return err
}

// status reports the link and the installation's identity for the REST API:
// from the last hello of this run, or else from the one persisted by an
// earlier run.
func (d *Daemon) status(lc *link.Client, auth *authn.Verifier) web.Status {
	st := lc.State()
	s := web.Status{Link: st.String(), HubReachable: st == link.StateConnected, HubURL: d.cfg.HubURL,
		AgentVersion: Version, APIMURL: d.cfg.APIMURL, Environments: []web.EnvironmentRef{}}
	if h := lc.Hello(); h != nil {
		s.InstallationID, s.OrgID, s.OrgName, s.HubVersion = h.InstallationID, h.OrgID, h.OrgName, h.HubVersion
		for _, e := range h.Environments {
			s.Environments = append(s.Environments, web.EnvironmentRef{ID: e.ID, Name: e.Name})
		}
	} else if id, ok := auth.Identity(); ok {
		s.InstallationID, s.OrgID, s.OrgName = id.InstallationID, id.OrgID, id.OrgName
		for _, e := range id.Environments {
			s.Environments = append(s.Environments, web.EnvironmentRef{ID: e.ID, Name: e.Name})
		}
	}
	return s
}

// allowedHosts returns the Host names the REST API accepts: the loopback
// names when it listens on loopback (a defence against DNS rebinding, which
// would otherwise let another site's page use the session cookie), and any
// otherwise.
func allowedHosts(a net.Addr) []string {
	ta, ok := a.(*net.TCPAddr)
	if !ok || !ta.IP.IsLoopback() {
		return nil
	}
	return []string{"localhost", "127.0.0.1", "::1", ta.IP.String()}
}

// cookieName is the session cookie of the agent listening on addr. Browsers
// share cookies between ports of one host, so two agents on one machine (Dev
// and Prod in `make run`) need different names or one sign-in replaces the
// other.
func cookieName(addr net.Addr) string {
	if ta, ok := addr.(*net.TCPAddr); ok {
		return fmt.Sprintf("%s_%d", web.CookieName, ta.Port)
	}
	return web.CookieName
}
