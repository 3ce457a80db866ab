package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"ferry.dev/agent/internal/apim"
	"ferry.dev/agent/internal/authn"
	"ferry.dev/agent/internal/task"
	"ferry.dev/agent/internal/taskstore"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// Service is the promotion work behind the API. *task.Runner implements it.
type Service interface {
	APIs(ctx context.Context) ([]apim.API, error)
	API(ctx context.Context, id string) (apim.API, error)
	RequestPromotion(ctx context.Context, apiID, target string, u authn.User) (taskstore.Promotion, error)
	Targets(ctx context.Context) (protocol.TargetList, error)
	Promotions(ctx context.Context, status string) ([]taskstore.Promotion, error)
	Tasks(ctx context.Context) ([]taskstore.Task, error)
	Task(ctx context.Context, id string) (task.Detail, error)
	AcceptMatching(ctx context.Context, id string, u authn.User, ifMatch []string) (taskstore.Decision, error)
	Reject(ctx context.Context, id string, u authn.User, reason string) (taskstore.Decision, error)
}

// Authenticator verifies session tokens and knows the environments the
// agent serves. *authn.Verifier implements it.
type Authenticator interface {
	Verify(tok authn.Token) (authn.User, error)
	Identity() (authn.Identity, bool)
}

var (
	_ Service       = (*task.Runner)(nil)
	_ Authenticator = (*authn.Verifier)(nil)
)

// Config configures a Handler. Service, Status, Auth and Logger are
// required.
type Config struct {
	Service Service
	// Status reports the agent's link and identity for GET /api/v1/status.
	Status func() Status
	// Auth authenticates callers.
	Auth   Authenticator
	Logger *slog.Logger
	// AllowedHosts, when not empty, are the only host names (without port)
	// accepted in the Host header: the daemon sets the loopback names when
	// it listens on loopback, which defeats DNS rebinding.
	AllowedHosts []string
	// Cookie names the session cookie; empty means CookieName. Agents on
	// one host share cookies across ports, so the daemon makes it
	// per-address.
	Cookie string
}

// Handler serves the REST API. It is an http.Handler.
type Handler struct {
	svc    Service
	status func() Status
	auth   Authenticator
	log    *slog.Logger
	hosts  []string
	cookie string
	mux    *http.ServeMux
}

var _ http.Handler = (*Handler)(nil)

// apiPrefix is the root of every route; the catch-all below it answers 404
// and 405 as problems.
const apiPrefix = "/api/v1/"

// New builds a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Service == nil || cfg.Status == nil || cfg.Auth == nil || cfg.Logger == nil {
		return nil, errors.New("web: service, status, auth and logger are required")
	}
	h := &Handler{svc: cfg.Service, status: cfg.Status, auth: cfg.Auth, log: cfg.Logger.With("component", "web"), cookie: cfg.Cookie, mux: http.NewServeMux()}
	if h.cookie == "" {
		h.cookie = CookieName
	}
	for _, n := range cfg.AllowedHosts {
		h.hosts = append(h.hosts, strings.ToLower(n))
	}
	m := h.mux
	m.HandleFunc("GET /api/v1/status", h.getStatus)
	m.HandleFunc("POST /api/v1/session", h.signIn)
	m.HandleFunc("DELETE /api/v1/session", h.signOut)
	m.HandleFunc("GET /api/v1/session", h.authed(h.getSession))
	m.HandleFunc("GET /api/v1/apis", h.authed(h.listAPIs))
	m.HandleFunc("GET /api/v1/apis/{apiId}", h.authed(h.getAPI))
	m.HandleFunc("POST /api/v1/apis/{apiId}/_promote", h.authed(h.promote))
	m.HandleFunc("GET /api/v1/promotion-targets", h.authed(h.targets))
	m.HandleFunc("GET /api/v1/promotions", h.authed(h.promotions))
	m.HandleFunc("GET /api/v1/tasks", h.authed(h.listTasks))
	m.HandleFunc("GET /api/v1/tasks/{id}", h.authed(h.getTask))
	m.HandleFunc("POST /api/v1/tasks/{id}/_accept", h.authed(h.accept))
	m.HandleFunc("POST /api/v1/tasks/{id}/_reject", h.authed(h.reject))
	m.HandleFunc(apiPrefix, h.notFound)
	return h, nil
}

// ServeHTTP applies the browser guards, then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	if !h.hostAllowed(r.Host) {
		h.problem(w, Problem{Status: http.StatusForbidden, Code: string(protocol.CodeForbidden), Detail: "host " + r.Host + " is not allowed; use the address the agent listens on"})
		return
	}
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
		h.problem(w, Problem{Status: http.StatusForbidden, Code: string(protocol.CodeForbidden), Detail: "cross-origin requests are not allowed"})
		return
	}
	h.log.Debug("request", "method", r.Method, "path", r.URL.Path)
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
	host = strings.ToLower(strings.Trim(host, "[]"))
	return slices.Contains(h.hosts, host)
}

// sameOrigin reports whether the Origin header names the host the request
// was sent to.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

// notFound answers paths with no route: 405 when another method has one.
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := h.mux.Handler(probe); pattern != apiPrefix {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		h.problem(w, Problem{Status: http.StatusMethodNotAllowed, Code: codeMethodNotAllowed, Detail: r.Method + " is not allowed here; use " + strings.Join(allow, " or ")})
		return
	}
	h.problem(w, Problem{Status: http.StatusNotFound, Code: string(protocol.CodeNotFound), Detail: "no such route: " + r.URL.Path})
}

func (h *Handler) write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.log.Error("encode response", "err", err)
		h.problem(w, Problem{Status: http.StatusInternalServerError, Code: string(protocol.CodeInternal), Detail: "internal error; the agent logged the details"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// pathID reads and validates a path id, answering 400 when it is malformed.
func (h *Handler) pathID(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	id := r.PathValue(name)
	if !validID(id) {
		h.invalid(w, name+" is malformed: 1-256 letters, digits, '_', '.', ':' or '-'")
		return "", false
	}
	return id, true
}

func (h *Handler) getStatus(w http.ResponseWriter, r *http.Request) {
	s := h.status()
	if s.Environments == nil {
		s.Environments = []EnvironmentRef{}
	}
	h.write(w, http.StatusOK, s)
}

func (h *Handler) listAPIs(w http.ResponseWriter, r *http.Request, u authn.User) {
	if !h.canReadHere(w, r, u) {
		return
	}
	list, err := h.svc.APIs(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := List[API]{Items: make([]API, 0, len(list))}
	for _, a := range list {
		out.Items = append(out.Items, apiDTO(a))
	}
	h.write(w, http.StatusOK, out)
}

func (h *Handler) getAPI(w http.ResponseWriter, r *http.Request, u authn.User) {
	id, ok := h.pathID(w, r, "apiId")
	if !ok || !h.canReadHere(w, r, u) {
		return
	}
	a, err := h.svc.API(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, apiDTO(a))
}

func (h *Handler) promote(w http.ResponseWriter, r *http.Request, u authn.User) {
	id, ok := h.pathID(w, r, "apiId")
	if !ok {
		return
	}
	var req PromoteRequest
	if err := decode(w, r, &req, false); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.TargetEnv == "" || len(req.TargetEnv) > 128 || !utf8.ValidString(req.TargetEnv) {
		h.invalid(w, "targetEnv is required: the target environment's id or name (at most 128 bytes)")
		return
	}
	p, err := h.svc.RequestPromotion(r.Context(), id, req.TargetEnv, u)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusCreated, promotionDTO(p, h.ourEnvs()))
}

// targets needs no permission beyond a session: whoever may promote an API
// (API_DEFINITION UPDATE on it, perhaps without any environment role) needs
// the list of targets.
func (h *Handler) targets(w http.ResponseWriter, r *http.Request, _ authn.User) {
	tl, err := h.svc.Targets(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, targetsDTO(tl))
}

// statuses are the values ?status= accepts.
var statuses = []protocol.PromotionStatus{protocol.PromotionCreated, protocol.PromotionToBeValidated, protocol.PromotionAccepted,
	protocol.PromotionRejected, protocol.PromotionError, protocol.PromotionCancelled}

// promotions lists the promotions from or to an environment where u holds
// ENVIRONMENT_API READ.
func (h *Handler) promotions(w http.ResponseWriter, r *http.Request, u authn.User) {
	status := r.URL.Query().Get("status")
	if status != "" && !slices.Contains(statuses, protocol.PromotionStatus(status)) {
		h.invalid(w, "status must be one of CREATED, TO_BE_VALIDATED, ACCEPTED, REJECTED, ERROR, CANCELLED")
		return
	}
	if !h.canReadHere(w, r, u) {
		return
	}
	list, err := h.svc.Promotions(r.Context(), status)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ours := h.ourEnvs()
	out := List[Promotion]{Items: make([]Promotion, 0, len(list))}
	for _, p := range list {
		if u.Claims.CanEnv(p.SourceEnvID, session.EnvAPIRead) || u.Claims.CanEnv(p.TargetEnvID, session.EnvAPIRead) {
			out.Items = append(out.Items, promotionDTO(p, ours))
		}
	}
	h.write(w, http.StatusOK, out)
}

// ourEnvs returns the ids of the environments this agent serves.
func (h *Handler) ourEnvs() []string {
	var ids []string
	for _, e := range h.environments() {
		ids = append(ids, e.ID)
	}
	return ids
}

// listTasks lists the pending tasks of the environments where u holds
// ENVIRONMENT_API READ.
func (h *Handler) listTasks(w http.ResponseWriter, r *http.Request, u authn.User) {
	if !h.canReadHere(w, r, u) {
		return
	}
	list, err := h.svc.Tasks(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := List[Task]{Items: make([]Task, 0, len(list))}
	for _, t := range list {
		if u.Claims.CanEnv(t.TargetEnvID, session.EnvAPIRead) {
			out.Items = append(out.Items, taskDTO(t))
		}
	}
	h.write(w, http.StatusOK, out)
}

// getTask needs ENVIRONMENT_API READ on the task's target environment. A
// task of another environment of this agent that u may not read answers 404,
// as if it did not exist.
func (h *Handler) getTask(w http.ResponseWriter, r *http.Request, u authn.User) {
	id, ok := h.pathID(w, r, "id")
	if !ok || !h.canReadHere(w, r, u) {
		return
	}
	d, err := h.svc.Task(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !u.Claims.CanEnv(d.Task.TargetEnvID, session.EnvAPIRead) {
		h.log.Warn("permission refused", "user", u.ID(), "method", r.Method, "route", r.Pattern, "task_id", id,
			"detail", "needs ENVIRONMENT_API[READ] on "+d.Task.TargetEnvID)
		h.fail(w, r, protocol.Errorf(protocol.CodeNotFound, "no such task"))
		return
	}
	if d.Plan != nil && d.Plan.ETag != "" {
		w.Header().Set("ETag", `"`+d.Plan.ETag+`"`)
	}
	h.write(w, http.StatusOK, detailDTO(d))
}

func (h *Handler) accept(w http.ResponseWriter, r *http.Request, u authn.User) {
	id, ok := h.pathID(w, r, "id")
	if !ok {
		return
	}
	var req AcceptRequest
	if err := decode(w, r, &req, true); err != nil {
		h.fail(w, r, err)
		return
	}
	ifMatch, err := parseIfMatch(r.Header.Values("If-Match"))
	if err != nil {
		h.invalid(w, err.Error())
		return
	}
	d, err := h.svc.AcceptMatching(r.Context(), id, u, ifMatch)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, decisionDTO(d))
}

func (h *Handler) reject(w http.ResponseWriter, r *http.Request, u authn.User) {
	id, ok := h.pathID(w, r, "id")
	if !ok {
		return
	}
	var req RejectRequest
	if err := decode(w, r, &req, true); err != nil {
		h.fail(w, r, err)
		return
	}
	if len(req.Reason) > 1024 {
		h.invalid(w, "reason is at most 1024 bytes")
		return
	}
	d, err := h.svc.Reject(r.Context(), id, u, req.Reason)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, decisionDTO(d))
}

// parseIfMatch returns the entity tags of If-Match headers, unquoted; none
// for no header or "*" (no condition). A weak tag (W/"...") is kept with its
// prefix so that it never matches: If-Match compares strongly.
func parseIfMatch(values []string) ([]string, error) {
	var tags []string
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			weak := strings.HasPrefix(tag, "W/")
			q := strings.TrimPrefix(tag, "W/")
			switch {
			case tag == "":
			case tag == "*":
				return nil, nil
			case len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' || strings.Contains(q[1:len(q)-1], `"`):
				return nil, fmt.Errorf("If-Match must list quoted entity tags, such as the ETag of GET /api/v1/tasks/{id}; got %.80q", tag)
			case weak:
				tags = append(tags, tag)
			default:
				tags = append(tags, q[1:len(q)-1])
			}
		}
	}
	if len(tags) > 16 {
		return nil, errors.New("If-Match lists more than 16 entity tags")
	}
	return tags, nil
}
