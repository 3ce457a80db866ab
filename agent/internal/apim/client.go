package apim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Operation names, used in errors, logs and the op metric label.
const (
	opList         = "list"
	opGet          = "get"
	opExport       = "export"
	opImportCreate = "import_create"
	opImportUpdate = "import_update"
)

// Client talks to one environment of one APIM. Create it with New.
type Client struct {
	cfg     Config
	envBase string // BaseURL + "/environments/" + EnvID
	http    *retryablehttp.Client
	log     *slog.Logger
	metrics *metrics
	index   crossIndex
	now     func() time.Time
	// apiBytes is the most bytes per API a page of the last listing
	// carried (0 before any): the next listing sizes its first page by it.
	apiBytes atomic.Int64
}

// New returns a Client for cfg. It fails if cfg is invalid or the metrics
// cannot be registered.
func New(cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	var hc *http.Client
	if cfg.HTTPClient != nil {
		copied := *cfg.HTTPClient
		hc = &copied
	} else {
		hc = &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			// A redirect would turn the POST import into a GET and drop
			// the credentials; surface it as an error instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	hc.Timeout = cfg.Timeout
	c := &Client{
		cfg:     cfg,
		envBase: cfg.BaseURL + "/environments/" + url.PathEscape(cfg.EnvID),
		log:     cfg.Logger.With(slog.String("component", "apim"), slog.String("env_id", cfg.EnvID)),
		metrics: m,
		now:     cfg.Now,
	}
	c.http = c.newRetryClient(hc)
	return c, nil
}

// EnvID returns the APIM environment id the client works on.
func (c *Client) EnvID() string { return c.cfg.EnvID }

// GetAPI returns the API with the given id. A missing API is an *Error for
// which IsNotFound is true.
func (c *Client) GetAPI(ctx context.Context, apiID string) (API, error) {
	if apiID == "" {
		return API{}, fmt.Errorf("apim %s: empty API id", opGet)
	}
	body, err := c.do(ctx, request{op: opGet, method: http.MethodGet, path: "/apis/" + url.PathEscape(apiID), want: http.StatusOK, idempotent: true})
	if err != nil {
		return API{}, err
	}
	return decodeAPI(opGet, body)
}

// Export returns the definition of an API (an ExportApiV4 document) without
// its members and groups, exactly as APIM sent it.
func (c *Client) Export(ctx context.Context, apiID string) ([]byte, error) {
	if apiID == "" {
		return nil, fmt.Errorf("apim %s: empty API id", opExport)
	}
	q := url.Values{"excludeAdditionalData": {"members", "groups"}}
	body, err := c.do(ctx, request{op: opExport, method: http.MethodGet, path: "/apis/" + url.PathEscape(apiID) + "/_export/definition", query: q, want: http.StatusOK, idempotent: true})
	if err != nil {
		return nil, err
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("apim %s: response is not JSON", opExport)
	}
	return body, nil
}

// ImportCreate creates an API from a definition (an ExportApiV4 document)
// and returns it. It is retried only if the request never reached APIM; an
// error wrapping ErrOutcomeUnknown means the API may exist now.
func (c *Client) ImportCreate(ctx context.Context, def []byte) (API, error) {
	if !json.Valid(def) {
		return API{}, fmt.Errorf("apim %s: definition is not JSON", opImportCreate)
	}
	body, err := c.do(ctx, request{op: opImportCreate, method: http.MethodPost, path: "/apis/_import/definition", body: def, want: http.StatusCreated})
	if err != nil {
		var e *Error
		switch {
		case errors.As(err, &e) && e.Status >= 500,
			errors.Is(err, ErrUnreachable) && !neverSent(err):
			// The API may exist now without the index knowing.
			c.index.invalidate(c.now())
			return API{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
		}
		return API{}, err
	}
	return c.noted(decodeAPI(opImportCreate, body))
}

// ImportUpdate replaces the definition of an existing API and returns it. A
// missing API is an *Error for which IsNotFound is true.
func (c *Client) ImportUpdate(ctx context.Context, apiID string, def []byte) (API, error) {
	if apiID == "" {
		return API{}, fmt.Errorf("apim %s: empty API id", opImportUpdate)
	}
	if !json.Valid(def) {
		return API{}, fmt.Errorf("apim %s: definition is not JSON", opImportUpdate)
	}
	body, err := c.do(ctx, request{op: opImportUpdate, method: http.MethodPut, path: "/apis/" + url.PathEscape(apiID) + "/_import/definition", body: def, want: http.StatusOK, idempotent: true})
	if err != nil {
		return API{}, err
	}
	return c.noted(decodeAPI(opImportUpdate, body))
}

// noted passes an import's answer through, noting the API in the crossId
// index.
func (c *Client) noted(a API, err error) (API, error) {
	if err == nil {
		c.index.note(a.CrossID, a.ID, c.now())
	}
	return a, err
}

func decodeAPI(op string, body []byte) (API, error) {
	var a API
	if err := json.Unmarshal(body, &a); err != nil {
		return API{}, fmt.Errorf("apim %s: decode API: %w", op, err)
	}
	return a, nil
}

// request describes one call to APIM.
type request struct {
	op     string
	method string
	path   string // below the environment, starting with "/"
	query  url.Values
	body   []byte
	want   int // the only status that counts as success
	// idempotent allows retries after the request may have reached APIM.
	idempotent bool
}

// do sends r, with retries as its policy allows, and returns the body of a
// response with status r.want.
func (c *Client) do(ctx context.Context, r request) (_ []byte, err error) {
	start := time.Now()
	cl := &call{op: r.op, idempotent: r.idempotent}
	code := "error"
	defer func() {
		elapsed := time.Since(start)
		c.metrics.duration.WithLabelValues(r.op, code).Observe(elapsed.Seconds())
		c.log.Debug("apim call", slog.String("op", r.op), slog.String("code", code),
			slog.Int("attempts", cl.attempts), slog.Duration("elapsed", elapsed), slog.Any("error", err))
	}()

	u := c.envBase + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body any
	if r.body != nil {
		body = r.body
	}
	req, err := retryablehttp.NewRequestWithContext(withCall(ctx, cl), r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("apim %s: build request: %w", r.op, err)
	}
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case c.cfg.Token != "":
		req.Header.Set("Authorization", "Bearer "+string(c.cfg.Token))
	case c.cfg.User != "":
		req.SetBasicAuth(c.cfg.User, string(c.cfg.Password))
	}

	resp, err := c.http.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, c.transportError(ctx, r.op, err)
	}
	defer resp.Body.Close()
	code = strconv.Itoa(resp.StatusCode)

	limit := c.cfg.MaxResponseBytes
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return nil, c.transportError(ctx, r.op, fmt.Errorf("read response: %w", err))
	}
	if len(b) > limit {
		return nil, fmt.Errorf("apim %s: %w: more than %d bytes", r.op, errTooLarge, limit)
	}
	if resp.StatusCode != r.want {
		return nil, parseError(r.op, resp.StatusCode, bytes.TrimSpace(b))
	}
	return b, nil
}

// transportError wraps an error that left no usable response. A cancelled
// or expired caller context is returned as such, not as ErrUnreachable.
func (c *Client) transportError(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("apim %s: %w", op, ctxErr)
	}
	return fmt.Errorf("apim %s: %w: %w", op, ErrUnreachable, err)
}
