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
	"net"
	"net/url"
	"strings"
	"time"
)

// Config is the hub's configuration.
type Config struct {
	Listen      string // host:port of the REST API and link endpoint
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
}

// Default returns the defaults.
func Default() Config {
	return Config{
		Listen: "127.0.0.1:8080", DataDir: "./data/hub", LogLevel: slog.LevelInfo, LogFormat: "text",
		PingInterval: 10 * time.Second, PongWait: 30 * time.Second, Redelivery: 5 * time.Second,
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
	env("FERRY_DATA_DIR", &c.DataDir)
	env("FERRY_MONGO_URI", &c.MongoURI)
	env("FERRY_PUBLIC_URL", &c.PublicURL)
	env("FERRY_LOG_FORMAT", &c.LogFormat)
	c.AdminToken = getenv("FERRY_ADMIN_TOKEN")
	level := getenv("FERRY_LOG_LEVEL")
	pingEnv, pongEnv := getenv("FERRY_PING_INTERVAL"), getenv("FERRY_PONG_WAIT")
	for _, d := range []struct {
		v   string
		dst *time.Duration
	}{{pingEnv, &c.PingInterval}, {pongEnv, &c.PongWait}, {getenv("FERRY_REDELIVERY_INTERVAL"), &c.Redelivery}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil {
			return c, fmt.Errorf("config: bad duration %q: %w", d.v, err)
		}
		*d.dst = v
	}

	fs := flag.NewFlagSet("ferry-hub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Listen, "listen", c.Listen, "address of the REST API and agent link (FERRY_LISTEN)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the embedded store and generated admin token (FERRY_DATA_DIR)")
	fs.StringVar(&c.MongoURI, "mongo-uri", c.MongoURI, "MongoDB URI; empty uses the embedded SQLite store (FERRY_MONGO_URI)")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "URL agents use to reach the hub (FERRY_PUBLIC_URL)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json (FERRY_LOG_FORMAT)")
	fs.StringVar(&level, "log-level", level, "log level: debug, info, warn, error (FERRY_LOG_LEVEL)")
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
	if c.Redelivery <= 0 {
		errs = append(errs, errors.New("redelivery interval must be positive"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}
