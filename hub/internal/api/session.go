package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// SessionRequest is the body of POST /api/v1/auth/session when signing in
// with a password. Exactly one of OrgID and Org names the organization.
type SessionRequest struct {
	OrgID    string `json:"orgId,omitempty"`
	Org      string `json:"org,omitempty"` // id or name
	Username string `json:"username"`
	Password string `json:"password"`
}

// SessionDTO is a hub-signed session token (an EdDSA JWT): a bearer for the
// hub's REST API and for every agent of the organization until ExpiresAt.
type SessionDTO struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// MeDTO describes the caller: who, and with which permissions.
type MeDTO struct {
	// Kind is platform (the platform admin), token (a personal access
	// token) or session.
	Kind        string `json:"kind"`
	OrgID       string `json:"orgId,omitempty"`
	UserID      string `json:"userId,omitempty"`
	Username    string `json:"username,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	OrgAdmin    bool   `json:"orgAdmin"`
	// Env maps an environment id to the caller's environment permissions;
	// API maps "<environment id>/<crossId>" to API permissions. Organization
	// admins hold every permission everywhere and get neither.
	Env map[string][]session.Permission `json:"env,omitempty"`
	API map[string][]session.Permission `json:"api,omitempty"`
}

// signInFailed is the one answer to a failed sign-in, whatever failed, so
// that it tells nothing about which organizations or users exist.
var signInFailed = protocol.Errorf(protocol.CodeUnauthorized, "unknown organization, username or password")

// createSession signs a user in, with a password or with a personal access
// token as bearer, and returns a session.
func (a *API) createSession(c *gin.Context) {
	var (
		u   state.User
		err error
	)
	if tok, ok := auth.Bearer(c.GetHeader("Authorization")); ok {
		u, err = a.sessionFromToken(c, tok)
	} else {
		u, err = a.sessionFromPassword(c)
	}
	if err != nil {
		if protocol.CodeOf(err) == protocol.CodeUnauthorized {
			c.Header("WWW-Authenticate", `Bearer realm="ferry"`)
		}
		a.fail(c, err)
		return
	}
	tok, exp, err := a.authority.Issue(c.Request.Context(), u)
	if err != nil {
		a.fail(c, err)
		return
	}
	a.log.Info("session issued", "org_id", u.OrgID, "user", u.Username)
	c.JSON(http.StatusOK, SessionDTO{Token: tok, ExpiresAt: exp})
}

func (a *API) sessionFromToken(c *gin.Context, tok string) (state.User, error) {
	if c.Request.ContentLength > 0 {
		return state.User{}, protocol.Errorf(protocol.CodeInvalid, "send either a personal access token as bearer or a body with a password, not both")
	}
	if strings.Count(tok, ".") == 2 {
		return state.User{}, protocol.Errorf(protocol.CodeInvalid, "a session cannot make another session; sign in with a password or a personal access token")
	}
	p, err := a.tokenPrincipal(c, tok)
	if err != nil {
		return state.User{}, err
	}
	if p.Platform() {
		return state.User{}, protocol.Errorf(protocol.CodeInvalid, "the platform admin has no sessions; use its token directly")
	}
	return a.activeUser(c, p.OrgID, p.UserID)
}

func (a *API) sessionFromPassword(c *gin.Context) (state.User, error) {
	var req SessionRequest
	if err := decode(c, &req); err != nil {
		return state.User{}, err
	}
	org := req.OrgID
	if (req.OrgID == "") == (req.Org == "") {
		return state.User{}, protocol.Errorf(protocol.CodeInvalid, "name the organization with exactly one of orgId and org")
	}
	if org == "" {
		org = req.Org
	}
	if req.Username == "" || req.Password == "" || len(req.Username) > 256 || len(org) > 256 {
		return state.User{}, protocol.Errorf(protocol.CodeInvalid, "username and password are required")
	}
	ctx := c.Request.Context()
	hash := a.dummyHash
	o, err := a.store.Org(ctx, org)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return state.User{}, err
	}
	if req.OrgID != "" && o.ID != req.OrgID {
		err = state.ErrNotFound // orgId must be an id
	}
	var u state.User
	if err == nil {
		u, err = a.store.User(ctx, o.ID, strings.ToLower(req.Username))
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return state.User{}, err
		}
		if err == nil && u.PasswordHash != "" {
			hash = u.PasswordHash
		}
	}
	ok, herr := auth.CheckPassword(hash, req.Password)
	if herr != nil {
		a.log.Error("a user's password hash is unreadable; reset the password", "org_id", u.OrgID, "user", u.Username, "err", herr)
	}
	if err != nil || u.PasswordHash == "" || !ok {
		a.log.Info("sign-in refused", "org", org, "user", req.Username)
		return state.User{}, signInFailed
	}
	if u.Disabled {
		return state.User{}, protocol.Errorf(protocol.CodeUnauthorized, "user is disabled")
	}
	return u, nil
}

func (a *API) me(c *gin.Context) {
	p := principal(c)
	out := MeDTO{Kind: "token", OrgID: p.OrgID, UserID: p.UserID, Username: p.Username, DisplayName: p.Name, OrgAdmin: p.perms().OrgAdmin}
	switch {
	case p.Platform():
		out.Kind = "platform"
	case p.Session:
		out.Kind = "session"
	}
	if p.Perms != nil && !p.Perms.OrgAdmin {
		out.Env, out.API = p.Perms.Env, p.Perms.API
	}
	c.JSON(http.StatusOK, out)
}
