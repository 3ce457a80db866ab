package apim

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultEnvID        = "DEFAULT"
	DefaultTimeout      = 30 * time.Second
	DefaultMaxRetries   = 3
	DefaultRetryWaitMin = 250 * time.Millisecond
	DefaultRetryWaitMax = 5 * time.Second
	DefaultPageSize     = 100
	// DefaultMaxResponseBytes caps a response body. Exports carry base64
	// pictures and media, so it is generous.
	DefaultMaxResponseBytes = 32 << 20
	// DefaultCrossIDIndexTTL is how long a listing of the environment
	// answers "no API has this crossId" (see FindByCrossID).
	DefaultCrossIDIndexTTL = 10 * time.Second
)

// Secret is a credential. It prints and logs as "REDACTED"; use string(s) to
// read the value.
type Secret string

const redacted = "REDACTED"

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer, for %#v.
func (s Secret) GoString() string { return `apim.Secret("` + redacted + `")` }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler, so that a Config written as
// JSON does not leak the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Config configures a Client. Only BaseURL is required.
type Config struct {
	// BaseURL is the Management API v2 root, for example
	// http://127.0.0.1:8083/management/v2 or
	// https://apim.example.com/management/v2/organizations/DEFAULT. It must
	// not carry credentials.
	BaseURL string
	// EnvID is the APIM environment id. Empty means DefaultEnvID.
	EnvID string
	// User and Password authenticate with HTTP Basic auth. Set both, or
	// neither.
	User     string
	Password Secret
	// Token authenticates with a bearer token (a Gravitee personal access
	// token). It excludes User and Password.
	Token Secret
	// Timeout bounds each HTTP attempt. Zero means DefaultTimeout. The
	// context passed to each method bounds the whole call, retries included.
	Timeout time.Duration
	// MaxRetries is how many times a retryable request is retried. Zero
	// means DefaultMaxRetries; a negative value disables retries.
	MaxRetries int
	// RetryWaitMin and RetryWaitMax bound the backoff between attempts. Zero
	// means DefaultRetryWaitMin and DefaultRetryWaitMax.
	RetryWaitMin, RetryWaitMax time.Duration
	// PageSize is the most APIs ListAPIs asks for in one page (perPage).
	// Zero means DefaultPageSize. Pages of large APIs are smaller: see
	// ListAPIs.
	PageSize int
	// MaxResponseBytes caps the body of any response; a larger one is an
	// error. Zero means DefaultMaxResponseBytes. ListAPIs sizes its pages
	// to about a quarter of it.
	MaxResponseBytes int
	// CrossIDIndexTTL is how long FindByCrossID trusts the absence of a
	// crossId in its last full listing. Zero means DefaultCrossIDIndexTTL;
	// a negative value makes every lookup list the environment.
	CrossIDIndexTTL time.Duration
	// Now is the clock of the crossId index. Nil means time.Now.
	Now func() time.Time
	// Logger receives the client's logs, with component=apim. Nil discards
	// them.
	Logger *slog.Logger
	// Registerer receives the client's metrics. Nil means a private registry
	// that nobody scrapes.
	Registerer prometheus.Registerer
	// HTTPClient sends the requests. Nil means a client of its own that does
	// not follow redirects. The client is copied, not modified; its Timeout
	// is used when Timeout is zero.
	HTTPClient *http.Client
}

// LogValue implements slog.LogValuer. It leaves the credentials out.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", c.BaseURL),
		slog.String("env_id", c.EnvID),
		slog.String("user", c.User),
		slog.Bool("token", c.Token != ""),
		slog.Duration("timeout", c.Timeout),
		slog.Int("max_retries", c.MaxRetries),
	)
}

// withDefaults validates c and returns it with defaults filled in and
// BaseURL normalised.
func (c Config) withDefaults() (Config, error) {
	if c.BaseURL == "" {
		return c, errors.New("apim config: BaseURL is required")
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return c, fmt.Errorf("apim config: BaseURL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return c, fmt.Errorf("apim config: BaseURL %q: scheme must be http or https", c.BaseURL)
	}
	if u.Host == "" {
		return c, fmt.Errorf("apim config: BaseURL %q has no host", c.BaseURL)
	}
	if u.User != nil {
		return c, errors.New("apim config: BaseURL must not contain credentials; use User and Password or Token")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return c, fmt.Errorf("apim config: BaseURL %q must not have a query or fragment", c.BaseURL)
	}
	c.BaseURL = strings.TrimRight(u.String(), "/")
	if (c.User == "") != (c.Password == "") {
		return c, errors.New("apim config: set both User and Password, or neither")
	}
	if c.Token != "" && c.User != "" {
		return c, errors.New("apim config: set either User and Password or Token, not both")
	}
	if c.EnvID == "" {
		c.EnvID = DefaultEnvID
	}
	if c.Timeout < 0 || c.RetryWaitMin < 0 || c.RetryWaitMax < 0 || c.PageSize < 0 || c.MaxResponseBytes < 0 {
		return c, errors.New("apim config: durations, PageSize and MaxResponseBytes must not be negative")
	}
	if c.Timeout == 0 && c.HTTPClient != nil {
		c.Timeout = c.HTTPClient.Timeout
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = DefaultMaxRetries
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.RetryWaitMin == 0 {
		c.RetryWaitMin = DefaultRetryWaitMin
	}
	if c.RetryWaitMax == 0 {
		c.RetryWaitMax = DefaultRetryWaitMax
	}
	if c.RetryWaitMax < c.RetryWaitMin {
		c.RetryWaitMax = c.RetryWaitMin
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if c.CrossIDIndexTTL == 0 {
		c.CrossIDIndexTTL = DefaultCrossIDIndexTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return c, nil
}
