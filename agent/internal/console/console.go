package console

import (
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"ferry.dev/shared/webconsole"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/app.js
var staticFS embed.FS

// CookieName is the session cookie the agent's REST API reads.
const CookieName = "ferry_session"

// Config configures a Handler. API, HubURL and Logger are required.
type Config struct {
	// API is the agent's REST API handler (package web). The console calls
	// it in process, as the signed-in user.
	API http.Handler
	// HubURL is the hub's base URL; sign-in asks it for a session token.
	HubURL string
	// Exporter reads an API's definition from the local APIM for the change
	// preview of a task. Optional: without it the preview lists the
	// incoming definition's main fields only.
	Exporter Exporter
	// HTTPClient calls the hub. Default: a client with a 15 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// AllowedHosts, when not empty, are the only host names (without port)
	// accepted in the Host header, as in package web.
	AllowedHosts []string
	// Cookie names the session cookie, as in package web; empty means
	// CookieName.
	Cookie string
	// PollInterval is how often an event stream looks for changes.
	// Default 1 s.
	PollInterval time.Duration
	// MaxStream ends an event stream after this long (the browser
	// reconnects). Default 5 min.
	MaxStream time.Duration
}

// Handler serves the environment console. It is an http.Handler meant to be
// mounted at "/console/" and "GET /{$}" (which redirects to the console).
type Handler struct {
	api      webconsole.API
	events   *webconsole.Events
	hubURL   string
	exporter Exporter
	client   *http.Client
	log      *slog.Logger
	hosts    []string
	pages    map[string]*template.Template
	mux      *http.ServeMux

	closeOnce sync.Once
	closed    chan struct{} // closed by Close: ends event streams
	cookie    string        // session cookie name
}

var _ http.Handler = (*Handler)(nil)

// forwardedHeaders are the request headers an in-process call carries over
// from the browser's request: its credentials and what the REST API's
// browser guards look at (Origin, Sec-Fetch-Site), so that they judge the
// browser's request and not the console's.
var forwardedHeaders = []string{"Cookie", "Authorization", "Origin", "Sec-Fetch-Site", "User-Agent", "X-Forwarded-For"}

// pageNames are the pages, each templates/<name>.html inside layout.html.
var pageNames = []string{"signin", "apis", "api", "tasks", "promotions"}

// New builds a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.API == nil || cfg.Logger == nil || cfg.HubURL == "" {
		return nil, errors.New("console: API, HubURL and Logger are required")
	}
	hub, err := url.Parse(cfg.HubURL)
	if err != nil || (hub.Scheme != "http" && hub.Scheme != "https") || hub.Host == "" {
		return nil, errors.New("console: HubURL must be an http(s) URL")
	}
	h := &Handler{
		api:    webconsole.API{Handler: cfg.API, Forward: forwardedHeaders},
		hubURL: strings.TrimRight(cfg.HubURL, "/"), exporter: cfg.Exporter, client: cfg.HTTPClient,
		log:   cfg.Logger.With("component", "console"),
		pages: map[string]*template.Template{}, mux: http.NewServeMux(), closed: make(chan struct{}), cookie: cfg.Cookie,
	}
	if h.cookie == "" {
		h.cookie = CookieName
	}
	if h.client == nil {
		h.client = &http.Client{Timeout: 15 * time.Second}
	}
	h.events = &webconsole.Events{API: h.api, PollInterval: cfg.PollInterval, MaxStream: cfg.MaxStream, Done: h.closed}
	for _, n := range cfg.AllowedHosts {
		h.hosts = append(h.hosts, strings.ToLower(n))
	}
	for _, p := range pageNames {
		t, err := template.New("layout.html").ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, err
		}
		h.pages[p] = t
	}
	m := h.mux
	m.HandleFunc("GET /{$}", h.redirect("/console/"))
	m.HandleFunc("GET /console/{$}", h.redirect("/console/apis"))
	m.HandleFunc("GET /console/signin", h.page("signin", "Sign in"))
	m.HandleFunc("GET /console/apis", h.page("apis", "APIs"))
	m.HandleFunc("GET /console/apis/{id}", h.page("api", "API"))
	m.HandleFunc("GET /console/tasks", h.page("tasks", "Tasks"))
	m.HandleFunc("GET /console/promotions", h.page("promotions", "Promotions"))
	m.HandleFunc("GET /console/static/{file}", h.static)
	m.HandleFunc("POST /console/session", h.signIn)
	m.HandleFunc("DELETE /console/session", h.signOut)
	m.Handle("GET /console/events", h.events)
	m.HandleFunc("GET /console/changes/{id}", h.changes)
	m.HandleFunc("/console/", h.notFound)
	return h, nil
}

// Close ends the open event streams; new ones end at once.
func (h *Handler) Close() { h.closeOnce.Do(func() { close(h.closed) }) }

// ServeHTTP applies the browser guards, then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	webconsole.SecurityHeaders(w.Header())
	if !h.hostAllowed(r.Host) {
		webconsole.Problem(w, http.StatusForbidden, "forbidden", "host "+r.Host+" is not allowed; use the address the agent listens on")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
			webconsole.Problem(w, http.StatusForbidden, "forbidden", "cross-origin requests are not allowed")
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) hostAllowed(hostport string) bool {
	if len(h.hosts) == 0 {
		return true
	}
	host := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		host = hh
	}
	return slices.Contains(h.hosts, strings.ToLower(strings.Trim(host, "[]")))
}

func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

func (h *Handler) redirect(to string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) }
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`<!doctype html><html lang="en"><meta charset="utf-8"><title>Not found · Ferry</title>` +
			`<link rel="stylesheet" href="/console/static/console.css"><main><h1>Page not found</h1>` +
			`<p>There is no console page at this address. <a href="/console/apis">Go to the APIs list</a>.</p></main></html>`))
		return
	}
	webconsole.Problem(w, http.StatusNotFound, "not_found", "no such console path: "+r.URL.Path)
}

// status is the part of GET /api/v1/status the pages show.
type status struct {
	Link         string `json:"link"`
	HubReachable bool   `json:"hubReachable"`
	HubURL       string `json:"hubUrl"`
	OrgID        string `json:"orgId"`
	OrgName      string `json:"orgName"`
	Environments []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"environments"`
	AgentVersion string `json:"agentVersion"`
}

// pageData is what a page template sees.
type pageData struct {
	Page, Title  string
	EnvName      string
	EnvID        string
	OrgName      string
	HubReachable bool
	HubURL       string
	Link         string
	AgentVersion string
	APIID        string
	Next         string
}

func (h *Handler) page(name, title string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d := pageData{Page: name, Title: title, APIID: r.PathValue("id")}
		if name == "signin" {
			d.Next = safeNext(r.URL.Query().Get("next"))
		} else if !h.hasSession(r) {
			http.Redirect(w, r, "/console/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
			return
		}
		if c, err := h.api.Call(r.Context(), r, http.MethodGet, "/api/v1/status", nil); err == nil && c.Status == http.StatusOK {
			var s status
			if json.Unmarshal(c.Body.Bytes(), &s) == nil {
				d.HubReachable, d.HubURL, d.Link, d.OrgName, d.AgentVersion = s.HubReachable, s.HubURL, s.Link, s.OrgName, s.AgentVersion
				var names, ids []string
				for _, e := range s.Environments {
					names, ids = append(names, e.Name), append(ids, e.ID)
				}
				d.EnvName, d.EnvID = strings.Join(names, ", "), strings.Join(ids, ",")
			}
		}
		if d.HubURL == "" {
			d.HubURL = h.hubURL
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := h.pages[name].Execute(w, d); err != nil {
			h.log.Error("render page", "page", name, "err", err)
		}
	}
}

// hasSession reports whether the browser sent a session; whether it is
// valid is for the REST API to say.
func (h *Handler) hasSession(r *http.Request) bool {
	if c, err := r.Cookie(h.cookie); err == nil && c.Value != "" {
		return true
	}
	return strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// safeNext keeps a post-sign-in redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/console/") || strings.HasPrefix(next, "/console/signin") || strings.ContainsAny(next, "\\\r\n") {
		return "/console/apis"
	}
	return next
}

// static serves the shared stylesheet and script, and app.js.
func (h *Handler) static(w http.ResponseWriter, r *http.Request) {
	if !webconsole.ServeStatic(w, r.PathValue("file"), staticFS, "static/app.js") {
		h.notFound(w, r)
	}
}

func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		webconsole.Problem(w, http.StatusInternalServerError, "internal", "internal error; the agent logged the details")
		h.log.Error("encode response", "err", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
