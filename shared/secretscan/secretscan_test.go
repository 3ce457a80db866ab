package secretscan

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestScan(t *testing.T) {
	const pem = `-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----`
	tests := []struct {
		name string
		def  string
		want []Finding
	}{
		// Flagged.
		{"authorization header entry", `{"api":{"proxy":{"headers":[{"name":"X-Trace","value":"1"},{"name":"Authorization","value":"Bearer s3cr3t"}]}}}`,
			[]Finding{{Pointer: "/api/proxy/headers/1/value", Kind: Authorization}}},
		{"proxy-authorization, any case", `{"headers":[{"value":"Basic dXNlcjpwdw==","name":"proxy-authorization"}]}`,
			[]Finding{{Pointer: "/headers/0/value", Kind: Authorization}}},
		{"authorization in a header map", `{"headers":{"Accept":"*/*","Authorization":"Basic dXNlcjpwdw=="}}`,
			[]Finding{{Pointer: "/headers/Authorization", Kind: Authorization}}},
		{"password property", `{"api":{"properties":[{"key":"password","value":"hunter2","encrypted":false}]}}`,
			[]Finding{{Pointer: "/api/properties/0/value", Kind: Password}}},
		{"keystore password", `{"ssl":{"keyStore":{"type":"PKCS12","path":"/x.p12","password":"changeit"}}}`,
			[]Finding{{Pointer: "/ssl/keyStore/password", Kind: Password}}},
		{"secret-like names", `{"clientSecret":"a","client_secret":"b","secretKey":"c","oauth":{"accessToken":"d"},"proxyPassword":"e","passphrase":"f"}`,
			[]Finding{{"/clientSecret", "", Secret}, {"/client_secret", "", Secret}, {"/secretKey", "", Secret},
				{"/oauth/accessToken", "", Secret}, {"/proxyPassword", "", Password}, {"/passphrase", "", Password}}},
		{"api key header entry", `{"headers":[{"name":"X-Api-Key","value":"k-123"}]}`,
			[]Finding{{Pointer: "/headers/0/value", Kind: Secret}}},
		{"private key in any string", `{"tls":{"cert":"` + pem + `"}}`,
			[]Finding{{Pointer: "/tls/cert", Kind: PrivateKey}}},
		{"private key in a privateKey field, once", `{"privateKey":"` + pem + `","properties":[{"key":"privateKey","value":"` + pem + `"}]}`,
			[]Finding{{Pointer: "/privateKey", Kind: PrivateKey}, {Pointer: "/properties/0/value", Kind: PrivateKey}}},
		{"private key in an array", `{"keys":["plain","-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbg=="]}`,
			[]Finding{{Pointer: "/keys/1", Kind: PrivateKey}}},
		{"pointer escaping", `{"a/b":{"c~d":{"password":"x"}}}`,
			[]Finding{{Pointer: "/a~1b/c~0d/password", Kind: Password}}},
		{"JSON text of a shared configuration", `{"endpointGroups":[{"sharedConfiguration":"{\"headers\":[{\"name\":\"Authorization\",\"value\":\"Bearer abc\"}]}"}]}`,
			[]Finding{{Pointer: "/endpointGroups/0/sharedConfiguration", Embedded: "/headers/0/value", Kind: Authorization}}},
		{"duplicate key, the first holds the secret", `{"password":"hunter2","password":""}`,
			[]Finding{{Pointer: "/password", Kind: Password}}},
		{"plaintext around a reference", `{"password":"pre-{#properties['x']}","headers":{"Authorization":"Bearer abc{#x}"}}`,
			[]Finding{{Pointer: "/password", Kind: Password}, {Pointer: "/headers/Authorization", Kind: Authorization}}},
		{"secret at the root", `"` + pem + `"`, []Finding{{Pointer: "", Kind: PrivateKey}}},

		// Accepted.
		{"secret references", `{"headers":[{"name":"Authorization","value":"{{secret:backend-auth}}"}],"password":"{{ secret:db }}"}`, nil},
		{"gravitee expressions", `{"headers":[{"name":"Authorization","value":"Bearer {#secrets.get('/vault/secret/api', 'token')}"}],` +
			`"password":"{#properties['pwd']}","clientSecret":"{#api.properties['cs']}","apiKey":"{#context.attributes['key']}"}`, nil},
		{"empty values", `{"password":"","headers":[{"name":"Authorization","value":"  "}]}`, nil},
		{"encrypted property", `{"properties":[{"key":"password","value":"c2VhbGVk","encrypted":true,"dynamic":false}]}`, nil},
		{"scheme alone", `{"headers":[{"name":"Authorization","value":"Bearer"}]}`, nil},
		{"other headers and names", `{"headers":[{"name":"Content-Type","value":"application/json"}],"passwordPolicy":"strict","tokenUrl":"https://idp/token",` +
			`"tokenHeaderName":"Authorization","removeHeaders":["Authorization"],"password":null,"secret":true,"pin":1234}`, nil},
		{"names as values", `{"securitySchemes":{"api_key":{"type":"apiKey","name":"x-api-key","in":"header"}}}`, nil},
		{"public PEM blocks", `{"cert":"-----BEGIN CERTIFICATE-----\nMIIB","pub":"-----BEGIN PUBLIC KEY-----\nMIIB"}`, nil},
		{"JSON text of a documentation page", `{"pages":[{"content":"{\"password\":\"example\"}"}]}`, nil},
		{"JSON text without secrets", `{"sharedConfiguration":"{\"headers\":[{\"name\":\"Foo\",\"value\":\"Bar\"}]}"}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Scan([]byte(tc.def))
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Scan(%s)\n got %v\nwant %v", tc.def, got, tc.want)
			}
		})
	}
}

func TestScanInvalid(t *testing.T) {
	for _, def := range []string{``, `{`, `{"a":1} {}`, `{"a":}`} {
		if got, err := Scan([]byte(def)); err == nil {
			t.Errorf("Scan(%q) = %v, nil; want an error", def, got)
		}
	}
}

func TestFindingString(t *testing.T) {
	for f, want := range map[Finding]string{
		{Pointer: "/api/properties/0/value", Kind: Password}:                                 "password property at /api/properties/0/value",
		{Pointer: "/sharedConfiguration", Embedded: "/headers/0/value", Kind: Authorization}: "authorization header at /sharedConfiguration (in its JSON text, at /headers/0/value)",
	} {
		if got := f.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

// TestScanSamples checks the real Gravitee exports of shared/reference and
// Ferry's dev seeds: the only secrets in them are the TCP sample's
// plaintext keystore and truststore passwords.
func TestScanSamples(t *testing.T) {
	want := map[string][]Finding{
		"v4-tcp-proxy-console-export-members-pages-plans.json": {
			{Pointer: "/api/endpointGroups/0/sharedConfiguration/ssl/truststore/password", Kind: Password},
			{Pointer: "/api/endpointGroups/0/sharedConfiguration/ssl/keystore/password", Kind: Password},
			{Pointer: "/api/endpointGroups/0/endpoints/0/sharedConfigurationOverride/ssl/keyStore/password", Kind: Password},
			{Pointer: "/api/endpointGroups/0/endpoints/0/sharedConfigurationOverride/ssl/trustStore/password", Kind: Password},
		},
	}
	var files []string
	for _, glob := range []string{"../../../shared/reference/gravitee/samples/*.json", "../../deploy/seed/*/*.json"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 8 {
		t.Fatalf("found %d sample files, want the 5 reference samples and the dev seeds", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Scan(b)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if w := want[filepath.Base(f)]; !slices.Equal(got, w) {
			t.Errorf("%s:\n got %v\nwant %v", strings.TrimPrefix(f, "../"), got, w)
		}
	}
}
