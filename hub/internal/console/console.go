package console

import (
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"ferry.dev/shared/consoleassets"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/hub.js
var staticFS embed.FS

// Config configures a Handler. API and Logger are required.
type Config struct {
	// API is the hub's REST API handler. Event streams call it in process,
	// as the signed-in user.
	API    http.Handler
	Logger *slog.Logger
	// PollInterval is how often an event stream looks for changes.
	// Default 1 s.
	PollInterval time.Duration
	// MaxStream ends an event stream after this long (the browser
	// reconnects). Default 5 min.
	MaxStream time.Duration
}

// Handler serves the hub console. It is an http.Handler meant to be
// mounted at "/console/".
type Handler struct {
	api   http.Handler
	log   *slog.Logger
	poll  time.Duration
	maxSt time.Duration
	pages map[string]*template.Template
	mux   *http.ServeMux

	closeOnce sync.Once
	closed    chan struct{} // closed by Close: ends event streams
}

var _ http.Handler = (*Handler)(nil)

// pages are the console's pages: path, template name and title.
var pages = []struct{ pattern, name, title string }{
	{"GET /console/{$}", "map", "Organization map"},
	{"GET /console/signin", "signin", "Sign in"},
	{"GET /console/environments", "environments", "Environments"},
	{"GET /console/installations", "installations", "Installations"},
	{"GET /console/promotions", "promotions", "Promotions"},
	{"GET /console/promotions/{id}", "promotion", "Promotion"},
	{"GET /console/audit", "audit", "Audit trail"},
	{"GET /console/users", "users", "Users and roles"},
	{"GET /console/tokens", "tokens", "API tokens"},
}

// New builds a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.API == nil || cfg.Logger == nil {
		return nil, errors.New("console: API and Logger are required")
	}
	h := &Handler{api: cfg.API, log: cfg.Logger.With("component", "console"), poll: cfg.PollInterval, maxSt: cfg.MaxStream,
		pages: map[string]*template.Template{}, mux: http.NewServeMux(), closed: make(chan struct{})}
	if h.poll <= 0 {
		h.poll = time.Second
	}
	if h.maxSt <= 0 {
		h.maxSt = 5 * time.Minute
	}
	for _, p := range pages {
		t, err := template.New("layout.html").ParseFS(templateFS, "templates/layout.html", "templates/"+p.name+".html")
		if err != nil {
			return nil, err
		}
		h.pages[p.name] = t
		h.mux.HandleFunc(p.pattern, h.page(p.name, p.title))
	}
	h.mux.HandleFunc("GET /console/static/{file}", h.static)
	h.mux.HandleFunc("GET /console/events", h.events)
	h.mux.HandleFunc("/console/", h.notFound)
	return h, nil
}

// Close ends the open event streams; new ones end at once.
func (h *Handler) Close() { h.closeOnce.Do(func() { close(h.closed) }) }

// ServeHTTP sets the security headers, then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`<!doctype html><html lang="en"><meta charset="utf-8"><title>Not found · Ferry</title>` +
			`<link rel="stylesheet" href="/console/static/console.css"><main><h1>Page not found</h1>` +
			`<p>There is no console page at this address. <a href="/console/">Go to the organization map</a>.</p></main></html>`))
		return
	}
	h.problem(w, http.StatusNotFound, "not_found", "no such console path: "+r.URL.Path)
}

// pageData is what a page template sees.
type pageData struct {
	Page, Title string
	ID          string
}

func (h *Handler) page(name, title string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := h.pages[name].Execute(w, pageData{Page: name, Title: title, ID: r.PathValue("id")}); err != nil {
			h.log.Error("render page", "page", name, "err", err)
		}
	}
}

// static serves the shared stylesheet and scripts.
func (h *Handler) static(w http.ResponseWriter, r *http.Request) {
	name := path.Clean(r.PathValue("file"))
	var fsys fs.FS = consoleassets.Files
	if name == "hub.js" {
		fsys, name = staticFS, "static/hub.js"
	}
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		h.notFound(w, r)
		return
	}
	switch {
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

// problem writes an RFC 9457 problem document.
func (h *Handler) problem(w http.ResponseWriter, status int, code, detail string) {
	b, _ := json.Marshal(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "code": code, "detail": detail})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
