package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/authz"
	"ferry.dev/hub/internal/promotion"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// Principal is the authenticated caller of a REST request: the platform
// admin, or a user of an organization acting through a personal access
// token or a session.
type Principal struct {
	TokenID  string // the API token's id; empty for a session
	OrgID    string // empty for the platform admin
	UserID   string // empty for the platform admin
	Username string
	Name     string // display name ("platform admin" for the platform admin)
	Session  bool   // authenticated by a session token
	// Perms are the user's permissions, computed from the user's role
	// bindings at the time of the request; nil for the platform admin.
	Perms *session.Claims
}

// Platform reports whether the caller is the platform admin.
func (p Principal) Platform() bool { return p.OrgID == "" }

// Actor is how the caller appears in the audit trail.
func (p Principal) Actor() string {
	switch {
	case !p.Platform():
		return authz.UserActor(p.Username)
	case p.Name != "":
		return p.Name
	}
	return "token:" + p.TokenID
}

// perms returns the caller's permissions; the platform admin is an admin
// of every organization.
func (p Principal) perms() *session.Claims {
	if p.Platform() {
		return &session.Claims{OrgAdmin: true}
	}
	return p.Perms
}

// caller is the principal as the promotion workflow sees it.
func (p Principal) caller() promotion.Caller {
	return promotion.Caller{Name: p.Actor(), UserID: p.UserID, Perms: p.Perms, Trusted: p.Platform()}
}

const (
	keyPrincipal = "ferry.principal"
	keyOrg       = "ferry.org"
)

// touchEvery is how often a token's last use is written at most.
const touchEvery = time.Minute

// authenticate resolves the bearer token: a session (a JWT, two dots), a
// personal access token or the platform admin's token. A user's permissions
// are always computed from the current role bindings, so a role change takes
// effect at the hub at once; a disabled or deleted user is refused at once,
// whatever the credential.
func (a *API) authenticate(c *gin.Context) {
	header := c.GetHeader("Authorization")
	tok, ok := auth.Bearer(header)
	if !ok {
		reason := "missing"
		if header != "" {
			reason = "malformed"
		}
		a.m.authRejected.WithLabelValues(reason).Inc()
		a.unauthenticated(c, "send an API token or a session as 'Authorization: Bearer <token>'")
		return
	}
	var (
		p   Principal
		err error
	)
	if strings.Count(tok, ".") == 2 {
		p, err = a.sessionPrincipal(c, tok)
		if errors.Is(err, errBadSession) {
			// An operator-chosen admin token may have two dots too.
			if tp, terr := a.tokenPrincipal(c, tok); terr == nil {
				p, err = tp, nil
			}
		}
	} else {
		p, err = a.tokenPrincipal(c, tok)
	}
	if err != nil {
		reason := "other"
		var rf *refused
		if errors.As(err, &rf) {
			reason = rf.reason
		}
		a.m.authRejected.WithLabelValues(reason).Inc()
		if protocol.CodeOf(err) == protocol.CodeUnauthorized {
			var pe *protocol.Error
			detail := "invalid credential"
			if errors.As(err, &pe) {
				detail = pe.Message
			}
			a.unauthenticated(c, detail)
			return
		}
		a.fail(c, err)
		return
	}
	c.Set(keyPrincipal, p)
	c.Next()
}

// unauthenticated answers 401 unauthenticated with the Bearer challenge.
func (a *API) unauthenticated(c *gin.Context, detail string) {
	c.Header("WWW-Authenticate", `Bearer realm="ferry"`)
	writeProblem(c, http.StatusUnauthorized, "unauthenticated", detail)
}

// refused is a credential's refusal with its reason for
// ferry_hub_auth_rejected_total.
type refused struct {
	reason string
	err    error
}

func (r *refused) Error() string { return r.err.Error() }
func (r *refused) Unwrap() error { return r.err }

// errBadSession is the refusal of a session that does not verify.
var errBadSession = protocol.Errorf(protocol.CodeUnauthorized, "invalid or expired session; sign in again")

// sessionPrincipal verifies a session token.
func (a *API) sessionPrincipal(c *gin.Context, tok string) (Principal, error) {
	claims, err := a.authority.Verify(tok, "", a.authority.Now())
	if err != nil {
		return Principal{}, &refused{"session", errBadSession}
	}
	u, err := a.activeUser(c, claims.Org, claims.Subject)
	if err != nil {
		return Principal{}, err
	}
	p, err := a.userPrincipal(c, u)
	p.Session = true
	return p, err
}

// tokenPrincipal looks up an API token.
func (a *API) tokenPrincipal(c *gin.Context, tok string) (Principal, error) {
	// Ferry-made tokens carry a checksum: refuse typos and forgeries before
	// any lookup. An operator-chosen FERRY_ADMIN_TOKEN has no prefix.
	ctx := c.Request.Context()
	if strings.HasPrefix(tok, "ferry_") && auth.Check(auth.KindAPIToken, tok) != nil {
		// An agent's installation credential is a real credential, but
		// not for this API: 403 when the hub issued it.
		if auth.Check(auth.KindCredential, tok) == nil {
			_, err := a.store.InstallationByCredential(ctx, auth.Hash(tok))
			switch {
			case err == nil:
				return Principal{}, &refused{"installation_credential",
					protocol.Errorf(protocol.CodeForbidden, "an installation credential authenticates an agent's link only; use an API token or a session")}
			case !errors.Is(err, state.ErrNotFound):
				return Principal{}, err
			}
			return Principal{}, &refused{"unknown", protocol.Errorf(protocol.CodeUnauthorized, "unknown installation credential")}
		}
		return Principal{}, &refused{"checksum", protocol.Errorf(protocol.CodeUnauthorized, "not a valid Ferry API token (bad prefix or checksum)")}
	}
	t, err := a.store.APITokenByHash(ctx, auth.Hash(tok))
	if errors.Is(err, state.ErrNotFound) {
		return Principal{}, &refused{"unknown", protocol.Errorf(protocol.CodeUnauthorized, "unknown or revoked API token")}
	}
	if err != nil {
		return Principal{}, err
	}
	now := a.authority.Now()
	switch {
	case !t.RevokedAt.IsZero():
		return Principal{}, &refused{"revoked", protocol.Errorf(protocol.CodeUnauthorized, "unknown or revoked API token")}
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return Principal{}, &refused{"expired", protocol.Errorf(protocol.CodeUnauthorized, "API token expired; create a new one")}
	case t.OrgID == "" && t.UserID == "":
		return Principal{TokenID: t.ID, Name: t.Name}, nil
	case t.OrgID == "" || t.UserID == "":
		return Principal{}, protocol.Errorf(protocol.CodeUnauthorized, "API token belongs to no user; create a personal access token")
	}
	u, err := a.activeUser(c, t.OrgID, t.UserID)
	if err != nil {
		return Principal{}, err
	}
	p, err := a.userPrincipal(c, u)
	p.TokenID = t.ID
	if err == nil && now.Sub(t.LastUsedAt) >= touchEvery {
		// Best effort: the request goes on whatever happens here.
		if terr := a.store.TouchAPIToken(ctx, t.ID, now, now.Add(-touchEvery)); terr != nil {
			a.log.Warn("could not record a token's last use", "token_id", t.ID, "err", terr)
		}
	}
	return p, err
}

// activeUser loads a user who may act: existing and not disabled.
func (a *API) activeUser(c *gin.Context, orgID, userID string) (state.User, error) {
	u, err := a.store.User(c.Request.Context(), orgID, userID)
	if errors.Is(err, state.ErrNotFound) || (err == nil && u.Disabled) {
		return state.User{}, protocol.Errorf(protocol.CodeUnauthorized, "user is disabled or deleted")
	}
	return u, err
}

// userPrincipal computes a user's current permissions.
func (a *API) userPrincipal(c *gin.Context, u state.User) (Principal, error) {
	perms, err := a.authority.Claims(c.Request.Context(), u)
	if err != nil {
		return Principal{}, err
	}
	return Principal{OrgID: u.OrgID, UserID: u.ID, Username: u.Username, Name: perms.Name, Perms: perms}, nil
}

func principal(c *gin.Context) Principal {
	p, _ := c.Get(keyPrincipal)
	pr, _ := p.(Principal)
	return pr
}

func (a *API) requirePlatform(c *gin.Context) {
	if !principal(c).Platform() {
		a.problem(c, protocol.CodeForbidden, "only the platform admin may do this")
		return
	}
	c.Next()
}

// loadOrg resolves :org and hides organizations the caller may not see
// behind the same 404 as missing ones. The attempt is recorded in the
// caller's own trail, whether or not the organization exists, so that the
// record tells nothing about other organizations.
func (a *API) loadOrg(c *gin.Context) {
	o, err := a.store.Org(c.Request.Context(), c.Param("org"))
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		a.fail(c, err)
		return
	}
	p := principal(c)
	if !p.Platform() && (err != nil || p.OrgID != o.ID) {
		a.record(c, audit.Event{OrgID: p.OrgID, Event: audit.AccessDenied, Actor: p.Actor(),
			Detail: fmt.Sprintf("%s refused: organization %q is not visible to this user", a.action(c), c.Param("org"))})
		a.fail(c, state.ErrNotFound)
		return
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Set(keyOrg, o)
	c.Next()
}

func orgOf(c *gin.Context) state.Org {
	o, _ := c.Get(keyOrg)
	org, _ := o.(state.Org)
	return org
}

// requireOrgAdmin lets only organization admins (and the platform admin)
// through.
func (a *API) requireOrgAdmin(c *gin.Context) {
	if err := a.deny(c, "", "", authz.NeedOrgAdmin(principal(c).perms())); err != nil {
		return
	}
	c.Next()
}

// deny does nothing and returns nil when refusal is nil. Otherwise it
// records an ACCESS_DENIED entry in the organization's trail (actor: the
// caller; detail: the request and what it lacks), answers 403 and returns
// the refusal.
func (a *API) deny(c *gin.Context, envID, promotionID string, refusal error) error {
	if refusal == nil {
		return nil
	}
	p := principal(c)
	msg := refusal.Error()
	var pe *protocol.Error
	if errors.As(refusal, &pe) {
		msg = pe.Message
	}
	a.log.Info("access denied", "actor", p.Actor(), "action", a.action(c), "reason", msg)
	a.record(c, audit.Event{OrgID: orgOf(c).ID, Event: audit.AccessDenied, Actor: p.Actor(), EnvID: envID, PromotionID: promotionID,
		Detail: a.action(c) + " refused: " + msg})
	a.fail(c, refusal)
	return refusal
}

// action names the request for the audit trail, e.g.
// "POST /api/v1/orgs/:org/users".
func (a *API) action(c *gin.Context) string {
	path := c.FullPath()
	if path == "" {
		path = c.Request.URL.Path
	}
	return c.Request.Method + " " + path
}

// record appends to the audit trail; a failure is logged, not returned.
func (a *API) record(c *gin.Context, ev audit.Event) {
	if ev.OrgID == "" {
		return
	}
	if _, err := a.audit.Record(c.Request.Context(), ev); err != nil {
		a.log.Error("audit entry could not be written", "event", ev.Event, "actor", ev.Actor, "detail", ev.Detail, "err", err)
	}
}
