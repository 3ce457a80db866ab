package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"ferry.dev/hub/internal/agenttest"
	"ferry.dev/hub/internal/api"
	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/auth"
	"ferry.dev/hub/internal/link"
)

// mtlsHub drives a TLS hub through its REST API and link, as an admin and
// as agents with or without client certificates.
type mtlsHub struct {
	t   *testing.T
	pki *testPKI
	url string // https://host:port of the hub running now
}

// call makes a REST call with client and returns the status and body.
func (h *mtlsHub) call(client *http.Client, method, path, token, body string) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// admin makes a REST call as the platform admin, without a client
// certificate, and decodes the wanted answer into out.
func (h *mtlsHub) admin(want int, method, path, body string, out any) {
	h.t.Helper()
	st, b := h.call(tlsClient(h.pki.caPool, nil), method, path, tlsAdminToken, body)
	if st != want {
		h.t.Fatalf("%s %s: %d %s, want %d", method, path, st, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// linkToken creates an environment and a link token for it.
func (h *mtlsHub) linkToken(env string) (envID, token string) {
	h.t.Helper()
	h.admin(201, "POST", "/api/v1/orgs/acme/environments", `{"name":"`+env+`"}`, nil)
	var lt api.LinkTokenDTO
	h.admin(201, "POST", "/api/v1/orgs/acme/environments/"+env+"/link-tokens", `{}`, &lt)
	return lt.EnvID, lt.Token
}

// enroll trades a link token for a credential, presenting cert (nil: none).
func (h *mtlsHub) enroll(token string, cert *tls.Certificate) api.EnrollResponse {
	h.t.Helper()
	st, b := h.call(tlsClient(h.pki.caPool, cert), "POST", "/api/v1/link/enroll", token, `{"agentVersion":"test","hostname":"apim"}`)
	var e api.EnrollResponse
	if st != http.StatusCreated || json.Unmarshal(b, &e) != nil || e.Credential == "" {
		h.t.Fatalf("enroll: %d %s, want 201 with a credential", st, b)
	}
	return e
}

// dial opens the link with credential, presenting cert (nil: none), and
// says hello.
func (h *mtlsHub) dial(credential string, cert *tls.Certificate) (*agenttest.Conn, error) {
	tc := &tls.Config{RootCAs: h.pki.caPool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return (&agenttest.Agent{Credential: credential, TLS: tc}).Dial(h.t.Context(), h.url)
}

// linked checks that the link of credential, presenting cert, is upgraded
// and answered as installation id.
func (h *mtlsHub) linked(what, credential string, cert *tls.Certificate, id string) {
	h.t.Helper()
	c, err := h.dial(credential, cert)
	if err != nil {
		h.t.Fatalf("%s: %v, want a link", what, err)
	}
	defer c.Close()
	if got := c.HelloReply().InstallationID; got != id {
		h.t.Errorf("%s: hello reply for installation %s, want %s", what, got, id)
	}
}

// refused checks that the link of credential, presenting cert, is refused
// before the upgrade with status and code, and returns the problem.
func (h *mtlsHub) refused(what, credential string, cert *tls.Certificate, status int, code string) api.Problem {
	h.t.Helper()
	c, err := h.dial(credential, cert)
	if err == nil {
		c.Close()
		h.t.Fatalf("%s: the link was upgraded (101), want %d %s before any WebSocket", what, status, code)
	}
	var he *agenttest.HandshakeError
	if !errors.As(err, &he) {
		h.t.Fatalf("%s: %v, want the hub's answer to the upgrade", what, err)
	}
	var p api.Problem
	if he.StatusCode != status || json.Unmarshal([]byte(he.Body), &p) != nil || p.Code != code {
		h.t.Fatalf("%s: upgrade answered %d %s, want %d %s", what, he.StatusCode, he.Body, status, code)
	}
	return p
}

// mismatches returns the organization's LINK_CLIENT_CERTIFICATE_MISMATCH
// audit entries.
func (h *mtlsHub) mismatches() []api.AuditEntryDTO {
	h.t.Helper()
	var page api.AuditPage
	h.admin(200, "GET", "/api/v1/orgs/acme/audit?event="+url.QueryEscape(audit.LinkClientCertMismatch), "", &page)
	return page.Items
}

// installations lists the organization's installations by id.
func (h *mtlsHub) installations() map[string]api.InstallationDTO {
	h.t.Helper()
	var l api.List[api.InstallationDTO]
	h.admin(200, "GET", "/api/v1/orgs/acme/installations", "", &l)
	out := map[string]api.InstallationDTO{}
	for _, i := range l.Items {
		out[i.ID] = i
	}
	return out
}

// keyHash is the hash of cert's key as the hub records it.
func keyHash(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return auth.KeyHash(leaf)
}

func newClientKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestClientCertBinding is row C8 of shared/reference/reliability.md: with
// mTLS, an installation is bound to the key of the client certificate it
// enrolled with. Env A's agent presenting its own (CA-signed) certificate
// with env B's credential is refused at the handshake with 403, before any
// 101, and the refusal is audited and counted; B's certificate, and A's
// certificate re-issued for the same key, still link. An installation
// enrolled without a client certificate binds nothing, and a bound one is
// refused without its certificate even when the hub stops asking for one.
func TestClientCertBinding(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	keyA := newClientKey(t)
	certA := pki.clientCert(t, 10, "apim-env-a", keyA)
	certB := pki.clientCert(t, 11, "apim-env-b", newClientKey(t))
	renewedA := pki.clientCert(t, 12, "apim-env-a (renewed)", keyA)
	if keyHash(t, renewedA) != keyHash(t, certA) || keyHash(t, certB) == keyHash(t, certA) {
		t.Fatal("test certificates: A's renewal must share A's key, B must have its own")
	}

	dir := t.TempDir()
	srv, stop := startTLSHubIn(t, pki, true, dir)
	h := &mtlsHub{t: t, pki: pki, url: "https://" + srv.Addr()}
	h.admin(201, "POST", "/api/v1/orgs", `{"name":"acme"}`, nil)
	_, tokA := h.linkToken("A")
	envB, tokB := h.linkToken("B")
	instA := h.enroll(tokA, &certA)
	instB := h.enroll(tokB, &certB)

	insts := h.installations()
	for _, tc := range []struct {
		id   string
		cert tls.Certificate
	}{{instA.InstallationID, certA}, {instB.InstallationID, certB}} {
		if i := insts[tc.id]; !i.ClientCertBound || i.ClientKeySHA256 != keyHash(t, tc.cert) {
			t.Errorf("installation %s listed as bound %v to key %q, want bound to %s", tc.id, i.ClientCertBound, i.ClientKeySHA256, keyHash(t, tc.cert))
		}
	}

	// C8: A's certificate with B's credential.
	p := h.refused("A's certificate, B's credential", instB.Credential, &certA, http.StatusForbidden, link.CodeClientCertificateMismatch)
	if want := "this installation enrolled with another client certificate key; present it, or re-enroll"; p.Detail != want {
		t.Errorf("refusal detail %q, want %q", p.Detail, want)
	}
	entries := h.mismatches()
	if len(entries) != 1 {
		t.Fatalf("%d %s audit entries after the refusal, want 1: %+v", len(entries), audit.LinkClientCertMismatch, entries)
	}
	e := entries[0]
	if e.Actor != "peer:127.0.0.1" || e.EnvID != envB || !strings.Contains(e.Detail, instB.InstallationID) ||
		!strings.Contains(e.Detail, keyHash(t, certA)) || !strings.Contains(e.Detail, keyHash(t, certB)) {
		t.Errorf("audit entry %+v: want actor peer:127.0.0.1, env %s, and a detail naming installation %s, the key presented and the key enrolled",
			e, envB, instB.InstallationID)
	}
	if strings.Contains(e.Detail, instB.Credential) {
		t.Error("the audit entry carries the credential")
	}
	st, metrics := h.call(tlsClient(pki.caPool, nil), "GET", "/metrics", "", "")
	if want := `ferry_hub_link_handshake_failures_total{reason="client_certificate_mismatch"} 1`; st != 200 || !bytes.Contains(metrics, []byte(want)) {
		t.Errorf("/metrics (%d) lacks %s", st, want)
	}

	h.linked("B's certificate, B's credential", instB.Credential, &certB, instB.InstallationID)
	h.linked("A's certificate re-issued for the same key, A's credential", instA.Credential, &renewedA, instA.InstallationID)
	h.refused("B's certificate, A's credential", instA.Credential, &certB, http.StatusForbidden, link.CodeClientCertificateMismatch)

	// Without --client-ca the handshake asks for no certificate: an agent
	// enrolled then binds nothing and links as before, and a bound one is
	// refused, since it can no longer prove its key.
	stop()
	srv, stop = startTLSHubIn(t, pki, false, dir)
	h.url = "https://" + srv.Addr()
	_, tokC := h.linkToken("C")
	instC := h.enroll(tokC, nil)
	if i := h.installations()[instC.InstallationID]; i.ClientCertBound || i.ClientKeySHA256 != "" {
		t.Errorf("installation enrolled without a client certificate listed as bound: %+v", i)
	}
	h.linked("unbound, no certificate", instC.Credential, nil, instC.InstallationID)
	p = h.refused("bound, no certificate", instB.Credential, nil, http.StatusForbidden, link.CodeClientCertificateMismatch)
	if !strings.Contains(p.Detail, "presented none") {
		t.Errorf("refusal detail %q, want it to say no certificate was presented", p.Detail)
	}
	if entries := h.mismatches(); len(entries) != 3 || !strings.Contains(entries[2].Detail, "no client certificate") {
		t.Errorf("audit after the link without a certificate: %+v, want a third %s entry saying none was presented", entries, audit.LinkClientCertMismatch)
	}

	// With --client-ca again: the unbound installation links with any
	// certificate of the CA, as before the binding existed, and the bound
	// ones still need their own.
	stop()
	srv, _ = startTLSHubIn(t, pki, true, dir)
	h.url = "https://" + srv.Addr()
	h.linked("unbound, A's certificate", instC.Credential, &certA, instC.InstallationID)
	h.refused("unbound, no certificate", instC.Credential, nil, http.StatusUnauthorized, "client_certificate_required")
	h.linked("B's certificate after restarts", instB.Credential, &certB, instB.InstallationID)
	h.refused("A's certificate, B's credential, after restarts", instB.Credential, &certA, http.StatusForbidden, link.CodeClientCertificateMismatch)
}
