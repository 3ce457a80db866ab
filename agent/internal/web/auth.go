package web

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"ferry.dev/agent/internal/authn"
	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// CookieName is the cookie that carries the session for browsers. It is set
// by POST /api/v1/session, HttpOnly and SameSite=Strict.
const CookieName = "ferry_session"

// signInHint ends every 401's detail.
const signInHint = "sign in again at the hub: POST /api/v1/auth/session"

// userKey keys the authenticated user in a request's context.
type userKey struct{}

// userOf returns the user that authed put in r's context.
func userOf(r *http.Request) (authn.User, bool) {
	u, ok := r.Context().Value(userKey{}).(authn.User)
	return u, ok
}

// authed wraps a handler that needs a session: it answers 401 without a
// valid one and 503 while the agent cannot verify sessions, and otherwise
// calls f with the user.
func (h *Handler) authed(f func(http.ResponseWriter, *http.Request, authn.User)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, ok := h.authenticate(w, r)
		if !ok {
			return
		}
		f(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)), u)
	}
}

// Where a token came from.
const (
	fromHeader = "header"
	fromCookie = "cookie"
	fromBody   = "body"
)

// sessionToken reads the session token from the Authorization header or,
// when there is none, from the cookie. A non-Bearer Authorization is an
// error.
func (h *Handler) sessionToken(r *http.Request) (authn.Token, string, error) {
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, tok, ok := strings.Cut(a, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", fromHeader, errors.New("the Authorization header must be \"Bearer <session token>\"")
		}
		return authn.Token(strings.TrimSpace(tok)), fromHeader, nil
	}
	if c, err := r.Cookie(h.cookie); err == nil && c.Value != "" {
		return authn.Token(c.Value), fromCookie, nil
	}
	return "", "", nil
}

// authenticate verifies the request's session and answers the problem when
// there is no valid one.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (authn.User, bool) {
	tok, from, err := h.sessionToken(r)
	if err != nil {
		h.unauthorized(w, r, from, err.Error()+"; "+signInHint)
		return authn.User{}, false
	}
	if from == fromCookie && !sameOriginFetch(r) {
		// A cookie rides along with requests from other sites' pages (and
		// from other ports of the same host, which SameSite counts as the
		// same site); such requests use the header or nothing.
		h.problem(w, Problem{Status: http.StatusForbidden, Code: string(protocol.CodeForbidden),
			Detail: "the session cookie is only accepted from this agent's own pages; send Authorization: Bearer <session token>"})
		return authn.User{}, false
	}
	return h.verify(w, r, tok, from)
}

// verify checks tok and answers the problem when it is not valid.
func (h *Handler) verify(w http.ResponseWriter, r *http.Request, tok authn.Token, from string) (authn.User, bool) {
	u, err := h.auth.Verify(tok)
	switch {
	case err == nil:
		return u, true
	case errors.Is(err, authn.ErrNoIdentity), errors.Is(err, authn.ErrNoKeys):
		h.problem(w, Problem{Status: http.StatusServiceUnavailable, Code: string(protocol.CodeUnavailable), Detail: err.Error()})
	case tok == "":
		h.unauthorized(w, r, from, "no session: send Authorization: Bearer <session token> (or the "+h.cookie+
			" cookie); get one at the hub: POST /api/v1/auth/session")
	case errors.Is(err, session.ErrInvalid):
		h.log.Warn("session refused", "method", r.Method, "route", r.Pattern, "from", from, "err", err)
		h.unauthorized(w, r, from, err.Error()+"; "+signInHint)
	default:
		h.fail(w, r, err)
	}
	return authn.User{}, false
}

// unauthorized answers 401. A refused cookie is cleared.
func (h *Handler) unauthorized(w http.ResponseWriter, r *http.Request, from, detail string) {
	challenge := `Bearer realm="ferry-agent"`
	if from != "" {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	if from == fromCookie {
		http.SetCookie(w, h.sessionCookie(r, "", time.Time{}))
	}
	h.problem(w, Problem{Status: http.StatusUnauthorized, Code: string(protocol.CodeUnauthorized), Detail: detail})
}

// sameOriginFetch reports whether the browser says the request comes from
// this origin (or from the user, e.g. the address bar). Clients that are not
// browsers send no Sec-Fetch-Site and pass; the Origin check in ServeHTTP
// covers the rest.
func sameOriginFetch(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

// sessionCookie is the session cookie holding tok until exp; an empty tok
// clears it.
func (h *Handler) sessionCookie(r *http.Request, tok authn.Token, exp time.Time) *http.Cookie {
	c := &http.Cookie{Name: h.cookie, Value: tok.Reveal(), Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil}
	if tok == "" {
		c.MaxAge = -1
	} else if !exp.IsZero() {
		c.Expires = exp
	}
	return c
}

// signIn answers POST /api/v1/session: it verifies the token in the body and
// sets the session cookie. The token is never sent back.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	var req SignIn
	if err := decode(w, r, &req, false); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.Token == "" {
		h.invalid(w, "token is required: a session token from the hub (POST /api/v1/auth/session)")
		return
	}
	u, ok := h.verify(w, r, authn.Token(req.Token), fromBody)
	if !ok {
		return
	}
	http.SetCookie(w, h.sessionCookie(r, u.Token, u.ExpiresAt()))
	h.log.Info("signed in", "user", u.ID(), "expires_at", u.ExpiresAt())
	h.write(w, http.StatusOK, h.sessionDTO(u))
}

// signOut answers DELETE /api/v1/session: it clears the session cookie. The
// token itself stays valid until it expires.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, h.sessionCookie(r, "", time.Time{}))
	w.WriteHeader(http.StatusNoContent)
}

// getSession answers GET /api/v1/session: who the caller is and what they
// may do here.
func (h *Handler) getSession(w http.ResponseWriter, r *http.Request, u authn.User) {
	h.write(w, http.StatusOK, h.sessionDTO(u))
}

// environments returns the environments this agent serves, as the hub last
// said.
func (h *Handler) environments() []authn.Environment {
	id, _ := h.auth.Identity()
	return id.Environments
}

// canReadHere answers 403 and returns false unless u holds ENVIRONMENT_API
// READ on at least one of the agent's environments.
func (h *Handler) canReadHere(w http.ResponseWriter, r *http.Request, u authn.User) bool {
	if u.Claims.OrgAdmin {
		return true
	}
	envs := h.environments()
	names := make([]string, 0, len(envs))
	for _, e := range envs {
		if u.Claims.CanEnv(e.ID, session.EnvAPIRead) {
			return true
		}
		if e.Name == "" {
			e.Name = e.ID
		}
		names = append(names, e.Name)
	}
	where := strings.Join(names, " or ")
	if where == "" {
		where = "this agent's environment"
	}
	h.fail(w, r, protocol.Errorf(protocol.CodeForbidden, "needs "+authn.Describe(session.EnvAPIRead)+" on "+where))
	return false
}
