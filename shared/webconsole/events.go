package webconsole

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxWatch bounds the paths one event stream watches.
const maxWatch = 6

// keepAlive is how often an idle stream sends a comment, so that proxies
// and browsers keep it open.
const keepAlive = 15 * time.Second

// Defaults for Events.
const (
	DefaultPollInterval = time.Second
	DefaultMaxStream    = 5 * time.Minute
)

// update is the data of an "update" event: the REST API's answer to GET
// path, sent when it differs from the previous one.
type update struct {
	Path   string          `json:"path"`
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

// Events serves GET /console/events?watch=/api/v1/…: a server-sent-events
// stream that reads each watched path from the REST API, in process and as
// the caller, every PollInterval, and sends it as an "update" event when it
// changed (and once at the start). When the REST API answers 401 the stream
// sends an "auth" event with the problem and ends. It ends after MaxStream
// and when Done is closed; the browser reconnects.
type Events struct {
	// API is the REST API the stream reads. Required.
	API API
	// PollInterval is how often a stream looks for changes; zero means
	// DefaultPollInterval.
	PollInterval time.Duration
	// MaxStream ends a stream after this long; zero means DefaultMaxStream.
	MaxStream time.Duration
	// Done, when closed, ends every open stream, and new ones after their
	// first event. Nil never closes.
	Done <-chan struct{}
}

var _ http.Handler = (*Events)(nil)

// ServeHTTP serves one event stream.
func (e *Events) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	paths, err := watchPaths(r.URL.Query()["watch"])
	if err != nil {
		Problem(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	poll, maxStream := e.PollInterval, e.MaxStream
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	if maxStream <= 0 {
		maxStream = DefaultMaxStream
	}
	rc := http.NewResponseController(w)
	// The first read happens before the headers go out, so that a missing
	// or expired session is a plain 401 the page can act on.
	first, err := e.API.Call(r.Context(), r, http.MethodGet, paths[0], nil)
	if err != nil {
		return
	}
	if first.Status == http.StatusUnauthorized {
		first.Relay(w)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var buf bytes.Buffer
	buf.WriteString("retry: 2000\n\n")
	last := make(map[string][32]byte, len(paths))
	tick := time.NewTicker(poll)
	defer tick.Stop()
	end := time.NewTimer(maxStream)
	defer end.Stop()
	idle := time.Now()
	for {
		for i, p := range paths {
			c := first
			if i > 0 || c == nil {
				if c, err = e.API.Call(r.Context(), r, http.MethodGet, p, nil); err != nil {
					return
				}
			}
			if c.Status == http.StatusUnauthorized {
				writeEvent(&buf, "auth", update{Path: p, Status: c.Status, Body: jsonBody(c.Body.Bytes())})
				_, _ = w.Write(buf.Bytes())
				_ = rc.Flush()
				return
			}
			sum := sha256.Sum256(append([]byte(fmt.Sprint(c.Status)), c.Body.Bytes()...))
			if old, ok := last[p]; ok && old == sum {
				continue
			}
			last[p] = sum
			writeEvent(&buf, "update", update{Path: p, Status: c.Status, Body: jsonBody(c.Body.Bytes())})
		}
		first = nil
		if buf.Len() == 0 && time.Since(idle) >= keepAlive {
			buf.WriteString(": keep-alive\n\n")
		}
		if buf.Len() > 0 {
			if _, err := w.Write(buf.Bytes()); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			buf.Reset()
			idle = time.Now()
		}
		select {
		case <-r.Context().Done():
			return
		case <-e.Done:
			return
		case <-end.C:
			return
		case <-tick.C:
		}
	}
}

func writeEvent(buf *bytes.Buffer, event string, u update) {
	b, _ := json.Marshal(u)
	fmt.Fprintf(buf, "event: %s\ndata: %s\n\n", event, b)
}

// jsonBody returns b when it is JSON, or b as a JSON string.
func jsonBody(b []byte) json.RawMessage {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// watchPaths validates the watched paths: 1 to maxWatch REST API paths.
func watchPaths(in []string) ([]string, error) {
	if len(in) == 0 || len(in) > maxWatch {
		return nil, fmt.Errorf("watch 1 to %d paths of the REST API, e.g. ?watch=/api/v1/tasks", maxWatch)
	}
	out := make([]string, 0, len(in))
	for _, p := range in {
		u, err := url.Parse(p)
		if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/api/v1/") || strings.Contains(u.Path, "..") || len(p) > 512 {
			return nil, fmt.Errorf("watch %q: only paths under /api/v1/ may be watched", p)
		}
		out = append(out, u.RequestURI())
	}
	return out, nil
}
