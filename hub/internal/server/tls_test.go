package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry.dev/hub/internal/api"
	"ferry.dev/hub/internal/config"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files in a temp dir.
type testPKI struct {
	caPool                *x509.CertPool
	caFile                string
	serverCert, serverKey string
	client                tls.Certificate
	strangerCA            *x509.CertPool // another CA, which signed nothing here
	ca                    *x509.Certificate
	caKey                 *ecdsa.PrivateKey
}

// clientCert issues a client certificate for key, signed by the CA.
func (p *testPKI) clientCert(t *testing.T, serial int64, cn string, key *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ferry test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	p := &testPKI{caPool: x509.NewCertPool(), strangerCA: x509.NewCertPool(), ca: ca, caKey: caKey}
	p.caPool.AddCert(ca)
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	sDER, sKey := issue(2, "hub", x509.ExtKeyUsageServerAuth)
	p.serverCert = write("hub.pem", "CERTIFICATE", sDER)
	kb, _ := x509.MarshalECPrivateKey(sKey)
	p.serverKey = write("hub-key.pem", "EC PRIVATE KEY", kb)
	cDER, cKey := issue(3, "agent", x509.ExtKeyUsageClientAuth)
	p.client = tls.Certificate{Certificate: [][]byte{cDER}, PrivateKey: cKey}
	other := *caTmpl
	other.Subject.CommonName = "stranger CA"
	oKey := newKey()
	oDER, _ := x509.CreateCertificate(rand.Reader, &other, &other, &oKey.PublicKey, oKey)
	oc, _ := x509.ParseCertificate(oDER)
	p.strangerCA.AddCert(oc)
	return p
}

// tlsAdminToken is the platform admin's token of the TLS hubs.
const tlsAdminToken = "tls-test-admin-token-0123456789"

// startTLSHub runs the real hub (SQLite store) over TLS on a free port.
func startTLSHub(t *testing.T, pki *testPKI, clientCA bool) string {
	t.Helper()
	s, _ := startTLSHubIn(t, pki, clientCA, t.TempDir())
	return "https://" + s.Addr()
}

// startTLSHubIn runs the real hub over TLS with its store in dir. stop shuts
// it down (to start another hub on dir); the test's cleanup calls it too.
func startTLSHubIn(t *testing.T, pki *testPKI, clientCA bool, dir string) (s *Server, stop func()) {
	t.Helper()
	cfg := config.Default()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", dir
	cfg.AdminToken = tlsAdminToken
	cfg.TLSCert, cfg.TLSKey = pki.serverCert, pki.serverKey
	if clientCA {
		cfg.ClientCA = pki.caFile
	}
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	t.Cleanup(stop)
	return s, stop
}

func tlsClient(roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

// TestTLS runs the hub over TLS: clients that trust its CA get through,
// others refuse its certificate, plain HTTP gets nothing, and with a client
// CA the agents' routes require a client certificate while the REST API
// does not.
func TestTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	get := func(c *http.Client, method, url string) (int, string, error) {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(`{"agentVersion":"1"}`)
		}
		req, _ := http.NewRequestWithContext(t.Context(), method, url, body)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer lnk_bogus")
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		var p api.Problem
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &p)
		return resp.StatusCode, p.Code, nil
	}

	t.Run("server certificate", func(t *testing.T) {
		t.Parallel()
		url := startTLSHub(t, pki, false)
		if st, _, err := get(tlsClient(pki.caPool, nil), "GET", url+"/healthz"); err != nil || st != 200 {
			t.Errorf("with the CA: %d %v, want 200", st, err)
		}
		_, _, err := get(tlsClient(pki.strangerCA, nil), "GET", url+"/healthz")
		var uae x509.UnknownAuthorityError
		if !errors.As(err, &uae) {
			t.Errorf("without the CA: %v, want an unknown-authority error", err)
		}
		if st, _, err := get(&http.Client{Timeout: 5 * time.Second}, "GET", strings.Replace(url, "https:", "http:", 1)+"/healthz"); err == nil && st == 200 {
			t.Error("plain HTTP on the TLS listener answered 200")
		}
	})
	t.Run("client CA", func(t *testing.T) {
		t.Parallel()
		url := startTLSHub(t, pki, true)
		noCert, withCert := tlsClient(pki.caPool, nil), tlsClient(pki.caPool, &pki.client)
		for _, r := range []struct{ method, path string }{{"GET", "/api/v1/link"}, {"POST", "/api/v1/link/enroll"}} {
			if st, code, err := get(noCert, r.method, url+r.path); err != nil || st != 401 || code != "client_certificate_required" {
				t.Errorf("%s %s without a client certificate: %d %q %v, want 401 client_certificate_required", r.method, r.path, st, code, err)
			}
			// With the certificate the request reaches the credential check.
			if st, code, err := get(withCert, r.method, url+r.path); err != nil || code == "client_certificate_required" {
				t.Errorf("%s %s with a client certificate: %d %q %v, want past the certificate check", r.method, r.path, st, code, err)
			}
		}
		if st, _, err := get(noCert, "GET", url+"/healthz"); err != nil || st != 200 {
			t.Errorf("REST without a client certificate: %d %v, want 200", st, err)
		}
		// A certificate from another CA, forced on the hub, fails the
		// handshake itself.
		mallory := selfSigned(t)
		forced := tlsClient(pki.caPool, nil)
		forced.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &mallory, nil
		}
		if st, code, err := get(forced, "GET", url+"/api/v1/link"); err == nil {
			t.Errorf("a client certificate of another CA got an answer: %d %q", st, code)
		}
	})
}

// selfSigned is a self-signed client certificate.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "mallory"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}
