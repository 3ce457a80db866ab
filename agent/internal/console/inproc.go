package console

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
)

// maxCapture bounds a response read from the REST API in process.
const maxCapture = 8 << 20

// capture is an http.ResponseWriter that keeps the response in memory.
type capture struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newCapture() *capture { return &capture{header: http.Header{}} }

func (c *capture) Header() http.Header { return c.header }

func (c *capture) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *capture) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.body.Len()+len(b) > maxCapture {
		return 0, io.ErrShortWrite
	}
	return c.body.Write(b)
}

// forwardedHeaders are the request headers an in-process call carries over
// from the browser's request: its credentials and what the REST API's
// browser guards look at (Origin, Sec-Fetch-Site), so that they judge the
// browser's request and not the console's.
var forwardedHeaders = []string{"Cookie", "Authorization", "Origin", "Sec-Fetch-Site", "User-Agent", "X-Forwarded-For"}

// call sends a request to the REST API in process as the caller of r, and
// returns the captured response. body, when not nil, is sent as JSON.
func (h *Handler) call(ctx context.Context, r *http.Request, method, path string, body any) (*capture, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return nil, err
	}
	for _, k := range forwardedHeaders {
		if v := r.Header.Values(k); len(v) > 0 {
			req.Header[k] = v
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Host, req.RemoteAddr, req.TLS = r.Host, r.RemoteAddr, r.TLS
	c := newCapture()
	h.api.ServeHTTP(c, req)
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c, nil
}

// relay writes a captured response back to the browser as it is.
func relay(w http.ResponseWriter, c *capture) {
	for _, k := range []string{"Content-Type", "Retry-After", "WWW-Authenticate"} {
		if v := c.header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(c.status)
	_, _ = w.Write(c.body.Bytes())
}
