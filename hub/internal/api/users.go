package api

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/ids"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// UserDTO is a user on the wire; the password hash never leaves the hub.
type UserDTO struct {
	ID          string    `json:"id"`
	OrgID       string    `json:"orgId"`
	Username    string    `json:"username"`
	DisplayName string    `json:"displayName,omitempty"`
	Disabled    bool      `json:"disabled"`
	HasPassword bool      `json:"hasPassword"`
	CreatedAt   time.Time `json:"createdAt"`
}

// CreateUserRequest is the body of POST /orgs/{org}/users. Usernames are
// case-insensitive (stored in lower case). An empty password makes a user
// who cannot sign in with a password (a robot acting through tokens).
type CreateUserRequest struct {
	Username    string `json:"username"`
	DisplayName string `json:"displayName,omitempty"`
	Password    string `json:"password,omitempty"`
}

// UpdateUserRequest is the body of PATCH /orgs/{org}/users/{user}; absent
// fields are kept.
type UpdateUserRequest struct {
	DisplayName *string `json:"displayName,omitempty"`
	Disabled    *bool   `json:"disabled,omitempty"`
	Password    *string `json:"password,omitempty"`
}

// TokenDTO is a personal access token, without its secret.
type TokenDTO struct {
	ID         string     `json:"id"`
	UserID     string     `json:"userId"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"` // to about a minute
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`  // absent: never
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
}

// CreateTokenRequest is the body of POST /orgs/{org}/tokens.
type CreateTokenRequest struct {
	UserID string `json:"userId"` // id or username
	Name   string `json:"name"`
	// ExpiresInSeconds is the token's lifetime; 0 means it never expires.
	ExpiresInSeconds int64 `json:"expiresInSeconds,omitempty"`
}

// CreatedTokenDTO is a new token; Token, the secret, is shown only once.
type CreatedTokenDTO struct {
	TokenDTO
	Token string `json:"token"`
}

// MaxTokenTTL bounds a personal access token's lifetime when one is given.
const MaxTokenTTL = 366 * 24 * time.Hour

// MinPassword is the shortest password accepted.
const MinPassword = 10

var usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._@+-]{0,127}$`)

func userDTO(u state.User) UserDTO {
	return UserDTO{ID: u.ID, OrgID: u.OrgID, Username: u.Username, DisplayName: u.DisplayName, Disabled: u.Disabled,
		HasPassword: u.PasswordHash != "", CreatedAt: u.CreatedAt}
}

func tokenDTO(t state.APIToken) TokenDTO {
	return TokenDTO{ID: t.ID, UserID: t.UserID, Name: t.Name, CreatedAt: t.CreatedAt,
		LastUsedAt: optTime(t.LastUsedAt), ExpiresAt: optTime(t.ExpiresAt), RevokedAt: optTime(t.RevokedAt)}
}

// validDisplayName checks a person's name: at most 128 bytes of printable
// UTF-8.
func validDisplayName(s string) error {
	if len(s) > 128 || !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return protocol.Errorf(protocol.CodeInvalid, "displayName must be at most 128 bytes of printable text")
	}
	return nil
}

// hashPassword checks a new password's length and hashes it.
func (a *API) hashPassword(pw string) (string, error) {
	if len(pw) < MinPassword || len(pw) > auth.MaxPassword {
		return "", protocol.Errorf(protocol.CodeInvalid, fmt.Sprintf("password must be %d to %d bytes", MinPassword, auth.MaxPassword))
	}
	return auth.HashPassword(pw, a.argon2)
}

// userParam loads the organization's user named by :user (id or username).
func (a *API) userParam(c *gin.Context, idOrUsername string) (state.User, error) {
	u, err := a.store.User(c.Request.Context(), orgOf(c).ID, strings.ToLower(idOrUsername))
	if errors.Is(err, state.ErrNotFound) {
		return state.User{}, protocol.Errorf(protocol.CodeNotFound, "no such user in this organization")
	}
	return u, err
}

func (a *API) createUser(c *gin.Context) {
	var req CreateUserRequest
	if err := decode(c, &req); err != nil {
		a.fail(c, err)
		return
	}
	req.Username = strings.ToLower(req.Username)
	if !usernameRE.MatchString(req.Username) {
		a.problem(c, protocol.CodeInvalid, "username must be 1-128 letters, digits, '.', '_', '@', '+' or '-', starting with a letter or digit")
		return
	}
	if err := validDisplayName(req.DisplayName); err != nil {
		a.fail(c, err)
		return
	}
	o := orgOf(c)
	u := state.User{ID: ids.New("usr"), OrgID: o.ID, Username: req.Username, DisplayName: req.DisplayName,
		CreatedAt: a.authority.Now().UTC().Truncate(time.Millisecond)}
	if req.Password != "" {
		h, err := a.hashPassword(req.Password)
		if err != nil {
			a.fail(c, err)
			return
		}
		u.PasswordHash = h
	}
	done, err := a.auditFirst(c, audit.Event{OrgID: o.ID, Event: audit.UserCreated, Actor: principal(c).Actor(), Detail: "user " + u.Username + " (" + u.ID + ")"})
	if err != nil {
		a.fail(c, err)
		return
	}
	err = a.store.CreateUser(c.Request.Context(), u)
	if errors.Is(err, state.ErrConflict) {
		err = protocol.Errorf(protocol.CodeConflict, "username "+u.Username+" is taken in this organization")
	}
	if done(err); err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, userDTO(u))
}

func (a *API) listUsers(c *gin.Context) {
	users, err := a.store.ListUsers(c.Request.Context(), orgOf(c).ID)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := List[UserDTO]{Items: []UserDTO{}}
	for _, u := range users {
		out.Items = append(out.Items, userDTO(u))
	}
	sendPage(a, c, out.Items)
}

func (a *API) getUser(c *gin.Context) {
	u, err := a.userParam(c, c.Param("user"))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, userDTO(u))
}

func (a *API) updateUser(c *gin.Context) {
	var req UpdateUserRequest
	if err := decode(c, &req); err != nil {
		a.fail(c, err)
		return
	}
	u, err := a.userParam(c, c.Param("user"))
	if err != nil {
		a.fail(c, err)
		return
	}
	up := state.UserUpdate{DisplayName: req.DisplayName, Disabled: req.Disabled}
	var changed []string
	if req.DisplayName != nil {
		if err := validDisplayName(*req.DisplayName); err != nil {
			a.fail(c, err)
			return
		}
		changed = append(changed, "display name")
	}
	if req.Disabled != nil {
		changed = append(changed, fmt.Sprintf("disabled=%v", *req.Disabled))
	}
	if req.Password != nil {
		if up.PasswordHash, err = a.hashPassword(*req.Password); err != nil {
			a.fail(c, err)
			return
		}
		changed = append(changed, "password")
	}
	done := func(error) {}
	if len(changed) > 0 {
		if done, err = a.auditFirst(c, audit.Event{OrgID: u.OrgID, Event: audit.UserUpdated, Actor: principal(c).Actor(),
			Detail: "user " + u.Username + ": " + strings.Join(changed, ", ")}); err != nil {
			a.fail(c, err)
			return
		}
	}
	u, err = a.store.UpdateUser(c.Request.Context(), u.OrgID, u.ID, up)
	if done(err); err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, userDTO(u))
}

func (a *API) deleteUser(c *gin.Context) {
	u, err := a.userParam(c, c.Param("user"))
	if err != nil {
		a.fail(c, err)
		return
	}
	done, err := a.auditFirst(c, audit.Event{OrgID: u.OrgID, Event: audit.UserDeleted, Actor: principal(c).Actor(), Detail: "user " + u.Username + " (" + u.ID + ")"})
	if err != nil {
		a.fail(c, err)
		return
	}
	if err := a.store.DeleteUser(c.Request.Context(), u.OrgID, u.ID); err != nil {
		done(err)
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (a *API) createToken(c *gin.Context) {
	var req CreateTokenRequest
	if err := decode(c, &req); err != nil {
		a.fail(c, err)
		return
	}
	if err := validName("name", req.Name); err != nil {
		a.fail(c, err)
		return
	}
	ttl := time.Duration(req.ExpiresInSeconds) * time.Second
	if req.ExpiresInSeconds < 0 || req.ExpiresInSeconds > int64(MaxTokenTTL/time.Second) {
		a.problem(c, protocol.CodeInvalid, "expiresInSeconds must be between 0 (never) and 31622400 (366 days)")
		return
	}
	if req.UserID == "" {
		a.problem(c, protocol.CodeInvalid, "userId is required")
		return
	}
	u, err := a.userParam(c, req.UserID)
	if err != nil {
		a.fail(c, err)
		return
	}
	secret, err := auth.New(auth.KindAPIToken)
	if err != nil {
		a.fail(c, err)
		return
	}
	now := a.authority.Now().UTC().Truncate(time.Millisecond)
	t := state.APIToken{ID: ids.New("tok"), Hash: auth.Hash(string(secret)), OrgID: u.OrgID, UserID: u.ID, Name: req.Name, CreatedAt: now}
	if ttl > 0 {
		t.ExpiresAt = now.Add(ttl)
	}
	done, err := a.auditFirst(c, audit.Event{OrgID: u.OrgID, Event: audit.TokenCreated, Actor: principal(c).Actor(),
		Detail: fmt.Sprintf("token %s (%s) for user %s", t.Name, t.ID, u.Username)})
	if err != nil {
		a.fail(c, err)
		return
	}
	if err := a.store.CreateAPIToken(c.Request.Context(), t); err != nil {
		done(err)
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, CreatedTokenDTO{TokenDTO: tokenDTO(t), Token: string(secret)})
}

func (a *API) listTokens(c *gin.Context) {
	o := orgOf(c)
	userID := ""
	if v := c.Query("userId"); v != "" {
		u, err := a.userParam(c, v)
		if err != nil {
			a.fail(c, err)
			return
		}
		userID = u.ID
	}
	toks, err := a.store.ListAPITokens(c.Request.Context(), o.ID, userID)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := List[TokenDTO]{Items: []TokenDTO{}}
	for _, t := range toks {
		out.Items = append(out.Items, tokenDTO(t))
	}
	sendPage(a, c, out.Items)
}

func (a *API) revokeToken(c *gin.Context) {
	o := orgOf(c)
	done, err := a.auditFirst(c, audit.Event{OrgID: o.ID, Event: audit.TokenRevoked, Actor: principal(c).Actor(), Detail: "token " + c.Param("id")})
	if err != nil {
		a.fail(c, err)
		return
	}
	t, err := a.store.RevokeAPIToken(c.Request.Context(), o.ID, c.Param("id"), a.authority.Now().UTC())
	if done(err); err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, tokenDTO(t))
}
