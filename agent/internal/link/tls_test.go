package link_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http/httptest"
	"testing"
	"time"

	"ferry.dev/agent/internal/hubtest"
	"ferry.dev/agent/internal/link"
)

// issueClientCert makes a CA and a client certificate it signed.
func issueClientCert(t *testing.T) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agents CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "agent"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestLinkTLS links over wss to a hub whose certificate the agent trusts
// only through Config.TLS, and that requires a client certificate.
func TestLinkTLS(t *testing.T) {
	t.Parallel()
	clientCAs, clientCert := issueClientCert(t)
	startHub := func(t *testing.T) (*hubtest.Hub, *httptest.Server) {
		hub := &hubtest.Hub{}
		srv := httptest.NewUnstartedServer(hub)
		srv.TLS = &tls.Config{ClientCAs: clientCAs, ClientAuth: tls.RequireAndVerifyClientCert}
		srv.StartTLS()
		t.Cleanup(func() { hub.Close(); srv.Close() })
		return hub, srv
	}
	hubRoots := func(srv *httptest.Server) *x509.CertPool {
		p := x509.NewCertPool()
		p.AddCert(srv.Certificate())
		return p
	}
	tests := []struct {
		name   string
		tls    func(srv *httptest.Server) *tls.Config
		linked bool
	}{
		{"hub CA and client certificate", func(srv *httptest.Server) *tls.Config {
			return &tls.Config{RootCAs: hubRoots(srv), Certificates: []tls.Certificate{clientCert}}
		}, true},
		{"system roots refuse the hub's certificate", func(*httptest.Server) *tls.Config {
			return &tls.Config{Certificates: []tls.Certificate{clientCert}}
		}, false},
		{"no client certificate", func(srv *httptest.Server) *tls.Config {
			return &tls.Config{RootCAs: hubRoots(srv)}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hub, srv := startHub(t)
			c := newClient(t, hub, func(cfg *link.Config) { cfg.HubURL, cfg.TLS = srv.URL, tc.tls(srv) })
			c.run(t)
			wait := 5 * time.Second
			if !tc.linked {
				wait = 500 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := hub.WaitConn(ctx, 1)
			if linked := err == nil; linked != tc.linked {
				t.Errorf("linked = %v (%v), want %v", linked, err, tc.linked)
			}
			if !tc.linked && hub.Attempts() != 0 {
				t.Errorf("%d upgrade attempts reached the hub, want 0: TLS should refuse first", hub.Attempts())
			}
		})
	}
}
