package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/fleet"
	"ferry.dev/hub/internal/ids"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// OrgDTO is an organization on the wire.
type OrgDTO struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

// EnvironmentDTO is an environment on the wire.
type EnvironmentDTO struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"orgId"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

// CreateNameRequest is the body that creates an organization or environment.
type CreateNameRequest struct {
	Name string `json:"name"`
}

// LinkTokenRequest is the optional body of link-token creation.
type LinkTokenRequest struct {
	// ExpiresInSeconds is the token's lifetime; 0 means one hour.
	ExpiresInSeconds int64 `json:"expiresInSeconds,omitempty"`
}

// LinkTokenDTO is a freshly created link token; Token is shown only once.
type LinkTokenDTO struct {
	ID           string    `json:"id"`
	EnvID        string    `json:"envId"`
	Token        string    `json:"token"`
	ExpiresAt    time.Time `json:"expiresAt"`
	AgentCommand string    `json:"agentCommand"`
}

// InstallationDTO is an installation with its live status.
type InstallationDTO struct {
	ID           string           `json:"id"`
	Environments []EnvironmentRef `json:"environments"`
	Status       string           `json:"status"` // online | offline
	LastSeen     *time.Time       `json:"lastSeen,omitempty"`
	AgentVersion string           `json:"agentVersion"`
	Hostname     string           `json:"hostname,omitempty"`
	CreatedAt    time.Time        `json:"createdAt"`
	// ClientCertBound is true when the installation enrolled with a client
	// certificate (mTLS): its links must present a certificate with the key
	// whose SubjectPublicKeyInfo SHA-256 (hex) is ClientKeySHA256.
	ClientCertBound bool   `json:"clientCertBound"`
	ClientKeySHA256 string `json:"clientKeySha256,omitempty"`
	// CredentialRotatedAt is when the credential was last rotated; absent
	// when never.
	CredentialRotatedAt *time.Time `json:"credentialRotatedAt,omitempty"`
	// PreviousCredentialExpiresAt is when the credential the last rotation
	// replaced stops opening links (it may be past); absent when never
	// rotated.
	PreviousCredentialExpiresAt *time.Time `json:"previousCredentialExpiresAt,omitempty"`
	// CredentialPending is true while the agent has not confirmed the
	// credential of the last rotation: it gets it when it next links with
	// its old one, before PreviousCredentialExpiresAt.
	CredentialPending bool `json:"credentialPending,omitempty"`
}

// CredentialRotationDTO answers a credential rotation. The new credential
// is not in it: it goes to the agent alone.
type CredentialRotationDTO struct {
	Installation InstallationDTO `json:"installation"`
	// AgentNotified is true when the agent acknowledged the new
	// credential: it has kept it and presents it from its next link on.
	AgentNotified bool `json:"agentNotified"`
	// Detail says where the new credential is and what comes next.
	Detail string `json:"detail"`
	// PreviousCredentialExpiresAt is when the old credential stops opening
	// links; links open by then stay open.
	PreviousCredentialExpiresAt time.Time `json:"previousCredentialExpiresAt"`
}

// EnvironmentRef names an environment.
type EnvironmentRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// EnrollRequest is the body an agent sends with its link token.
type EnrollRequest struct {
	AgentVersion string `json:"agentVersion"`
	Hostname     string `json:"hostname,omitempty"`
}

// EnrollResponse carries the installation credential, shown only once.
type EnrollResponse struct {
	InstallationID string `json:"installationId"`
	OrgID          string `json:"orgId"`
	Credential     string `json:"credential"`
}

// List is a page of at most MaxPageSize items.
type List[T any] struct {
	Items []T `json:"items"`
	// NextOffset is the offset of the next page; zero (omitted) means
	// there is none.
	NextOffset int `json:"nextOffset,omitempty"`
}

func orgDTO(o state.Org) OrgDTO { return OrgDTO{ID: o.ID, Name: o.Name, CreatedAt: o.CreatedAt} }

func envDTO(e state.Environment) EnvironmentDTO {
	return EnvironmentDTO{ID: e.ID, OrgID: e.OrgID, Name: e.Name, CreatedAt: e.CreatedAt}
}

func (a *API) createOrg(c *gin.Context) {
	var req CreateNameRequest
	if err := decode(c, &req); err != nil {
		a.fail(c, err)
		return
	}
	if err := validName("name", req.Name); err != nil {
		a.fail(c, err)
		return
	}
	o := state.Org{ID: ids.New("org"), Name: req.Name, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := a.store.CreateOrg(c.Request.Context(), o); err != nil {
		a.fail(c, err)
		return
	}
	a.log.Info("organization created", "org_id", o.ID, "name", o.Name)
	c.JSON(http.StatusCreated, orgDTO(o))
}

func (a *API) listOrgs(c *gin.Context) {
	p := principal(c)
	orgs, err := a.store.ListOrgs(c.Request.Context())
	if err != nil {
		a.fail(c, err)
		return
	}
	out := List[OrgDTO]{Items: []OrgDTO{}}
	for _, o := range orgs {
		if p.Platform() || p.OrgID == o.ID {
			out.Items = append(out.Items, orgDTO(o))
		}
	}
	sendPage(a, c, out.Items)
}

func (a *API) getOrg(c *gin.Context) { c.JSON(http.StatusOK, orgDTO(orgOf(c))) }

func (a *API) createEnvironment(c *gin.Context) {
	var req CreateNameRequest
	if err := decode(c, &req); err != nil {
		a.fail(c, err)
		return
	}
	if err := validName("name", req.Name); err != nil {
		a.fail(c, err)
		return
	}
	o := orgOf(c)
	e := state.Environment{ID: ids.New("env"), OrgID: o.ID, Name: req.Name, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := a.store.CreateEnvironment(c.Request.Context(), e); err != nil {
		a.fail(c, err)
		return
	}
	a.log.Info("environment created", "org_id", o.ID, "env_id", e.ID, "name", e.Name)
	c.JSON(http.StatusCreated, envDTO(e))
}

func (a *API) listEnvironments(c *gin.Context) {
	envs, err := a.store.ListEnvironments(c.Request.Context(), orgOf(c).ID)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := List[EnvironmentDTO]{Items: []EnvironmentDTO{}}
	for _, e := range envs {
		out.Items = append(out.Items, envDTO(e))
	}
	sendPage(a, c, out.Items)
}

func (a *API) createLinkToken(c *gin.Context) {
	var req LinkTokenRequest
	if c.Request.ContentLength != 0 {
		if err := decode(c, &req); err != nil {
			a.fail(c, err)
			return
		}
	}
	if req.ExpiresInSeconds < 0 {
		a.problem(c, protocol.CodeInvalid, "expiresInSeconds must be positive")
		return
	}
	env, err := a.store.Environment(c.Request.Context(), orgOf(c).ID, c.Param("env"))
	if err != nil {
		a.fail(c, err)
		return
	}
	issued, err := a.fleet.IssueLinkToken(c.Request.Context(), env, time.Duration(req.ExpiresInSeconds)*time.Second)
	if err != nil {
		a.fail(c, err)
		return
	}
	hub := a.publicURL
	if hub == "" {
		hub = "http://" + c.Request.Host
	}
	c.JSON(http.StatusCreated, LinkTokenDTO{
		ID: issued.Token.ID, EnvID: env.ID, Token: string(issued.Secret), ExpiresAt: issued.Token.ExpiresAt,
		AgentCommand: "ferry-agent --hub " + hub + " --apim-url http://127.0.0.1:8083/management/v2 --link-token " + string(issued.Secret),
	})
}

// revokeInstallation deletes an installation and its credential and
// disconnects its agent; it answers the revoked installation.
func (a *API) revokeInstallation(c *gin.Context) {
	o := orgOf(c)
	i, err := a.fleet.Revoke(c.Request.Context(), o.ID, c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	a.record(c, audit.Event{OrgID: o.ID, Event: audit.InstallationRevoked, Actor: principal(c).Actor(),
		Detail: "installation " + i.ID + " (host " + i.Hostname + ") revoked; its agent must be linked again"})
	c.JSON(http.StatusOK, InstallationDTO{ID: i.ID, Status: "revoked", AgentVersion: i.AgentVersion, Hostname: i.Hostname, CreatedAt: i.CreatedAt,
		ClientCertBound: i.ClientKeyHash != "", ClientKeySHA256: i.ClientKeyHash})
}

// rotateCredential gives an installation a new credential, sent to its
// agent, and keeps the old one opening links until the overlap ends. It
// takes no body (or {}), is audited first and answers 202: the agent may
// get the new credential later.
func (a *API) rotateCredential(c *gin.Context) {
	if c.Request.ContentLength != 0 {
		if err := decode(c, &struct{}{}); err != nil {
			a.fail(c, err)
			return
		}
	}
	o := orgOf(c)
	// Another organization's installation is not found, like a missing
	// one, and neither is audited as rotated.
	i, ok := a.orgInstallation(c)
	if !ok {
		return
	}
	done, err := a.auditFirst(c, audit.Event{OrgID: o.ID, Event: audit.CredentialRotated, Actor: principal(c).Actor(),
		Detail: "credential of installation " + i.ID + " (host " + i.Hostname + ") rotated; the new one goes to the agent, the old one opens links until the overlap ends"})
	if err != nil {
		a.fail(c, err)
		return
	}
	r, err := a.fleet.RotateCredential(c.Request.Context(), o.ID, i.ID)
	if done(err); err != nil {
		a.fail(c, err)
		return
	}
	names := map[string]string{}
	if envs, err := a.store.ListEnvironments(c.Request.Context(), o.ID); err == nil {
		for _, e := range envs {
			names[e.ID] = e.Name
		}
	}
	c.JSON(http.StatusAccepted, CredentialRotationDTO{Installation: installationDTO(r.Installation, r.Online, names), AgentNotified: r.AgentNotified,
		Detail: r.Detail, PreviousCredentialExpiresAt: r.Installation.PreviousCredentialExpiresAt})
}

// installationDTO converts an installation; names maps environment ids to
// names (nil leaves the environments out).
func installationDTO(i state.Installation, online bool, names map[string]string) InstallationDTO {
	d := InstallationDTO{ID: i.ID, Status: "offline", AgentVersion: i.AgentVersion, Hostname: i.Hostname, CreatedAt: i.CreatedAt,
		ClientCertBound: i.ClientKeyHash != "", ClientKeySHA256: i.ClientKeyHash, CredentialPending: i.CredentialPending}
	if online {
		d.Status = "online"
	}
	if !i.LastSeen.IsZero() {
		ls := i.LastSeen
		d.LastSeen = &ls
	}
	if !i.CredentialRotatedAt.IsZero() {
		at, exp := i.CredentialRotatedAt, i.PreviousCredentialExpiresAt
		d.CredentialRotatedAt, d.PreviousCredentialExpiresAt = &at, &exp
	}
	if names != nil {
		for _, id := range i.EnvIDs {
			d.Environments = append(d.Environments, EnvironmentRef{ID: id, Name: names[id]})
		}
	}
	return d
}

func (a *API) listInstallations(c *gin.Context) {
	o := orgOf(c)
	insts, err := a.fleet.List(c.Request.Context(), o.ID)
	if err != nil {
		a.fail(c, err)
		return
	}
	envs, err := a.store.ListEnvironments(c.Request.Context(), o.ID)
	if err != nil {
		a.fail(c, err)
		return
	}
	names := make(map[string]string, len(envs))
	for _, e := range envs {
		names[e.ID] = e.Name
	}
	out := List[InstallationDTO]{Items: []InstallationDTO{}}
	for _, i := range insts {
		out.Items = append(out.Items, installationDTO(i.Installation, i.Online, names))
	}
	sendPage(a, c, out.Items)
}

// orgInstallation loads the installation named by the path's id in the
// path's organization; another organization's is not found, like a
// missing one. It answers the failure itself when ok is false.
func (a *API) orgInstallation(c *gin.Context) (i state.Installation, ok bool) {
	o, id := orgOf(c), c.Param("id")
	i, err := a.store.Installation(c.Request.Context(), id)
	if errors.Is(err, state.ErrNotFound) || (err == nil && i.OrgID != o.ID) {
		a.fail(c, protocol.Errorf(protocol.CodeNotFound, "no installation "+id))
		return state.Installation{}, false
	}
	if err != nil {
		a.fail(c, err)
		return state.Installation{}, false
	}
	return i, true
}

// ConnectionDTO is one link of an installation opening or closing.
type ConnectionDTO struct {
	Event  string    `json:"event"` // CONNECTED or DISCONNECTED
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"` // why a link closed
	Remote string    `json:"remote"`
}

// listConnections answers an installation's connection history, newest
// first (the last state.MaxConnectionEvents). Another organization's
// installation is not found, like a missing one.
func (a *API) listConnections(c *gin.Context) {
	i, ok := a.orgInstallation(c)
	if !ok {
		return
	}
	events, err := a.store.ListConnections(c.Request.Context(), i.ID, state.MaxConnectionEvents)
	if err != nil {
		a.fail(c, err)
		return
	}
	items := make([]ConnectionDTO, 0, len(events))
	for _, e := range events {
		items = append(items, ConnectionDTO{Event: e.Event, At: e.At, Reason: e.Reason, Remote: e.Remote})
	}
	sendPage(a, c, items)
}

func (a *API) enroll(c *gin.Context) {
	tok, ok := auth.Bearer(c.GetHeader("Authorization"))
	if !ok {
		a.problem(c, protocol.CodeUnauthorized, "send the link token as 'Authorization: Bearer …'")
		return
	}
	var req EnrollRequest
	if err := decode(c, &req); err != nil {
		a.fail(c, err)
		return
	}
	if req.AgentVersion == "" || len(req.AgentVersion) > 64 || len(req.Hostname) > 255 {
		a.problem(c, protocol.CodeInvalid, "agentVersion is required (at most 64 bytes); hostname at most 255 bytes")
		return
	}
	// With the hub's --client-ca, requireClientCert has seen a verified
	// client certificate: the installation is bound to its key, and links
	// presenting another are refused. Without one this is "", no binding.
	key := auth.ClientKeyHash(c.Request.TLS)
	e, err := a.fleet.Enroll(c.Request.Context(), tok, req.AgentVersion, req.Hostname, key)
	var used *fleet.LinkTokenUsedError
	if errors.As(err, &used) {
		// A copy of a spent token is in someone's hands: tell the org.
		a.record(c, audit.Event{OrgID: used.OrgID, Event: audit.LinkTokenReused, Actor: "peer:" + c.RemoteIP(), EnvID: used.EnvID,
			Detail: "link token " + used.TokenID + " presented again after it linked an agent; refused"})
		c.Header("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeProblem(c, http.StatusUnauthorized, "link_token_used", used.Error())
		return
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, EnrollResponse{InstallationID: e.Installation.ID, OrgID: e.Installation.OrgID, Credential: string(e.Credential)})
}
