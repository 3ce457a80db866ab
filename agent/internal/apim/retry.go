package apim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// call is the per-call state that retryablehttp's hooks read from the
// request context. It is used by one goroutine at a time: retryablehttp runs
// the hooks of a call sequentially.
type call struct {
	op string
	// idempotent allows retries after the request may have reached APIM.
	idempotent bool
	// attempts counts the attempts started so far.
	attempts int
}

type callKey struct{}

func withCall(ctx context.Context, c *call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	if c == nil {
		return &call{op: "unknown"}
	}
	return c
}

// newRetryClient builds the retryablehttp client that carries out the retry
// policy described in the package documentation.
func (c *Client) newRetryClient(hc *http.Client) *retryablehttp.Client {
	return &retryablehttp.Client{
		HTTPClient:   hc,
		Logger:       nil, // the hooks below log through slog
		RetryWaitMin: c.cfg.RetryWaitMin,
		RetryWaitMax: c.cfg.RetryWaitMax,
		RetryMax:     c.cfg.MaxRetries,
		RequestLogHook: func(_ retryablehttp.Logger, req *http.Request, retry int) {
			cl := callFrom(req.Context())
			cl.attempts = retry + 1
			if retry > 0 {
				c.metrics.retries.WithLabelValues(cl.op).Inc()
			}
		},
		CheckRetry:   c.checkRetry,
		Backoff:      backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
}

// checkRetry implements retryablehttp.CheckRetry. It never returns an
// error: the caller turns the last response or transport error into one.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, nil
	}
	cl := callFrom(ctx)
	retry := false
	if cl.idempotent {
		retry = retryableIdempotent(resp, err)
	} else {
		retry = err != nil && neverSent(err)
	}
	if !retry || cl.attempts > c.cfg.MaxRetries {
		return false, nil
	}
	attrs := []any{slog.String("op", cl.op), slog.Int("attempt", cl.attempts)}
	if err != nil {
		attrs = append(attrs, slog.Any("error", err))
	} else {
		attrs = append(attrs, slog.Int("status", resp.StatusCode))
	}
	c.log.Warn("apim request failed, retrying", attrs...)
	return true, nil
}

// retryableIdempotent reports whether a GET or PUT should be retried.
func retryableIdempotent(resp *http.Response, err error) bool {
	if err != nil {
		return !permanentTransportError(err)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// permanentTransportError reports transport errors that retrying cannot fix:
// certificate problems.
func permanentTransportError(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		invalidCert      x509.CertificateInvalidError
		hostname         x509.HostnameError
		verification     *tls.CertificateVerificationError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &invalidCert) ||
		errors.As(err, &hostname) || errors.As(err, &verification)
}

// neverSent reports whether err proves that the request never reached the
// server: the name did not resolve, or the connection was refused or could
// not be dialled. Only then may a non-idempotent request be retried.
func neverSent(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// backoff implements retryablehttp.Backoff: exponential from min, capped at
// max, with equal jitter; a Retry-After header on 429 or 503 is honoured up
// to max.
func backoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return clamp(d, min, max)
		}
	}
	d := max
	if attempt < 32 {
		if e := min << attempt; e > 0 && e < max {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryAfter parses a Retry-After value: seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now), true
	}
	return 0, false
}

func clamp(d, min, max time.Duration) time.Duration {
	if d < min {
		return min
	}
	if d > max {
		return max
	}
	return d
}
