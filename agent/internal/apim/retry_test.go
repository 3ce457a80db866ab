package apim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestRetryPolicy(t *testing.T) {
	refused := &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	reset := &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}}
	noHost := &url.Error{Op: "Post", URL: "http://x", Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}
	timeout := &url.Error{Op: "Post", URL: "http://x", Err: context.DeadlineExceeded}
	status := func(code int) *http.Response { return &http.Response{StatusCode: code, Header: http.Header{}} }

	tests := []struct {
		name       string
		idempotent bool
		resp       *http.Response
		err        error
		want       bool
	}{
		{name: "GET refused", idempotent: true, err: refused, want: true},
		{name: "GET reset", idempotent: true, err: reset, want: true},
		{name: "GET timeout", idempotent: true, err: timeout, want: true},
		{name: "GET 429", idempotent: true, resp: status(429), want: true},
		{name: "GET 502", idempotent: true, resp: status(502), want: true},
		{name: "GET 503", idempotent: true, resp: status(503), want: true},
		{name: "GET 504", idempotent: true, resp: status(504), want: true},
		{name: "GET 500", idempotent: true, resp: status(500), want: false},
		{name: "GET 404", idempotent: true, resp: status(404), want: false},
		{name: "POST refused", err: refused, want: true},
		{name: "POST unknown host", err: noHost, want: true},
		{name: "POST reset", err: reset, want: false},
		{name: "POST timeout", err: timeout, want: false},
		{name: "POST 503", resp: status(503), want: false},
		{name: "POST 429", resp: status(429), want: false},
	}
	c := &Client{cfg: Config{MaxRetries: 3}, log: discard()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := withCall(t.Context(), &call{op: "test", idempotent: tt.idempotent, attempts: 1})
			got, err := c.checkRetry(ctx, tt.resp, tt.err)
			if got != tt.want || err != nil {
				t.Errorf("checkRetry = %v, %v; want %v, nil", got, err, tt.want)
			}
		})
	}

	t.Run("no attempts left", func(t *testing.T) {
		ctx := withCall(t.Context(), &call{op: "test", idempotent: true, attempts: 4})
		if got, _ := c.checkRetry(ctx, status(503), nil); got {
			t.Errorf("retried a fourth time with MaxRetries 3")
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if got, _ := c.checkRetry(withCall(ctx, &call{idempotent: true, attempts: 1}), nil, refused); got {
			t.Errorf("retried after the caller gave up")
		}
	})
	t.Run("wrapped", func(t *testing.T) {
		if !neverSent(fmt.Errorf("apim x: %w: %w", ErrUnreachable, refused)) || !errors.Is(refused, syscall.ECONNREFUSED) {
			t.Errorf("neverSent does not see through wrapping")
		}
	})
}

func TestBackoff(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	withRetryAfter := func(code int, v string) *http.Response {
		return &http.Response{StatusCode: code, Header: http.Header{"Retry-After": {v}}}
	}
	tests := []struct {
		name     string
		attempt  int
		resp     *http.Response
		min, max time.Duration
	}{
		{name: "first", attempt: 0, min: 50 * time.Millisecond, max: 100 * time.Millisecond},
		{name: "third", attempt: 2, min: 200 * time.Millisecond, max: 400 * time.Millisecond},
		{name: "capped", attempt: 40, min: 2500 * time.Millisecond, max: 5 * time.Second},
		{name: "retry-after seconds", resp: withRetryAfter(503, "2"), min: 2 * time.Second, max: 2 * time.Second},
		{name: "retry-after capped", resp: withRetryAfter(429, "3600"), min: 5 * time.Second, max: 5 * time.Second},
		{name: "retry-after ignored on 502", resp: withRetryAfter(502, "3600"), min: 50 * time.Millisecond, max: 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 50 {
				got := backoff(100*time.Millisecond, 5*time.Second, tt.attempt, tt.resp)
				if got < tt.min || got > tt.max {
					t.Fatalf("backoff = %v, want within [%v, %v]", got, tt.min, tt.max)
				}
			}
		})
	}
	if d, ok := retryAfter(now.Add(30*time.Second).Format(http.TimeFormat), now); !ok || d != 30*time.Second {
		t.Errorf("retryAfter(HTTP date) = %v, %v", d, ok)
	}
	if _, ok := retryAfter("soon", now); ok {
		t.Errorf("retryAfter(soon) parsed")
	}
}

func TestParseError(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Error
	}{
		{
			name: "gravitee body",
			body: `{"httpStatus":400,"message":"Validation error","technicalCode":"invalid.import.definition","parameters":{"k":"v"},"details":[{"message":"must not be blank","location":"api.name"}]}`,
			want: Error{Op: "op", Status: 400, Message: "Validation error", TechnicalCode: "invalid.import.definition",
				Parameters: map[string]string{"k": "v"}, Details: []ErrorDetail{{Message: "must not be blank", Location: "api.name"}}},
		},
		{name: "plain text", body: "upstream connect error", want: Error{Op: "op", Status: 400, Message: "upstream connect error"}},
		{name: "empty", body: "", want: Error{Op: "op", Status: 400, Message: "Bad Request"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseError("op", 400, []byte(tt.body))
			if diff := cmp.Diff(tt.want, *got); diff != "" {
				t.Errorf("parseError (-want +got):\n%s", diff)
			}
		})
	}
}
