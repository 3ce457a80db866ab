package apimsim

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Operation names, as Gravitee's OpenAPI operationIds. Hits counts requests
// by these names.
const (
	OpListAPIs     = "listApis"
	OpGetAPI       = "getApi"
	OpExport       = "exportApiDefinition"
	OpImportCreate = "createApiWithImportDefinition"
	OpImportUpdate = "updateApiWithDefinition"
)

// DefaultEnvID is the environment Seed loads into.
const DefaultEnvID = "DEFAULT"

// DefaultMaxBodyBytes is the request body limit when Options.MaxBodyBytes is
// zero.
const DefaultMaxBodyBytes = 8 << 20

// APIMVersion is what the stand-in reports as export.apimVersion.
const APIMVersion = "4.9.0-ferry-apimsim"

// Options configures a Server. The zero value serves without
// authentication.
type Options struct {
	// User and Password, when User is set, are required as HTTP Basic
	// credentials on every request; anything else gets 401, as from APIM.
	User     string
	Password string
	// Token, when set, is also accepted as a bearer token.
	Token string
	// Logger receives request and lifecycle logs, with component=apimsim.
	// Nil discards them.
	Logger *slog.Logger
	// MaxBodyBytes limits import bodies; larger ones get 413. Zero means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Now is the clock for createdAt, updatedAt and export dates. Nil means
	// time.Now.
	Now func() time.Time
}

// Server is the stand-in APIM. It is an http.Handler.
type Server struct {
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux

	// mu guards the fields below it.
	mu       sync.Mutex
	envs     map[string]*environment
	creates  map[string]int // by crossId: successful creates
	updates  map[string]int // by crossId: successful updates
	hits     map[string]int // by operation: requests received
	failLeft int            // requests still to fail with failCode
	failCode int
	dropLeft int // imports still to apply without answering
}

var _ http.Handler = (*Server)(nil)

// New returns an empty Server.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger.With(slog.String("component", "apimsim")),
		mux:     http.NewServeMux(),
		envs:    make(map[string]*environment),
		creates: make(map[string]int),
		updates: make(map[string]int),
		hits:    make(map[string]int),
	}
	for _, base := range []string{"/management/v2", "/management/v2/organizations/{orgId}"} {
		apis := base + "/environments/{envId}/apis"
		s.mux.Handle("GET "+apis, s.route(OpListAPIs, s.handleList))
		s.mux.Handle("GET "+apis+"/{apiId}", s.route(OpGetAPI, s.handleGet))
		s.mux.Handle("GET "+apis+"/{apiId}/_export/definition", s.route(OpExport, s.handleExport))
		s.mux.Handle("POST "+apis+"/_import/definition", s.route(OpImportCreate, s.handleImportCreate))
		s.mux.Handle("PUT "+apis+"/{apiId}/_import/definition", s.route(OpImportUpdate, s.handleImportUpdate))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, apiError{status: http.StatusNotFound, message: fmt.Sprintf("No resource at %s %s", r.Method, r.URL.Path), code: "resource.notFound"})
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// route wraps a handler with hit counting, fault injection and
// authentication, in that order: an injected fault stands for a proxy or
// load balancer in front of APIM.
func (s *Server) route(op string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.Debug("request", slog.String("op", op), slog.String("method", r.Method), slog.String("path", r.URL.Path))
		s.mu.Lock()
		s.hits[op]++
		fail := 0
		if s.failLeft > 0 {
			s.failLeft--
			fail = s.failCode
		}
		s.mu.Unlock()
		if fail != 0 {
			writeError(w, apiError{status: fail, message: "Injected failure (apimsim FailNext)", code: "apimsim.injected"})
			return
		}
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="gravitee.io"`)
			writeError(w, apiError{status: http.StatusUnauthorized, message: "Unauthorized", code: "unauthorized"})
			return
		}
		h(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	if s.opts.User == "" && s.opts.Token == "" {
		return true
	}
	if user, pass, ok := r.BasicAuth(); ok && s.opts.User != "" {
		return equal(user, s.opts.User) && equal(pass, s.opts.Password)
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.opts.Token != "" {
		return equal(tok, s.opts.Token)
	}
	return false
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// Seed imports every *.json file of dir, in name order, into the DEFAULT
// environment, as an import to create would.
func (s *Server) Seed(dir string) error {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return fmt.Errorf("seed %s: %w", dir, err)
	}
	if len(paths) == 0 {
		return fmt.Errorf("seed %s: no *.json files", dir)
	}
	slices.Sort(paths)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		a, err := s.Import(DefaultEnvID, b)
		if err != nil {
			return fmt.Errorf("seed %s: %w", filepath.Base(p), err)
		}
		s.log.Info("seeded API", slog.String("file", filepath.Base(p)), slog.String("api_id", a.ID), slog.String("cross_id", a.CrossID), slog.String("name", a.Name))
	}
	return nil
}

// Import creates an API in envID from an ExportApiV4 document, exactly as
// POST .../_import/definition would, but without HTTP, hit counting or
// faults.
func (s *Server) Import(envID string, def []byte) (API, error) {
	doc, err := parseDefinition(def)
	if err == nil {
		var a API
		if a, err = s.create(envID, doc); err == nil {
			return a, nil
		}
	}
	var ae apiError
	if errors.As(err, &ae) {
		return API{}, fmt.Errorf("import: %d %s", ae.status, ae.message)
	}
	return API{}, fmt.Errorf("import: %w", err)
}

// API is a snapshot of an API held by the stand-in.
type API struct {
	// EnvID is the environment holding the API.
	EnvID string
	// ID is the id the stand-in assigned.
	ID string
	// CrossID is the API's crossId: the imported one, or one generated on
	// create.
	CrossID string
	// Name and APIVersion are api.name and api.apiVersion.
	Name       string
	APIVersion string
	// CreatedAt and UpdatedAt are the times of the create and of the last
	// update, from Options.Now.
	CreatedAt time.Time
	UpdatedAt time.Time
	// Definition is the stored ExportApiV4 document, with the ids the
	// stand-in assigned and everything the import carried (members
	// included).
	Definition []byte
}

// APIs returns the APIs of an environment in creation order.
func (s *Server) APIs(envID string) []API {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.envs[envID]
	if e == nil {
		return nil
	}
	out := make([]API, 0, len(e.order))
	for _, id := range e.order {
		out = append(out, e.apis[id].snapshot(envID))
	}
	return out
}

// Creates returns how many imports created an API with this crossId, in any
// environment.
func (s *Server) Creates(crossID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates[crossID]
}

// Updates returns how many imports updated an API with this crossId, in any
// environment.
func (s *Server) Updates(crossID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updates[crossID]
}

// Hits returns how many requests for an operation (one of the Op constants)
// arrived, whatever their outcome, injected failures included.
func (s *Server) Hits(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[op]
}

// FailNext makes the next n requests, of any operation, fail with status
// and a Gravitee error body before anything is applied.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failLeft, s.failCode = n, status
}

// DropResponseAfterApply makes the next n successful imports (create or
// update) apply the change and then close the connection without
// answering, as when APIM or a proxy dies after the commit.
func (s *Server) DropResponseAfterApply(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropLeft = n
}

// takeDrop reports whether the import just applied must go unanswered.
func (s *Server) takeDrop() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropLeft > 0 {
		s.dropLeft--
		return true
	}
	return false
}
