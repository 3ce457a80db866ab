package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/fleet"
	"ferry.dev/hub/internal/promotion"
	"ferry.dev/hub/internal/state"
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
}

// Fleet is the installation inventory.
type Fleet interface {
	IssueLinkToken(ctx context.Context, env state.Environment, ttl time.Duration) (fleet.IssuedLinkToken, error)
	Enroll(ctx context.Context, linkToken, agentVersion, hostname string) (fleet.Enrolled, error)
	List(ctx context.Context, orgID string) ([]fleet.Installation, error)
}

var _ Fleet = (*fleet.Fleet)(nil)

// Promotions is the promotion workflow.
type Promotions interface {
	CreateAtHub(ctx context.Context, orgID, apiID, sourceEnv, targetEnv, requester string) (state.Promotion, error)
	Get(ctx context.Context, orgID, id string) (state.Promotion, error)
	List(ctx context.Context, f state.PromotionFilter) ([]state.Promotion, error)
	Cancel(ctx context.Context, orgID, id, actor string) (state.Promotion, error)
	Waiting(p state.Promotion) bool
}

// Audit is the audit trail.
type Audit interface {
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
	Link       http.Handler // the agents' WebSocket endpoint
	Metrics    http.Handler // Prometheus exposition
	PublicURL  string       // how agents reach the hub, for the agent command line
	Logger     *slog.Logger
}

// API is the hub's REST API.
type API struct {
	store      Store
	fleet      Fleet
	promotions Promotions
	audit      Audit
	publicURL  string
	log        *slog.Logger
	router     *gin.Engine
}

// MaxBodyBytes bounds every REST request body.
const MaxBodyBytes = 1 << 20

// New builds the API and its router.
func New(d Deps) (*API, error) {
	if d.Store == nil || d.Fleet == nil || d.Promotions == nil || d.Audit == nil || d.Link == nil || d.Metrics == nil || d.Logger == nil {
		return nil, errors.New("api: store, fleet, promotions, audit, link, metrics and logger are required")
	}
	gin.SetMode(gin.ReleaseMode)
	a := &API{store: d.Store, fleet: d.Fleet, promotions: d.Promotions, audit: d.Audit, publicURL: d.PublicURL, log: d.Logger.With("component", "api")}
	r := gin.New()
	r.Use(gin.Recovery(), a.limitBody)
	r.HandleMethodNotAllowed = true
	r.NoRoute(func(c *gin.Context) { a.problem(c, "not_found", "no such endpoint") })
	r.NoMethod(func(c *gin.Context) { a.problem(c, "invalid", "method not allowed on this endpoint") })

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", a.readyz)
	r.GET("/metrics", gin.WrapH(d.Metrics))
	r.GET("/api/v1/link", gin.WrapH(d.Link))
	r.POST("/api/v1/link/enroll", a.enroll)

	v1 := r.Group("/api/v1", a.authenticate)
	v1.POST("/orgs", a.requirePlatform, a.createOrg)
	v1.GET("/orgs", a.listOrgs)
	org := v1.Group("/orgs/:org", a.loadOrg)
	org.GET("", a.getOrg)
	org.POST("/environments", a.requireOrgAdmin, a.createEnvironment)
	org.GET("/environments", a.listEnvironments)
	org.POST("/environments/:env/link-tokens", a.requireOrgAdmin, a.createLinkToken)
	org.GET("/installations", a.listInstallations)
	org.POST("/promotions", a.createPromotion)
	org.GET("/promotions", a.listPromotions)
	org.GET("/promotions/:id", a.getPromotion)
	org.POST("/promotions/:id/_cancel", a.cancelPromotion)
	org.GET("/audit", a.listAudit)
	org.GET("/audit/_verify", a.verifyAudit)
	a.router = r
	return a, nil
}

// Handler returns the API's http.Handler.
func (a *API) Handler() http.Handler { return a.router }

func (a *API) limitBody(c *gin.Context) {
	if c.Request.ContentLength > MaxBodyBytes {
		a.problem(c, "too_large", "request body exceeds 1 MiB")
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
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
