package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/authz"
	"ferry.dev/hub/internal/fleet"
	"ferry.dev/hub/internal/promotion"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/session"
)

// Store is the part of the hub store the REST API reads and writes directly.
type Store interface {
	Ping(ctx context.Context) error
	CreateOrg(ctx context.Context, o state.Org) error
	Org(ctx context.Context, idOrName string) (state.Org, error)
	ListOrgs(ctx context.Context) ([]state.Org, error)
	CreateEnvironment(ctx context.Context, e state.Environment) error
	Environment(ctx context.Context, orgID, idOrName string) (state.Environment, error)
	ListEnvironments(ctx context.Context, orgID string) ([]state.Environment, error)
	APITokenByHash(ctx context.Context, hash string) (state.APIToken, error)
	CreateAPIToken(ctx context.Context, t state.APIToken) error
	ListAPITokens(ctx context.Context, orgID, userID string) ([]state.APIToken, error)
	RevokeAPIToken(ctx context.Context, orgID, id string, at time.Time) (state.APIToken, error)
	TouchAPIToken(ctx context.Context, id string, at, ifBefore time.Time) error
	CreateUser(ctx context.Context, u state.User) error
	User(ctx context.Context, orgID, idOrUsername string) (state.User, error)
	ListUsers(ctx context.Context, orgID string) ([]state.User, error)
	UpdateUser(ctx context.Context, orgID, id string, u state.UserUpdate) (state.User, error)
	DeleteUser(ctx context.Context, orgID, id string) error
	CreateRoleBinding(ctx context.Context, b state.RoleBinding) error
	ListRoleBindings(ctx context.Context, f state.RoleBindingFilter) ([]state.RoleBinding, error)
	DeleteRoleBinding(ctx context.Context, orgID, id string) error
	CreateRole(ctx context.Context, r state.Role) error
	ListRoles(ctx context.Context, orgID string) ([]state.Role, error)
	DeleteRole(ctx context.Context, orgID string, scope state.Scope, name string) error
	InstallationByCredential(ctx context.Context, hash string) (state.Installation, error)
	Installation(ctx context.Context, id string) (state.Installation, error)
	ListConnections(ctx context.Context, installationID string, limit int) ([]state.ConnectionEvent, error)
}

// Authority issues and verifies user sessions and computes permissions.
type Authority interface {
	Claims(ctx context.Context, u state.User) (*session.Claims, error)
	Issue(ctx context.Context, u state.User) (token string, expires time.Time, err error)
	Verify(token, org string, at time.Time) (*session.Claims, error)
	Now() time.Time
}

var _ Authority = (*authz.Authority)(nil)

// Fleet is the installation inventory.
type Fleet interface {
	IssueLinkToken(ctx context.Context, env state.Environment, ttl time.Duration) (fleet.IssuedLinkToken, error)
	Enroll(ctx context.Context, linkToken, agentVersion, hostname, clientKeyHash string) (fleet.Enrolled, error)
	List(ctx context.Context, orgID string) ([]fleet.Installation, error)
	Revoke(ctx context.Context, orgID, id string) (state.Installation, error)
	RotateCredential(ctx context.Context, orgID, id string) (fleet.Rotation, error)
}

var _ Fleet = (*fleet.Fleet)(nil)

// Promotions is the promotion workflow.
type Promotions interface {
	// CreateAtHubOnce creates a promotion at most once per Idempotency-Key:
	// a retry answers the promotion the key made (replayed true).
	CreateAtHubOnce(ctx context.Context, orgID, apiID, sourceEnv, targetEnv string, by promotion.Caller, key string) (p state.Promotion, replayed bool, err error)
	Get(ctx context.Context, orgID, id string) (state.Promotion, error)
	List(ctx context.Context, f state.PromotionFilter) ([]state.Promotion, error)
	Cancel(ctx context.Context, orgID, id string, by promotion.Caller) (state.Promotion, error)
	Waiting(p state.Promotion) bool
}

// Audit is the audit trail.
type Audit interface {
	Record(ctx context.Context, ev audit.Event) (state.AuditEntry, error)
	List(ctx context.Context, f state.AuditFilter) ([]state.AuditEntry, error)
	Verify(ctx context.Context, orgID string) (*audit.Break, int64, error)
}

var (
	_ Promotions = (*promotion.Service)(nil)
	_ Audit      = (*audit.Trail)(nil)
)

// Deps are the API's collaborators.
type Deps struct {
	Store      Store
	Fleet      Fleet
	Promotions Promotions
	Audit      Audit
	Authority  Authority
	Link       http.Handler // the agents' WebSocket endpoint
	// Metrics is the Prometheus exposition served at /metrics; nil serves
	// none (the hub's --metrics-addr puts it on an operator listener).
	Metrics http.Handler
	// Registerer takes the API's own collectors; nil keeps them private.
	Registerer prometheus.Registerer
	PublicURL  string // how agents reach the hub, for the agent command line
	Logger     *slog.Logger
	// Argon2 are the cost parameters of new password hashes; zero means
	// auth.DefaultArgon2.
	Argon2 auth.Argon2Params
	// Limits are the request rate limits; the zero value limits nothing.
	Limits Limits
	// RequireClientCert refuses enroll and link requests without a client
	// certificate verified by the TLS handshake (the hub's --client-ca).
	RequireClientCert bool
}

// API is the hub's REST API.
type API struct {
	store      Store
	fleet      Fleet
	promotions Promotions
	audit      Audit
	authority  Authority
	publicURL  string
	log        *slog.Logger
	router     *gin.Engine
	argon2     auth.Argon2Params
	// dummyHash is checked against when a sign-in names no user, so that
	// the answer takes as long as for a wrong password.
	dummyHash string

	tokenLimits *limiters // per authenticated caller; nil is unlimited
	idem        *idempotency
	m           *metrics
}

// Request body limits: the promotion-creating route may carry an API
// definition; every other route takes a small JSON object.
const (
	// MaxBodyBytes bounds the body of every route but the promotion ones.
	MaxBodyBytes = 64 << 10
	// MaxPromotionBodyBytes bounds the body of a promotion-creating route.
	MaxPromotionBodyBytes = 4 << 20
)

// promotionRoutes are the routes that create promotions: they take the
// larger body and require an Idempotency-Key.
var promotionRoutes = map[string]bool{
	"POST /api/v1/orgs/:org/promotions": true,
}

// New builds the API and its router.
func New(d Deps) (*API, error) {
	if d.Store == nil || d.Fleet == nil || d.Promotions == nil || d.Audit == nil || d.Authority == nil || d.Link == nil || d.Logger == nil {
		return nil, errors.New("api: store, fleet, promotions, audit, authority, link and logger are required")
	}
	if d.Registerer == nil {
		d.Registerer = prometheus.NewRegistry()
	}
	m, err := newMetrics(d.Registerer)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if d.Argon2 == (auth.Argon2Params{}) {
		d.Argon2 = auth.DefaultArgon2
	}
	dummy, err := auth.HashPassword("no such user", d.Argon2)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	gin.SetMode(gin.ReleaseMode)
	a := &API{store: d.Store, fleet: d.Fleet, promotions: d.Promotions, audit: d.Audit, authority: d.Authority,
		publicURL: d.PublicURL, log: d.Logger.With("component", "api"), argon2: d.Argon2, dummyHash: dummy,
		tokenLimits: newLimiters(d.Limits.Token), m: m}
	a.idem = newIdempotency(a.authority.Now)
	signIn, linkIP := a.limitIP(newLimiters(d.Limits.SignIn)), a.limitIP(newLimiters(d.Limits.Link))
	r := gin.New()
	r.Use(gin.Recovery(), limitHeaders, a.limitBody)
	// A method a path does not take answers 405 (with Allow), never 404:
	// the audit routes in particular take GET only.
	r.HandleMethodNotAllowed = true
	r.NoRoute(func(c *gin.Context) { a.problem(c, "not_found", "no such endpoint") })
	r.NoMethod(func(c *gin.Context) {
		writeProblem(c, http.StatusMethodNotAllowed, "method_not_allowed", c.Request.Method+" is not allowed on this endpoint")
	})

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", a.readyz)
	if d.Metrics != nil {
		r.GET("/metrics", gin.WrapH(d.Metrics))
	}
	agentCert := func(c *gin.Context) { c.Next() }
	if d.RequireClientCert {
		agentCert = a.requireClientCert
	}
	r.GET("/api/v1/link", linkIP, agentCert, gin.WrapH(d.Link))
	r.POST("/api/v1/link/enroll", signIn, agentCert, a.enroll)
	r.POST("/api/v1/auth/session", signIn, a.createSession)

	// Every route below authenticates; every route under /orgs/:org hides
	// other organizations behind 404 and checks a permission.
	v1 := r.Group("/api/v1", a.authenticate, a.limitCaller)
	v1.GET("/auth/me", a.me)
	v1.POST("/orgs", a.requirePlatform, a.idempotent, a.createOrg)
	v1.GET("/orgs", a.listOrgs)
	org := v1.Group("/orgs/:org", a.loadOrg)
	org.GET("", a.getOrg)
	org.GET("/environments", a.listEnvironments)
	org.GET("/installations", a.listInstallations)
	org.POST("/promotions", a.idempotent, a.createPromotion) // the workflow checks API_DEFINITION[UPDATE]
	org.GET("/promotions", a.listPromotions)                 // ENVIRONMENT_API[READ], per environment
	org.GET("/promotions/:id", a.getPromotion)               // ENVIRONMENT_API[READ] on its source or target
	org.POST("/promotions/:id/_cancel", a.cancelPromotion)   // the requester or an organization admin

	admin := org.Group("", a.requireOrgAdmin)
	admin.POST("/environments", a.idempotent, a.createEnvironment)
	admin.POST("/environments/:env/link-tokens", a.idempotent, a.createLinkToken)
	admin.DELETE("/installations/:id", a.revokeInstallation)
	admin.POST("/installations/:id/_rotate-credential", a.rotateCredential)
	admin.GET("/installations/:id/connections", a.listConnections)
	admin.GET("/audit", a.listAudit)
	admin.GET("/audit/_verify", a.verifyAudit)
	admin.POST("/users", a.idempotent, a.createUser)
	admin.GET("/users", a.listUsers)
	admin.GET("/users/:user", a.getUser)
	admin.PATCH("/users/:user", a.updateUser)
	admin.DELETE("/users/:user", a.deleteUser)
	admin.POST("/role-bindings", a.createRoleBinding)
	admin.GET("/role-bindings", a.listRoleBindings)
	admin.DELETE("/role-bindings/:id", a.deleteRoleBinding)
	admin.POST("/roles", a.createRole)
	admin.GET("/roles", a.listRoles)
	admin.DELETE("/roles/:scope/:name", a.deleteRole)
	admin.POST("/tokens", a.idempotent, a.createToken)
	admin.GET("/tokens", a.listTokens)
	admin.DELETE("/tokens/:id", a.revokeToken)
	a.router = r
	return a, nil
}

// Handler returns the API's http.Handler.
func (a *API) Handler() http.Handler { return a.router }

// Route is a registered method and path pattern, e.g. GET
// /api/v1/orgs/:org/audit.
type Route struct{ Method, Path string }

// Routes lists every registered route, so that tests can check the whole
// surface (for instance, that nothing writes to the audit trail).
func (a *API) Routes() []Route {
	var out []Route
	for _, r := range a.router.Routes() {
		out = append(out, Route{Method: r.Method, Path: r.Path})
	}
	return out
}

// requireClientCert refuses a request whose TLS handshake verified no
// client certificate.
func (a *API) requireClientCert(c *gin.Context) {
	if tc := c.Request.TLS; tc == nil || len(tc.VerifiedChains) == 0 {
		writeProblem(c, http.StatusUnauthorized, "client_certificate_required", "agents must present a client certificate signed by the hub's client CA")
		return
	}
	c.Next()
}

// bodyLimit is the body limit of the request's route.
func bodyLimit(c *gin.Context) int64 {
	if promotionRoutes[c.Request.Method+" "+c.FullPath()] {
		return MaxPromotionBodyBytes
	}
	return MaxBodyBytes
}

// limitBody refuses a declared length over the route's limit before
// reading anything, and cuts an undeclared (chunked) body at the limit.
func (a *API) limitBody(c *gin.Context) {
	limit := bodyLimit(c)
	if c.Request.ContentLength > limit {
		// Do not keep the connection to drain a body nobody will read.
		c.Header("Connection", "close")
		a.fail(c, tooLarge(limit))
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	c.Next()
}

func (a *API) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		a.log.Warn("readiness check failed: store unreachable", "err", err)
		c.Header("Retry-After", "5")
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "detail": "store unreachable"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
