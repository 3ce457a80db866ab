package config

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	tf := filepath.Join(dir, "tok")
	if err := os.WriteFile(tf, []byte("ferry_lt_x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"FERRY_HUB": "http://h:1", "FERRY_APIM_URL": "http://a:2/management/v2", "FERRY_LINK_TOKEN_FILE": tf}
	c, err := Load([]string{"--listen", "127.0.0.1:9999"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9999" || c.LinkToken != "ferry_lt_x" || c.APIMEnv != "DEFAULT" {
		t.Errorf("unexpected config %+v", c)
	}
}

func TestLoadRejects(t *testing.T) {
	base := map[string]string{"FERRY_HUB": "http://h:1", "FERRY_APIM_URL": "http://a:2"}
	tests := map[string]struct {
		args []string
		env  map[string]string
	}{
		"no hub":          {args: []string{"--hub", ""}},
		"bad apim url":    {args: []string{"--apim-url", "a:2"}},
		"bad listen":      {args: []string{"--listen", "x"}},
		"user and token":  {args: []string{"--apim-user", "u"}, env: map[string]string{"FERRY_APIM_TOKEN": "t"}},
		"unreadable file": {args: []string{"--link-token-file", "/"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			get := func(k string) string {
				if v, ok := tt.env[k]; ok {
					return v
				}
				return base[k]
			}
			if _, err := Load(tt.args, get, io.Discard); err == nil {
				t.Errorf("Load(%q) succeeded", tt.args)
			}
		})
	}
}

func TestHubTLS(t *testing.T) {
	base := map[string]string{"FERRY_HUB": "https://h:1", "FERRY_APIM_URL": "http://a:2"}
	getenv := func(extra map[string]string) func(string) string {
		return func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return base[k]
		}
	}
	c, err := Load(nil, getenv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if tc, err := c.HubTLS(); tc != nil || err != nil {
		t.Errorf("no TLS settings: %v %v, want nil", tc, err)
	}
	c, err = Load([]string{"--hub-ca", "/no/such/ca.pem", "--client-cert", "c.pem", "--client-key", "k.pem"}, getenv(nil), io.Discard)
	if err != nil || c.HubCA != "/no/such/ca.pem" || c.ClientCert != "c.pem" || c.ClientKey != "k.pem" {
		t.Fatalf("flags: %+v %v", c, err)
	}
	if _, err := c.HubTLS(); err == nil {
		t.Error("a missing hub CA file was accepted")
	}
	if _, err := Load(nil, getenv(map[string]string{"FERRY_CLIENT_CERT": "c.pem"}), io.Discard); err == nil {
		t.Error("a client certificate without its key was accepted")
	}
}
