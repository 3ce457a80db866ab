package config

import (
	"io"
	"testing"
	"time"
)

func TestLoadPrecedence(t *testing.T) {
	env := map[string]string{"FERRY_LISTEN": "127.0.0.1:9000", "FERRY_DATA_DIR": "/env"}
	c, err := Load([]string{"--data-dir", "/flag"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9000" || c.DataDir != "/flag" {
		t.Errorf("got listen=%s data-dir=%s; want env listen and flag data-dir", c.Listen, c.DataDir)
	}
}

func TestLoadRejects(t *testing.T) {
	tests := map[string][]string{
		"bad listen":     {"--listen", "nope"},
		"bad mongo":      {"--mongo-uri", "postgres://x"},
		"bad public url": {"--public-url", "ftp://x"},
		"bad log level":  {"--log-level", "loud"},
		"extra args":     {"extra"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Load(args, func(string) string { return "" }, io.Discard); err == nil {
				t.Errorf("Load(%q) succeeded", args)
			}
		})
	}
	if _, err := Load(nil, func(k string) string {
		if k == "FERRY_ADMIN_TOKEN" {
			return "short"
		}
		return ""
	}, io.Discard); err == nil {
		t.Error("short admin token accepted")
	}
}

func TestRateLimits(t *testing.T) {
	env := map[string]string{"FERRY_RATE_LIMIT_TOKEN": "50:100", "FERRY_RATE_LIMIT_SIGNIN": "2", "FERRY_RATE_LIMIT_LINK": "1:5"}
	c, err := Load([]string{"--rate-limit-link", "off"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := [3]RateLimit{{50, 100}, {2, 4}, {}}
	if got := [3]RateLimit{c.RateLimitToken, c.RateLimitSignIn, c.RateLimitLink}; got != want {
		t.Errorf("limits %v, want %v", got, want)
	}
	d := Default()
	if d.RateLimitToken != (RateLimit{20, 40}) || d.RateLimitSignIn != (RateLimit{5, 10}) {
		t.Errorf("defaults %v %v", d.RateLimitToken, d.RateLimitSignIn)
	}
	for _, bad := range []string{"x", "-1:2", "5:0", "5:x", "5:"} {
		if _, err := Load([]string{"--rate-limit-token", bad}, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("rate limit %q accepted", bad)
		}
	}
}

func TestTLSFlags(t *testing.T) {
	none := func(string) string { return "" }
	c, err := Load([]string{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--client-ca", "ca.pem"}, none, io.Discard)
	if err != nil || c.TLSCert != "c.pem" || c.TLSKey != "k.pem" || c.ClientCA != "ca.pem" {
		t.Errorf("flags: %+v %v", c, err)
	}
	env := map[string]string{"FERRY_TLS_CERT": "c.pem", "FERRY_TLS_KEY": "k.pem", "FERRY_CLIENT_CA": "ca.pem"}
	if c, err := Load(nil, func(k string) string { return env[k] }, io.Discard); err != nil || c.ClientCA != "ca.pem" {
		t.Errorf("env: %+v %v", c, err)
	}
	for name, args := range map[string][]string{
		"cert without key":  {"--tls-cert", "c.pem"},
		"key without cert":  {"--tls-key", "k.pem"},
		"client CA, no TLS": {"--client-ca", "ca.pem"},
	} {
		if _, err := Load(args, none, io.Discard); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestListenerSettings(t *testing.T) {
	none := func(string) string { return "" }
	if d := Default(); d.ReadHeaderTimeout != 10*time.Second || d.MetricsAddr != "" {
		t.Errorf("defaults: read-header-timeout %s, metrics-addr %q; want 10s and none", d.ReadHeaderTimeout, d.MetricsAddr)
	}
	env := map[string]string{"FERRY_METRICS_ADDR": "127.0.0.1:9100", "FERRY_READ_HEADER_TIMEOUT": "3s"}
	c, err := Load(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.MetricsAddr != "127.0.0.1:9100" || c.ReadHeaderTimeout != 3*time.Second {
		t.Errorf("env: metrics-addr %q, read-header-timeout %s, %v", c.MetricsAddr, c.ReadHeaderTimeout, err)
	}
	c, err = Load([]string{"--metrics-addr", "127.0.0.1:9200", "--read-header-timeout", "1s"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.MetricsAddr != "127.0.0.1:9200" || c.ReadHeaderTimeout != time.Second {
		t.Errorf("flags over env: metrics-addr %q, read-header-timeout %s, %v", c.MetricsAddr, c.ReadHeaderTimeout, err)
	}
	for name, args := range map[string][]string{
		"metrics-addr without port":   {"--metrics-addr", "nope"},
		"metrics-addr same as listen": {"--metrics-addr", "127.0.0.1:8080"},
		"zero read-header-timeout":    {"--read-header-timeout", "0s"},
		"huge read-header-timeout":    {"--read-header-timeout", "1h"},
	} {
		if _, err := Load(args, none, io.Discard); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestMaxEnvBacklog(t *testing.T) {
	none := func(string) string { return "" }
	if d := Default(); d.MaxEnvBacklog != 1000 {
		t.Errorf("default max-env-backlog %d, want 1000", d.MaxEnvBacklog)
	}
	env := map[string]string{"FERRY_MAX_ENV_BACKLOG": "50"}
	if c, err := Load(nil, func(k string) string { return env[k] }, io.Discard); err != nil || c.MaxEnvBacklog != 50 {
		t.Errorf("env: max-env-backlog %d, %v; want 50", c.MaxEnvBacklog, err)
	}
	if c, err := Load([]string{"--max-env-backlog", "7"}, func(k string) string { return env[k] }, io.Discard); err != nil || c.MaxEnvBacklog != 7 {
		t.Errorf("flag over env: max-env-backlog %d, %v; want 7", c.MaxEnvBacklog, err)
	}
	for _, bad := range []string{"0", "-1", "1000001", "lots"} {
		if _, err := Load([]string{"--max-env-backlog", bad}, none, io.Discard); err == nil {
			t.Errorf("--max-env-backlog %s accepted", bad)
		}
		if _, err := Load(nil, func(k string) string {
			if k == "FERRY_MAX_ENV_BACKLOG" {
				return bad
			}
			return ""
		}, io.Discard); err == nil {
			t.Errorf("FERRY_MAX_ENV_BACKLOG=%s accepted", bad)
		}
	}
}

func TestReconnectRate(t *testing.T) {
	none := func(string) string { return "" }
	if d := Default(); d.ReconnectRate != 50 {
		t.Errorf("default reconnect-rate %g, want 50", d.ReconnectRate)
	}
	env := map[string]string{"FERRY_RECONNECT_RATE": "10"}
	if c, err := Load(nil, func(k string) string { return env[k] }, io.Discard); err != nil || c.ReconnectRate != 10 {
		t.Errorf("env: reconnect-rate %g, %v; want 10", c.ReconnectRate, err)
	}
	if c, err := Load([]string{"--reconnect-rate", "2.5"}, func(k string) string { return env[k] }, io.Discard); err != nil || c.ReconnectRate != 2.5 {
		t.Errorf("flag over env: reconnect-rate %g, %v; want 2.5", c.ReconnectRate, err)
	}
	for _, bad := range []string{"0", "-1", "100001", "NaN", "fast"} {
		if _, err := Load([]string{"--reconnect-rate", bad}, none, io.Discard); err == nil {
			t.Errorf("--reconnect-rate %s accepted", bad)
		}
		if _, err := Load(nil, func(k string) string {
			if k == "FERRY_RECONNECT_RATE" {
				return bad
			}
			return ""
		}, io.Discard); err == nil {
			t.Errorf("FERRY_RECONNECT_RATE=%s accepted", bad)
		}
	}
}

func TestCredentialOverlap(t *testing.T) {
	none := func(string) string { return "" }
	if d := Default(); d.CredentialOverlap != time.Hour {
		t.Errorf("default credential-overlap %s, want 1h", d.CredentialOverlap)
	}
	env := map[string]string{"FERRY_CREDENTIAL_OVERLAP": "2h"}
	if c, err := Load(nil, func(k string) string { return env[k] }, io.Discard); err != nil || c.CredentialOverlap != 2*time.Hour {
		t.Errorf("env: credential-overlap %s, %v; want 2h", c.CredentialOverlap, err)
	}
	if c, err := Load([]string{"--credential-overlap", "90m"}, func(k string) string { return env[k] }, io.Discard); err != nil || c.CredentialOverlap != 90*time.Minute {
		t.Errorf("flag over env: credential-overlap %s, %v; want 1h30m", c.CredentialOverlap, err)
	}
	for _, bad := range []string{"0s", "59s", "-1h", "721h", "soon"} {
		if _, err := Load([]string{"--credential-overlap", bad}, none, io.Discard); err == nil {
			t.Errorf("--credential-overlap %s accepted", bad)
		}
		if _, err := Load(nil, func(k string) string {
			if k == "FERRY_CREDENTIAL_OVERLAP" {
				return bad
			}
			return ""
		}, io.Discard); err == nil {
			t.Errorf("FERRY_CREDENTIAL_OVERLAP=%s accepted", bad)
		}
	}
}

func TestSlowLinkRate(t *testing.T) {
	none := func(string) string { return "" }
	if d := Default(); d.SlowLinkRate != 32 {
		t.Errorf("default slow-link-rate %d, want 32 KiB/s", d.SlowLinkRate)
	}
	env := map[string]string{"FERRY_SLOW_LINK_RATE": "8"}
	if c, err := Load(nil, func(k string) string { return env[k] }, io.Discard); err != nil || c.SlowLinkRate != 8 {
		t.Errorf("env: slow-link-rate %d, %v; want 8", c.SlowLinkRate, err)
	}
	if c, err := Load([]string{"--slow-link-rate", "256"}, func(k string) string { return env[k] }, io.Discard); err != nil || c.SlowLinkRate != 256 {
		t.Errorf("flag over env: slow-link-rate %d, %v; want 256", c.SlowLinkRate, err)
	}
	for _, bad := range []string{"0", "-1", "1048577", "fast"} {
		if _, err := Load([]string{"--slow-link-rate", bad}, none, io.Discard); err == nil {
			t.Errorf("--slow-link-rate %s accepted", bad)
		}
	}
}
