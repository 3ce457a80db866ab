package webconsole

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
)

// maxCapture bounds a response read from the REST API in process.
const maxCapture = 8 << 20

// Response is a REST API response captured in memory by API.Call. It is the
// http.ResponseWriter the REST API handler writes to.
type Response struct {
	header http.Header
	// Status is the response's status code; Call sets 200 when the handler
	// wrote none.
	Status int
	// Body holds at most 8 MiB; a longer write fails with io.ErrShortWrite.
	Body bytes.Buffer
}

var _ http.ResponseWriter = (*Response)(nil)

// NewResponse returns an empty Response.
func NewResponse() *Response { return &Response{header: http.Header{}} }

// Header returns the response headers the handler set.
func (c *Response) Header() http.Header { return c.header }

// WriteHeader records the first status code written.
func (c *Response) WriteHeader(status int) {
	if c.Status == 0 {
		c.Status = status
	}
}

// Write appends b to Body, up to the capture limit.
func (c *Response) Write(b []byte) (int, error) {
	if c.Status == 0 {
		c.Status = http.StatusOK
	}
	if c.Body.Len()+len(b) > maxCapture {
		return 0, io.ErrShortWrite
	}
	return c.Body.Write(b)
}

// Relay writes the captured response back to the browser as it is: its
// status, body, and the Content-Type, Retry-After and WWW-Authenticate
// headers.
func (c *Response) Relay(w http.ResponseWriter) {
	for _, k := range []string{"Content-Type", "Retry-After", "WWW-Authenticate"} {
		if v := c.header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(c.Status)
	_, _ = w.Write(c.Body.Bytes())
}

// API calls a REST API handler in process, as the caller of a browser
// request.
type API struct {
	// Handler is the REST API. Required.
	Handler http.Handler
	// Forward names the request headers a call carries over from the
	// browser's request: its credentials, and whatever else the REST API
	// looks at (browser guards, logs). Nil forwards none.
	Forward []string
}

// Call sends a request to the REST API in process as the caller of r, and
// returns the captured response. body, when not nil, is sent as JSON. The
// call keeps r's Host, RemoteAddr and TLS state.
func (a API) Call(ctx context.Context, r *http.Request, method, path string, body any) (*Response, error) {
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
	for _, k := range a.Forward {
		if v := r.Header.Values(k); len(v) > 0 {
			req.Header[k] = v
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Host, req.RemoteAddr, req.TLS = r.Host, r.RemoteAddr, r.TLS
	c := NewResponse()
	a.Handler.ServeHTTP(c, req)
	if c.Status == 0 {
		c.Status = http.StatusOK
	}
	return c, nil
}
