package link

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestProblemOf: a refused upgrade's problem document reaches the error
// the agent logs; a body that is not one adds nothing.
func TestProblemOf(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"type":"about:blank","status":403,"code":"client_certificate_mismatch","detail":"this installation enrolled with another client certificate key; present it, or re-enroll"}`,
			": client_certificate_mismatch: this installation enrolled with another client certificate key; present it, or re-enroll"},
		{`{"code":"rate_limited"}`, ": rate_limited"},
		{"Service Unavailable\n", ""},
		{`{"status":503}`, ""},
		{"", ""},
	} {
		resp := &http.Response{Body: io.NopCloser(strings.NewReader(tc.body))}
		if got := problemOf(resp); got != tc.want {
			t.Errorf("problemOf(%q) = %q, want %q", tc.body, got, tc.want)
		}
	}
	if got := problemOf(&http.Response{}); got != "" {
		t.Errorf("problemOf(no body) = %q", got)
	}
}
