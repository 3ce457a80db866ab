package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ferry.dev/hub/internal/api"
	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/authz"
	"ferry.dev/hub/internal/config"
	"ferry.dev/hub/internal/console"
	"ferry.dev/hub/internal/fleet"
	"ferry.dev/hub/internal/ids"
	"ferry.dev/hub/internal/link"
	"ferry.dev/hub/internal/promotion"
	"ferry.dev/hub/internal/state"
	"ferry.dev/hub/internal/store"
)

// Version is the hub's build version.
var Version = "0.1.0"

// Server is a running hub.
type Server struct {
	cfg config.Config
	log *slog.Logger
	reg *prometheus.Registry
	// now is the clock of credential expiry; tests in this package set it
	// before Start.
	now func() time.Time

	store    state.Store
	link     *link.Endpoint
	sessions *sessions
	api      *api.API
	http     *http.Server
	ln       net.Listener
	// metrics serves /metrics on the operator listener (cfg.MetricsAddr);
	// nil when /metrics is on the main listener.
	metrics   *http.Server
	metricsLn net.Listener

	wg      sync.WaitGroup // background goroutines
	cancel  context.CancelFunc
	serveCh chan error
}

// New validates the configuration; Start does the work.
func New(cfg config.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		return nil, errors.New("server: logger is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, log: log, reg: prometheus.NewRegistry(), now: time.Now}, nil
}

// Addr is the listening address once started.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// MetricsAddr is the operator listener's address once started, or "" when
// /metrics is served on Addr.
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// Start opens the store, bootstraps the admin token, listens and serves.
func (s *Server) Start(ctx context.Context) error {
	s.reg.MustRegister(goCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	st, engine, err := s.openStore(ctx)
	if err != nil {
		return err
	}
	s.store = store.Instrument(st, engine, s.reg)
	if err := s.store.MarkAllOffline(ctx); err != nil {
		return s.abort(fmt.Errorf("mark installations offline: %w", err))
	}
	if err := s.bootstrapAdmin(ctx); err != nil {
		return s.abort(err)
	}

	authority, err := authz.Open(ctx, s.store, s.log, authz.Options{})
	if err != nil {
		return s.abort(err)
	}

	presence := presence{}
	fl, err := fleet.New(s.store, &presence, s.log, s.reg, fleet.Options{HubVersion: Version, SessionKeys: authority.PublicKeys(),
		Now: s.now, CredentialOverlap: s.cfg.CredentialOverlap})
	if err != nil {
		return s.abort(err)
	}
	index := newEnvIndex()
	sess := &sessions{fleet: fl, log: s.log, index: index, conns: newConnLog(s.store, s.log.With("component", "connections"))}
	s.sessions = sess
	ep, err := link.New(link.Config{PingInterval: s.cfg.PingInterval, PongWait: s.cfg.PongWait, HubVersion: Version, ReconnectRate: s.cfg.ReconnectRate,
		SlowLinkRate: float64(s.cfg.SlowLinkRate) * 1024}, sess, s.log, s.reg)
	if err != nil {
		return s.abort(err)
	}
	presence.reg = ep.Registry()
	index.reg = ep.Registry()
	s.link = ep
	trail, err := audit.New(s.store, s.log, s.reg, nil)
	if err != nil {
		return s.abort(err)
	}
	anchorer, err := s.anchorer(ctx)
	if err != nil {
		return s.abort(err)
	}
	promos, err := promotion.New(s.store, index, trail, s.log, s.reg, promotion.Options{Retry: s.cfg.Redelivery, MaxEnvBacklog: s.cfg.MaxEnvBacklog})
	if err != nil {
		return s.abort(err)
	}
	sess.promotions, sess.audit = promos, trail
	ops := &linkOps{svc: promos, auth: authority, users: s.store, audit: trail, log: s.log.With("component", "linkops")}
	ops.register(ep)

	metrics := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})
	mainMetrics := metrics
	if s.cfg.MetricsAddr != "" {
		mainMetrics = nil // only on the operator listener
	}
	a, err := api.New(api.Deps{
		Store: s.store, Fleet: fl, Link: ep, Promotions: promos, Audit: trail, Authority: authority,
		Metrics: mainMetrics, Registerer: s.reg,
		PublicURL: s.cfg.PublicURL, Logger: s.log,
		Limits: api.Limits{
			Token:  api.Limit(s.cfg.RateLimitToken),
			SignIn: api.Limit(s.cfg.RateLimitSignIn),
			Link:   api.Limit(s.cfg.RateLimitLink),
		},
		RequireClientCert: s.cfg.ClientCA != "",
	})
	if err != nil {
		return s.abort(err)
	}
	s.api = a
	con, err := console.New(console.Config{API: a.Handler(), Logger: s.log})
	if err != nil {
		return s.abort(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", con)
	mux.Handle("/", a.Handler())
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return s.abort(fmt.Errorf("listen on %s: %w (is another hub running?)", s.cfg.Listen, err))
	}
	tlsCfg, err := s.tlsConfig()
	if err != nil {
		ln.Close()
		return s.abort(err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s.ln = ln
	s.http = &http.Server{
		TLSConfig:         tlsCfg,
		Handler:           mux,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		// net/http allows 4 KiB more than this; the API refuses anything
		// over api.MaxHeaderBytes with a problem document.
		MaxHeaderBytes: api.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if s.cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", s.cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return s.abort(fmt.Errorf("listen for metrics on %s: %w", s.cfg.MetricsAddr, err))
		}
		mmux := http.NewServeMux()
		mmux.Handle("GET /metrics", metrics)
		s.metricsLn = mln
		s.metrics = &http.Server{
			Handler: mmux, ReadHeaderTimeout: s.cfg.ReadHeaderTimeout, ReadTimeout: 30 * time.Second,
			IdleTimeout: 120 * time.Second, MaxHeaderBytes: api.MaxHeaderBytes,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
	}
	s.http.RegisterOnShutdown(con.Close) // ends the console's event streams
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = promos.Run(bg)
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = anchorer.Run(bg)
	}()
	s.serveCh = make(chan error, 2)
	go func() { s.serveCh <- s.http.Serve(ln) }()
	if s.metrics != nil {
		go func() { s.serveCh <- s.metrics.Serve(s.metricsLn) }()
		s.log.Info("metrics on the operator listener only", "metrics_addr", s.metricsLn.Addr().String())
	}
	s.log.Info("hub started", "listen", ln.Addr().String(), "store", engine, "version", Version)
	return nil
}

// anchorSetting names the stored Ed25519 key that signs audit anchors.
const anchorSetting = "audit_anchor_key"

// anchorer loads (or makes, on first start) the audit anchor signing key and
// returns the Anchorer that signs each trail's head every AuditAnchorEvery.
// Each anchor is logged as well as stored: the log is the copy outside the
// store that a rewrite of the store cannot reach.
func (s *Server) anchorer(ctx context.Context) (*audit.Anchorer, error) {
	_, fresh, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate audit anchor key: %w", err)
	}
	st, err := s.store.InitSetting(ctx, state.Setting{Name: anchorSetting, Value: fresh, CreatedAt: time.Now().UTC()})
	if err != nil {
		return nil, fmt.Errorf("load audit anchor key: %w", err)
	}
	if len(st.Value) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("load audit anchor key: stored key has %d bytes, want %d", len(st.Value), ed25519.PrivateKeySize)
	}
	key := ed25519.PrivateKey(st.Value)
	pub := key.Public().(ed25519.PublicKey)
	s.log.Info("audit anchor key loaded; anchors verify with this public key", "kid", audit.KeyID(pub),
		"public_key", base64.RawURLEncoding.EncodeToString(pub), "every", s.cfg.AuditAnchorEvery)
	return audit.NewAnchorer(s.store, key, s.log, audit.AnchorOptions{Every: s.cfg.AuditAnchorEvery})
}

// tlsConfig is the listener's TLS configuration, nil without TLS.
//
// With a client CA the handshake asks for a client certificate and verifies
// one if given (VerifyClientCertIfGiven), and the API requires a verified
// one on the agents' enroll and link routes only: the one listener also
// serves the console and the REST API to browsers and scripts, which have
// no client certificate and must not be asked to choose one. An agent that
// enrolls with a certificate binds its installation to the certificate's key
// (the link endpoint refuses that installation's links with another key or
// none, with or without a client CA).
func (s *Server) tlsConfig() (*tls.Config, error) {
	if s.cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"http/1.1"}, // WebSocket upgrades need HTTP/1.1
	}
	if s.cfg.ClientCA != "" {
		pem, err := os.ReadFile(s.cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no PEM certificate in it", s.cfg.ClientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

func (s *Server) abort(err error) error {
	if s.store != nil {
		_ = s.store.Close()
	}
	return err
}

func (s *Server) openStore(ctx context.Context) (state.Store, string, error) {
	if s.cfg.MongoURI != "" {
		st, err := store.OpenMongo(ctx, s.cfg.MongoURI, store.MongoOptions{}, s.log)
		if err != nil {
			return nil, "", fmt.Errorf("open MongoDB store: %w", err)
		}
		return st, "mongodb", nil
	}
	st, err := store.OpenSQLite(ctx, s.cfg.DataDir, s.log)
	if err != nil {
		return nil, "", fmt.Errorf("open embedded store in %s: %w", s.cfg.DataDir, err)
	}
	return st, "sqlite", nil
}

// bootstrapAdmin makes sure the platform admin's token exists: the one from
// FERRY_ADMIN_TOKEN, or one generated on first start and written to
// <data-dir>/admin-token (0600). The platform admin belongs to no
// organization and no user, and holds every permission everywhere.
func (s *Server) bootstrapAdmin(ctx context.Context) error {
	tok := s.cfg.AdminToken
	file := filepath.Join(s.cfg.DataDir, "admin-token")
	generated := false
	if tok == "" {
		b, err := os.ReadFile(file)
		switch {
		case err == nil:
			tok = strings.TrimSpace(string(b))
		case errors.Is(err, os.ErrNotExist):
			sec, err := auth.New(auth.KindAPIToken)
			if err != nil {
				return fmt.Errorf("generate admin token: %w", err)
			}
			tok, generated = string(sec), true
			if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
				return fmt.Errorf("create data dir: %w", err)
			}
			if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
				return fmt.Errorf("write %s: %w", file, err)
			}
		default:
			return fmt.Errorf("read %s: %w", file, err)
		}
	}
	err := s.store.CreateAPIToken(ctx, state.APIToken{ID: ids.New("tok"), Hash: auth.Hash(tok), Name: "platform admin", CreatedAt: time.Now().UTC().Truncate(time.Millisecond)})
	if err != nil && !errors.Is(err, state.ErrConflict) {
		return fmt.Errorf("store admin token: %w", err)
	}
	if generated {
		fmt.Fprintf(os.Stderr, "\nFerry admin token (shown once; also in %s):\n\n    %s\n\n", file, tok)
	}
	return nil
}

// Run starts the hub and serves until ctx ends, then shuts down.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-s.serveCh:
		s.log.Error("HTTP server stopped unexpectedly", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}

// Shutdown stops accepting, closes agent links with a going-away code so they
// reconnect to a peer, waits for in-flight work and closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.log.Info("hub shutting down")
	var errs []error
	if err := s.link.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("close agent links: %w", err))
	}
	s.sessions.stop()
	if err := s.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop HTTP server: %w", err))
	}
	if s.metrics != nil {
		if err := s.metrics.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop metrics server: %w", err))
		}
	}
	s.cancel()
	s.wg.Wait()
	if err := s.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	return errors.Join(errs...)
}

// goCollector is the default Go collector plus go_gc_heap_live_bytes, the
// heap the last collection kept: unlike go_memstats_heap_inuse_bytes it
// does not follow the sawtooth between collections, so a slope in it is a
// leak.
func goCollector() prometheus.Collector {
	return collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)}))
}
