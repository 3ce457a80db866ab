package console

import (
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/shared/webconsole"
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
	log    *slog.Logger
	events *webconsole.Events
	pages  map[string]*template.Template
	mux    *http.ServeMux

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
	h := &Handler{log: cfg.Logger.With("component", "console"), pages: map[string]*template.Template{}, mux: http.NewServeMux(), closed: make(chan struct{})}
	// Event streams read the REST API with the browser's credentials and
	// what logs show.
	h.events = &webconsole.Events{
		API:          webconsole.API{Handler: cfg.API, Forward: []string{"Authorization", "User-Agent", "X-Forwarded-For"}},
		PollInterval: cfg.PollInterval, MaxStream: cfg.MaxStream, Done: h.closed,
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
	h.mux.Handle("GET /console/events", h.events)
	h.mux.HandleFunc("/console/", h.notFound)
	return h, nil
}

// Close ends the open event streams; new ones end at once.
func (h *Handler) Close() { h.closeOnce.Do(func() { close(h.closed) }) }

// ServeHTTP sets the security headers, then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	webconsole.SecurityHeaders(w.Header())
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
	webconsole.Problem(w, http.StatusNotFound, "not_found", "no such console path: "+r.URL.Path)
}

// pageData is what a page template sees.
type pageData struct {
	Page, Title string
	ID          string
	// Events are the audit event names, for the audit page's filter.
	Events []string
}

func (h *Handler) page(name, title string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := h.pages[name].Execute(w, pageData{Page: name, Title: title, ID: r.PathValue("id"), Events: audit.Events}); err != nil {
			h.log.Error("render page", "page", name, "err", err)
		}
	}
}

// static serves the shared stylesheet and script, and hub.js.
func (h *Handler) static(w http.ResponseWriter, r *http.Request) {
	if !webconsole.ServeStatic(w, r.PathValue("file"), staticFS, "static/hub.js") {
		h.notFound(w, r)
	}
}
