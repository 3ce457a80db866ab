package config

import (
	"io"
	"testing"
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
