package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"ferry.dev/shared/webconsole"
)

// SignInRequest is the body of POST /console/session.
type SignInRequest struct {
	Username     string `json:"username"`
	Password     string `json:"password"`
	Organization string `json:"organization"`
}

// SignInResponse answers a successful sign-in.
type SignInResponse struct {
	Name      string    `json:"name"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// hubSession is the hub's answer to POST /api/v1/auth/session.
type hubSession struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// codeHubUnreachable marks a sign-in that failed because the hub could not
// be reached; the sign-in page explains what still works.
const codeHubUnreachable = "hub_unreachable"

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		webconsole.Problem(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
		return
	}
	var req SignInRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		webconsole.Problem(w, http.StatusBadRequest, "invalid", "malformed sign-in request: "+err.Error())
		return
	}
	req.Username, req.Organization = strings.TrimSpace(req.Username), strings.TrimSpace(req.Organization)
	if req.Username == "" || req.Password == "" || req.Organization == "" {
		webconsole.Problem(w, http.StatusBadRequest, "invalid", "enter your username, your password and your organization")
		return
	}
	if len(req.Username) > 256 || len(req.Password) > 1024 || len(req.Organization) > 256 || !utf8.ValidString(req.Username+req.Organization) {
		webconsole.Problem(w, http.StatusBadRequest, "invalid", "username and organization are at most 256 bytes, the password at most 1024")
		return
	}
	sess, status, detail, err := h.askHub(r.Context(), req)
	switch {
	case err != nil && r.Context().Err() != nil:
		return // the browser went away
	case err != nil:
		h.log.Warn("sign-in: hub unreachable", "hub", h.hubURL, "err", err)
		webconsole.Problem(w, http.StatusServiceUnavailable, codeHubUnreachable, "The hub at "+h.hubURL+" cannot be reached, so you cannot sign in right now. "+
			"Check that the hub is running and that this agent can reach it, then try again. "+
			"If you already signed in from this browser, that session keeps working for tasks until it expires.")
		return
	case status == http.StatusNotFound && strings.Contains(detail, "no such endpoint"):
		webconsole.Problem(w, http.StatusBadGateway, "upstream", "The hub at "+h.hubURL+" does not offer password sign-in (POST /api/v1/auth/session is missing). Ask its operator to upgrade it.")
		return
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound:
		webconsole.Problem(w, http.StatusUnauthorized, "unauthorized", "Sign-in refused: the username, password or organization is wrong ("+detail+"). Check them and try again.")
		return
	case status == http.StatusBadRequest:
		webconsole.Problem(w, http.StatusBadRequest, "invalid", "The hub refused the sign-in request: "+detail)
		return
	case status == http.StatusTooManyRequests:
		webconsole.Problem(w, http.StatusTooManyRequests, "rate_limited", "Too many sign-in attempts. Wait a minute, then try again.")
		return
	case status/100 != 2:
		webconsole.Problem(w, http.StatusBadGateway, "upstream", fmt.Sprintf("The hub answered %d to the sign-in (%s). Try again in a moment; if it persists, tell the hub's operator.", status, detail))
		return
	}
	if err := h.setSession(w, r, sess); err != nil {
		var p *problemError
		if errors.As(err, &p) {
			webconsole.Problem(w, p.status, p.code, p.detail)
			return
		}
		h.log.Error("sign-in: set session", "err", err)
		webconsole.Problem(w, http.StatusInternalServerError, "internal", "internal error; the agent logged the details")
		return
	}
	h.log.Info("console sign-in", "user", req.Username)
	h.writeJSON(w, http.StatusOK, SignInResponse{Name: req.Username, ExpiresAt: sess.ExpiresAt})
}

// askHub asks the hub for a session token. err is set only when the hub
// could not be reached; otherwise status and detail say what it answered.
func (h *Handler) askHub(ctx context.Context, req SignInRequest) (s hubSession, status int, detail string, err error) {
	body, _ := json.Marshal(map[string]string{"org": req.Organization, "username": req.Username, "password": req.Password})
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.hubURL+"/api/v1/auth/session", bytes.NewReader(body))
	if err != nil {
		return s, 0, "", err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	resp, err := h.client.Do(hr)
	if err != nil {
		return s, 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		var p struct{ Detail, Title string }
		_ = json.Unmarshal(b, &p)
		detail = p.Detail
		if detail == "" {
			detail = p.Title
		}
		if detail == "" {
			detail = http.StatusText(resp.StatusCode)
		}
		return s, resp.StatusCode, detail, nil
	}
	if err := json.Unmarshal(b, &s); err != nil || s.Token == "" {
		return s, http.StatusBadGateway, "the hub's answer carries no session token", nil
	}
	return s, resp.StatusCode, "", nil
}

// problemError is a problem to show the browser as it is.
type problemError struct {
	status       int
	code, detail string
}

func (p *problemError) Error() string { return p.detail }

// setSession has the REST API set its session cookie (POST /api/v1/session),
// so the cookie is exactly the one it reads; an API without that route gets
// the same cookie from here.
func (h *Handler) setSession(w http.ResponseWriter, r *http.Request, s hubSession) error {
	c, err := h.api.Call(r.Context(), r, http.MethodPost, "/api/v1/session", map[string]string{"token": s.Token})
	if err != nil {
		return err
	}
	switch {
	case c.Status/100 == 2:
		for _, v := range c.Header().Values("Set-Cookie") {
			w.Header().Add("Set-Cookie", v)
		}
		if len(c.Header().Values("Set-Cookie")) == 0 {
			h.setCookie(w, r, s.Token, s.ExpiresAt)
		}
		return nil
	case c.Status == http.StatusNotFound || c.Status == http.StatusMethodNotAllowed:
		h.setCookie(w, r, s.Token, s.ExpiresAt)
		return nil
	}
	var p struct{ Detail string }
	_ = json.Unmarshal(c.Body.Bytes(), &p)
	return &problemError{status: c.Status, code: "session_refused",
		detail: "The hub signed you in, but this agent refused the session: " + p.Detail + ". If the agent has just connected, wait a few seconds and sign in again."}
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, value string, expires time.Time) {
	c := &http.Cookie{Name: h.cookie, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if value == "" {
		c.MaxAge = -1
	} else if !expires.IsZero() {
		c.Expires = expires
	}
	http.SetCookie(w, c)
}

func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	c, err := h.api.Call(r.Context(), r, http.MethodDelete, "/api/v1/session", nil)
	if err == nil && c.Status/100 == 2 && len(c.Header().Values("Set-Cookie")) > 0 {
		for _, v := range c.Header().Values("Set-Cookie") {
			w.Header().Add("Set-Cookie", v)
		}
	} else {
		h.setCookie(w, r, "", time.Time{})
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
