package api

import (
	"errors"
	"strings"

	"github.com/gin-gonic/gin"

	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// Principal is the authenticated caller of a REST request.
type Principal struct {
	TokenID string
	OrgID   string // empty for the platform admin
	Name    string
}

// Platform reports whether the caller is the platform admin.
func (p Principal) Platform() bool { return p.OrgID == "" }

const (
	keyPrincipal = "ferry.principal"
	keyOrg       = "ferry.org"
)

func (a *API) authenticate(c *gin.Context) {
	tok, ok := auth.Bearer(c.GetHeader("Authorization"))
	if !ok {
		c.Header("WWW-Authenticate", `Bearer realm="ferry"`)
		a.problem(c, protocol.CodeUnauthorized, "send an API token as 'Authorization: Bearer …'")
		return
	}
	// Ferry-made tokens carry a checksum: refuse typos and forgeries before
	// any lookup. An operator-chosen FERRY_ADMIN_TOKEN has no prefix.
	if strings.HasPrefix(tok, "ferry_") && auth.Check(auth.KindAPIToken, tok) != nil {
		a.problem(c, protocol.CodeUnauthorized, "not a valid Ferry API token (bad prefix or checksum)")
		return
	}
	t, err := a.store.APITokenByHash(c.Request.Context(), auth.Hash(tok))
	if errors.Is(err, state.ErrNotFound) {
		a.problem(c, protocol.CodeUnauthorized, "unknown or revoked API token")
		return
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Set(keyPrincipal, Principal{TokenID: t.ID, OrgID: t.OrgID, Name: t.Name})
	c.Next()
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
// behind the same 404 as missing ones.
func (a *API) loadOrg(c *gin.Context) {
	o, err := a.store.Org(c.Request.Context(), c.Param("org"))
	if err != nil {
		a.fail(c, err)
		return
	}
	p := principal(c)
	if !p.Platform() && p.OrgID != o.ID {
		a.fail(c, state.ErrNotFound)
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

func (a *API) requireOrgAdmin(c *gin.Context) {
	// Organization-scoped tokens are organization admins until roles land.
	c.Next()
}
