// Package config is the only reader of the hub's flags and environment. It
// layers defaults < environment (FERRY_*) < flags, then validates the whole
// configuration before anything starts.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is the hub's configuration.
type Config struct {
	Listen string // host:port of the REST API and link endpoint
	// MetricsAddr is the host:port of an operator listener that serves
	// /metrics alone (FERRY_METRICS_ADDR); empty serves /metrics on
	// Listen, as before.
	MetricsAddr string
	DataDir     string // embedded store and generated admin token
	MongoURI    string // empty selects the embedded SQLite store
	PublicURL   string // how agents reach the hub; empty derives it from requests
	LogLevel    slog.Level
	LogFormat   string // text | json
	CheckConfig bool   // validate and exit

	// AdminToken is the bootstrap admin's API token (FERRY_ADMIN_TOKEN);
	// empty means generate one on first start.
	AdminToken string

	// Link timing; tests shorten them.
	PingInterval time.Duration
	PongWait     time.Duration
	// Redelivery is how often undelivered promotions are retried.
	Redelivery time.Duration
	// ReadHeaderTimeout is how long a connection may take to send a
	// request's headers before it is closed (slowloris protection).
	ReadHeaderTimeout time.Duration
	// AuditAnchorEvery is how often the hub signs the head of each
	// organization's audit trail (an anchor, logged and stored).
	AuditAnchorEvery time.Duration
	// MaxEnvBacklog is how many promotions may wait for delivery to one
	// environment's agent (offline or slow) before new promotions to it
	// are refused with 503 environment_backlog_full (FERRY_MAX_ENV_BACKLOG);
	// at least 1.
	MaxEnvBacklog int
	// ReconnectRate is the agent redials per second the hub asks for after
	// a restart (FERRY_RECONNECT_RATE): it advertises to its agents a
	// reconnect spread of (connected agents) / ReconnectRate seconds,
	// within 2-60 s (see link.Config.ReconnectRate).
	ReconnectRate float64
	// SlowLinkRate is the slowest agent link, in KiB/s, over which a
	// delivery still gets its answer in time: a call's deadline and a
	// write's grow by the bytes at this rate (see link.Config.SlowLinkRate).
	SlowLinkRate int
	// CredentialOverlap is how long an installation's old credential
	// still opens links after a rotation (FERRY_CREDENTIAL_OVERLAP); links
	// open by then stay open. From 1m to 720h.
	CredentialOverlap time.Duration

	// TLS: with TLSCert and TLSKey (PEM files) the listener serves HTTPS
	// and WSS only. ClientCA (a PEM bundle) additionally requires agents'
	// enroll and link requests to present a client certificate it signed.
	TLSCert, TLSKey, ClientCA string

	// Rate limits of the REST API (FERRY_RATE_LIMIT_*); a zero Rate is
	// unlimited.
	RateLimitToken  RateLimit // per API token or user session
	RateLimitSignIn RateLimit // per peer IP on sign-in and enroll
	RateLimitLink   RateLimit // per peer IP on the agents' link upgrade
}

// RateLimit is a token bucket: Rate requests per second, bursts of Burst.
type RateLimit struct {
	Rate  float64
	Burst int
}

// String formats the limit as Load reads it.
func (l RateLimit) String() string {
	if l.Rate <= 0 {
		return "off"
	}
	return strconv.FormatFloat(l.Rate, 'g', -1, 64) + ":" + strconv.Itoa(l.Burst)
}

// Set parses "RATE:BURST" (requests per second, bucket size), "RATE"
// (burst 2×RATE) or "off".
func (l *RateLimit) Set(s string) error {
	if s == "off" || s == "0" {
		*l = RateLimit{}
		return nil
	}
	rs, bs, hasBurst := strings.Cut(s, ":")
	r, err := strconv.ParseFloat(rs, 64)
	if err != nil || r <= 0 || r > 1e6 {
		return fmt.Errorf("rate limit %q: want RATE:BURST with RATE > 0 requests per second, or off", s)
	}
	b := int(math.Ceil(2 * r))
	if hasBurst {
		if b, err = strconv.Atoi(bs); err != nil || b < 1 || b > 1e6 {
			return fmt.Errorf("rate limit %q: burst must be a positive integer", s)
		}
	}
	*l = RateLimit{Rate: r, Burst: b}
	return nil
}

// Default returns the defaults.
func Default() Config {
	return Config{
		Listen: "127.0.0.1:8080", DataDir: "./data/hub", LogLevel: slog.LevelInfo, LogFormat: "text",
		PingInterval: 10 * time.Second, PongWait: 30 * time.Second, Redelivery: 5 * time.Second,
		ReadHeaderTimeout: 10 * time.Second,
		AuditAnchorEvery:  time.Hour,
		MaxEnvBacklog:     1000,
		ReconnectRate:     50, // link.DefaultReconnectRate
		SlowLinkRate:      32, // KiB/s, link.DefaultSlowLinkRate
		CredentialOverlap: time.Hour,
		RateLimitToken:    RateLimit{Rate: 20, Burst: 40},
		RateLimitSignIn:   RateLimit{Rate: 5, Burst: 10},
		RateLimitLink:     RateLimit{Rate: 10, Burst: 60},
	}
}

// Load builds the configuration from args (without the program name) and
// getenv, then validates it.
func Load(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	c := Default()
	env := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	env("FERRY_LISTEN", &c.Listen)
	env("FERRY_METRICS_ADDR", &c.MetricsAddr)
	env("FERRY_DATA_DIR", &c.DataDir)
	env("FERRY_MONGO_URI", &c.MongoURI)
	env("FERRY_PUBLIC_URL", &c.PublicURL)
	env("FERRY_LOG_FORMAT", &c.LogFormat)
	env("FERRY_TLS_CERT", &c.TLSCert)
	env("FERRY_TLS_KEY", &c.TLSKey)
	env("FERRY_CLIENT_CA", &c.ClientCA)
	c.AdminToken = getenv("FERRY_ADMIN_TOKEN")
	level := getenv("FERRY_LOG_LEVEL")
	pingEnv, pongEnv := getenv("FERRY_PING_INTERVAL"), getenv("FERRY_PONG_WAIT")
	for _, d := range []struct {
		v   string
		dst *time.Duration
	}{{pingEnv, &c.PingInterval}, {pongEnv, &c.PongWait}, {getenv("FERRY_REDELIVERY_INTERVAL"), &c.Redelivery},
		{getenv("FERRY_READ_HEADER_TIMEOUT"), &c.ReadHeaderTimeout}, {getenv("FERRY_AUDIT_ANCHOR_EVERY"), &c.AuditAnchorEvery},
		{getenv("FERRY_CREDENTIAL_OVERLAP"), &c.CredentialOverlap}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil {
			return c, fmt.Errorf("config: bad duration %q: %w", d.v, err)
		}
		*d.dst = v
	}

	for _, l := range []struct {
		name string
		dst  *RateLimit
	}{{"FERRY_RATE_LIMIT_TOKEN", &c.RateLimitToken}, {"FERRY_RATE_LIMIT_SIGNIN", &c.RateLimitSignIn}, {"FERRY_RATE_LIMIT_LINK", &c.RateLimitLink}} {
		if v := getenv(l.name); v != "" {
			if err := l.dst.Set(v); err != nil {
				return c, fmt.Errorf("config: %s: %w", l.name, err)
			}
		}
	}

	if v := getenv("FERRY_MAX_ENV_BACKLOG"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return c, fmt.Errorf("config: FERRY_MAX_ENV_BACKLOG %q: want a whole number", v)
		}
		c.MaxEnvBacklog = n
	}

	if v := getenv("FERRY_RECONNECT_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return c, fmt.Errorf("config: FERRY_RECONNECT_RATE %q: want redials per second", v)
		}
		c.ReconnectRate = r
	}

	if v := getenv("FERRY_SLOW_LINK_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return c, fmt.Errorf("config: FERRY_SLOW_LINK_RATE %q: want KiB per second", v)
		}
		c.SlowLinkRate = n
	}

	fs := flag.NewFlagSet("ferry-hub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Listen, "listen", c.Listen, "address of the REST API and agent link (FERRY_LISTEN)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "address of an operator listener serving /metrics only; empty serves /metrics on --listen (FERRY_METRICS_ADDR)")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", c.ReadHeaderTimeout, "time a client has to send a request's headers (FERRY_READ_HEADER_TIMEOUT)")
	fs.DurationVar(&c.AuditAnchorEvery, "audit-anchor-every", c.AuditAnchorEvery, "how often the head of each audit trail is signed and logged (FERRY_AUDIT_ANCHOR_EVERY)")
	fs.IntVar(&c.MaxEnvBacklog, "max-env-backlog", c.MaxEnvBacklog, "promotions that may wait for one environment's agent (offline or slow) before more to it are refused with 503 (FERRY_MAX_ENV_BACKLOG)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the embedded store and generated admin token (FERRY_DATA_DIR)")
	fs.StringVar(&c.MongoURI, "mongo-uri", c.MongoURI, "MongoDB URI; empty uses the embedded SQLite store (FERRY_MONGO_URI)")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "URL agents use to reach the hub (FERRY_PUBLIC_URL)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json (FERRY_LOG_FORMAT)")
	fs.StringVar(&level, "log-level", level, "log level: debug, info, warn, error (FERRY_LOG_LEVEL)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate (chain) of the hub; with --tls-key serves HTTPS and WSS (FERRY_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key file of the hub's certificate (FERRY_TLS_KEY)")
	fs.StringVar(&c.ClientCA, "client-ca", c.ClientCA, "PEM bundle of CAs; agents must present a client certificate signed by one to enroll and link (FERRY_CLIENT_CA)")
	fs.Var(&c.RateLimitToken, "rate-limit-token", "requests per second and burst per API token or session, RATE:BURST or off (FERRY_RATE_LIMIT_TOKEN)")
	fs.Var(&c.RateLimitSignIn, "rate-limit-signin", "requests per second and burst per peer IP on sign-in and enroll (FERRY_RATE_LIMIT_SIGNIN)")
	fs.Var(&c.RateLimitLink, "rate-limit-link", "link upgrades per second and burst per peer IP (FERRY_RATE_LIMIT_LINK)")
	fs.IntVar(&c.SlowLinkRate, "slow-link-rate", c.SlowLinkRate, "slowest agent link in KiB/s that still gets large deliveries in time: call and write deadlines grow by the bytes at this rate (FERRY_SLOW_LINK_RATE)")
	fs.Float64Var(&c.ReconnectRate, "reconnect-rate", c.ReconnectRate, "agent redials per second the hub asks for after a restart; agents spread their first redial over (connected agents)/rate seconds, 2-60s (FERRY_RECONNECT_RATE)")
	fs.DurationVar(&c.CredentialOverlap, "credential-overlap", c.CredentialOverlap, "how long an agent's old credential still opens links after a rotation; open links stay open (FERRY_CREDENTIAL_OVERLAP)")
	fs.BoolVar(&c.CheckConfig, "check-config", false, "validate the configuration and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("config: unexpected arguments %q", fs.Args())
	}
	if level != "" {
		if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
			return c, fmt.Errorf("config: log level %q: %w", level, err)
		}
	}
	return c, c.Validate()
}

// Validate checks the whole configuration.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: want host:port", c.Listen))
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("metrics-addr %q: want host:port", c.MetricsAddr))
		} else if c.MetricsAddr == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
			errs = append(errs, errors.New("metrics-addr must differ from listen"))
		}
	}
	if c.AuditAnchorEvery < time.Second || c.AuditAnchorEvery > 24*time.Hour {
		errs = append(errs, fmt.Errorf("audit-anchor-every %s: want from 1s to 24h", c.AuditAnchorEvery))
	}
	if c.ReadHeaderTimeout <= 0 || c.ReadHeaderTimeout > 5*time.Minute {
		errs = append(errs, fmt.Errorf("read-header-timeout %s: want more than 0 and at most 5m", c.ReadHeaderTimeout))
	}
	if c.MaxEnvBacklog < 1 || c.MaxEnvBacklog > 1_000_000 {
		errs = append(errs, fmt.Errorf("max-env-backlog %d: want from 1 to 1000000", c.MaxEnvBacklog))
	}
	if c.SlowLinkRate < 1 || c.SlowLinkRate > 1<<20 {
		errs = append(errs, fmt.Errorf("slow-link-rate %d: want 1-1048576 KiB per second", c.SlowLinkRate))
	}
	if !(c.ReconnectRate > 0 && c.ReconnectRate <= 100_000) {
		errs = append(errs, fmt.Errorf("reconnect-rate %g: want more than 0 and at most 100000 redials per second", c.ReconnectRate))
	}
	if c.CredentialOverlap < time.Minute || c.CredentialOverlap > 720*time.Hour {
		errs = append(errs, fmt.Errorf("credential-overlap %s: want from 1m to 720h", c.CredentialOverlap))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir is required"))
	}
	if c.MongoURI != "" && !strings.HasPrefix(c.MongoURI, "mongodb://") && !strings.HasPrefix(c.MongoURI, "mongodb+srv://") {
		errs = append(errs, errors.New("mongo-uri must start with mongodb:// or mongodb+srv://"))
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("public-url %q: want http(s)://host[:port]", c.PublicURL))
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < 24 {
		errs = append(errs, errors.New("FERRY_ADMIN_TOKEN must be at least 24 characters"))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log-format %q: want text or json", c.LogFormat))
	}
	if c.PingInterval <= 0 || c.PongWait <= c.PingInterval {
		errs = append(errs, errors.New("pong wait must exceed the ping interval"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls-cert and tls-key go together"))
	}
	if c.ClientCA != "" && c.TLSCert == "" {
		errs = append(errs, errors.New("client-ca needs tls-cert and tls-key"))
	}
	if c.Redelivery <= 0 {
		errs = append(errs, errors.New("redelivery interval must be positive"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}
