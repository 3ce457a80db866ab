package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"testing"
	"time"
)

// TestClientKeyHash: the hash names the key, not the certificate, and only
// a verified leaf counts.
func TestClientKeyHash(t *testing.T) {
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	cert := func(serial int64, cn string, k *ecdsa.PrivateKey) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ka, kb := newKey(), newKey()
	a, reissued, b := cert(1, "env-a", ka), cert(2, "env-a renewed", ka), cert(3, "env-b", kb)

	spki, err := x509.MarshalPKIXPublicKey(&ka.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(spki)
	if got, want := KeyHash(a), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("KeyHash = %s, want the SHA-256 of the SubjectPublicKeyInfo %s", got, want)
	}
	if KeyHash(reissued) != KeyHash(a) {
		t.Error("a certificate re-issued for the same key hashes differently")
	}
	if KeyHash(b) == KeyHash(a) {
		t.Error("certificates of two keys hash alike")
	}

	for _, tc := range []struct {
		name string
		cs   *tls.ConnectionState
		want string
	}{
		{"no TLS", nil, ""},
		{"no client certificate", &tls.ConnectionState{}, ""},
		{"presented but not verified", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{a}}, ""},
		{"verified", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{b}, VerifiedChains: [][]*x509.Certificate{{b, a}}}, KeyHash(b)},
	} {
		if got := ClientKeyHash(tc.cs); got != tc.want {
			t.Errorf("%s: ClientKeyHash = %q, want %q", tc.name, got, tc.want)
		}
	}
}
