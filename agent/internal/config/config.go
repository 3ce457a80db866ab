// Package config is the only reader of the agent's flags and environment. It
// layers defaults < environment (FERRY_*) < flags and validates the result
// before anything starts. Secrets (APIM password and token, link token) come
// from the environment or a file, never from a flag's default.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
)

// Config is the agent's configuration.
type Config struct {
	HubURL       string // http(s)://host:port of the hub
	LinkToken    string // one-time link token; first start only
	APIMURL      string // APIM Management API v2 base URL
	APIMEnv      string // APIM environment id
	APIMUser     string
	APIMPassword string
	APIMToken    string
	Listen       string // console, REST API, /healthz, /metrics
	DataDir      string
	LogLevel     slog.Level
	LogFormat    string
	CheckConfig  bool

	// HubCA is a PEM bundle of CAs to trust for the hub's certificate
	// (instead of the system roots); empty uses the system roots.
	HubCA string
	// ClientCert and ClientKey (PEM files) are the agent's client
	// certificate, presented to the hub on enroll and on the link.
	ClientCert, ClientKey string
}

// Load builds the configuration from args and getenv, then validates it.
func Load(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	c := Config{APIMEnv: "DEFAULT", Listen: "127.0.0.1:8090", DataDir: "./data/agent", LogFormat: "text"}
	env := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	env("FERRY_HUB", &c.HubURL)
	env("FERRY_LINK_TOKEN", &c.LinkToken)
	env("FERRY_APIM_URL", &c.APIMURL)
	env("FERRY_APIM_ENV", &c.APIMEnv)
	env("FERRY_APIM_USER", &c.APIMUser)
	env("FERRY_APIM_PASSWORD", &c.APIMPassword)
	env("FERRY_APIM_TOKEN", &c.APIMToken)
	env("FERRY_LISTEN", &c.Listen)
	env("FERRY_DATA_DIR", &c.DataDir)
	env("FERRY_LOG_FORMAT", &c.LogFormat)
	env("FERRY_HUB_CA", &c.HubCA)
	env("FERRY_CLIENT_CERT", &c.ClientCert)
	env("FERRY_CLIENT_KEY", &c.ClientKey)
	level := getenv("FERRY_LOG_LEVEL")
	tokenFile := getenv("FERRY_LINK_TOKEN_FILE")

	fs := flag.NewFlagSet("ferry-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.HubURL, "hub", c.HubURL, "hub base URL, e.g. http://127.0.0.1:8080 (FERRY_HUB)")
	fs.StringVar(&c.LinkToken, "link-token", c.LinkToken, "one-time link token from the hub; first start only (FERRY_LINK_TOKEN)")
	fs.StringVar(&tokenFile, "link-token-file", tokenFile, "file holding the link token (FERRY_LINK_TOKEN_FILE)")
	fs.StringVar(&c.APIMURL, "apim-url", c.APIMURL, "APIM Management API v2 base URL, e.g. http://127.0.0.1:8083/management/v2 (FERRY_APIM_URL)")
	fs.StringVar(&c.APIMEnv, "apim-env", c.APIMEnv, "APIM environment id (FERRY_APIM_ENV)")
	fs.StringVar(&c.APIMUser, "apim-user", c.APIMUser, "APIM user for Basic auth; password from FERRY_APIM_PASSWORD (FERRY_APIM_USER)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "address of the console, REST API and metrics (FERRY_LISTEN)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the agent's state and credential (FERRY_DATA_DIR)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json (FERRY_LOG_FORMAT)")
	fs.StringVar(&level, "log-level", level, "log level: debug, info, warn, error (FERRY_LOG_LEVEL)")
	fs.StringVar(&c.HubCA, "hub-ca", c.HubCA, "PEM bundle of CAs to trust for the hub's certificate (FERRY_HUB_CA)")
	fs.StringVar(&c.ClientCert, "client-cert", c.ClientCert, "PEM client certificate presented to the hub (FERRY_CLIENT_CERT)")
	fs.StringVar(&c.ClientKey, "client-key", c.ClientKey, "PEM private key file of the client certificate (FERRY_CLIENT_KEY)")
	fs.BoolVar(&c.CheckConfig, "check-config", false, "validate the configuration and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("config: unexpected arguments %q", fs.Args())
	}
	if c.LinkToken == "" && tokenFile != "" {
		// A missing file is fine once the agent is linked (e.g. a Secret
		// removed after first start); enrollment says what to do otherwise.
		b, err := os.ReadFile(tokenFile)
		switch {
		case err == nil:
			c.LinkToken = strings.TrimSpace(string(b))
		case !errors.Is(err, os.ErrNotExist):
			return c, fmt.Errorf("config: read link token file: %w", err)
		}
	}
	if level != "" {
		if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
			return c, fmt.Errorf("config: log level %q: %w", level, err)
		}
	}
	return c, c.Validate()
}

// HubTLS is the TLS configuration for talking to the hub (enroll and
// link), or nil when neither a hub CA nor a client certificate is set.
func (c Config) HubTLS() (*tls.Config, error) {
	if c.HubCA == "" && c.ClientCert == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.HubCA != "" {
		b, err := os.ReadFile(c.HubCA)
		if err != nil {
			return nil, fmt.Errorf("config: read hub CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("config: hub CA %s: no PEM certificate in it", c.HubCA)
		}
		tc.RootCAs = pool
	}
	if c.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("config: load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Validate checks the whole configuration.
func (c Config) Validate() error {
	var errs []error
	for _, u := range []struct{ name, v string }{{"hub", c.HubURL}, {"apim-url", c.APIMURL}} {
		p, err := url.Parse(u.v)
		if u.v == "" || err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s %q: want http(s)://host[:port][/path]", u.name, u.v))
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: want host:port", c.Listen))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir is required"))
	}
	if c.APIMEnv == "" {
		errs = append(errs, errors.New("apim-env is required"))
	}
	if c.APIMUser != "" && c.APIMToken != "" {
		errs = append(errs, errors.New("set either apim-user/FERRY_APIM_PASSWORD or FERRY_APIM_TOKEN, not both"))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log-format %q: want text or json", c.LogFormat))
	}
	if (c.ClientCert == "") != (c.ClientKey == "") {
		errs = append(errs, errors.New("client-cert and client-key go together"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}
