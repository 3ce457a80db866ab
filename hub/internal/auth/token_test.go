package auth

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNewAndCheck(t *testing.T) {
	for _, k := range []Kind{KindAPIToken, KindLinkToken, KindCredential} {
		s, err := New(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(k, string(s)); err != nil {
			t.Errorf("Check(%s) = %v", s, err)
		}
		other := KindAPIToken
		if k == KindAPIToken {
			other = KindLinkToken
		}
		if Check(other, string(s)) == nil {
			t.Errorf("%s accepted as %s", s, other)
		}
		// Flip one character of the body: the checksum must catch it.
		b := []byte(s)
		i := len(k) + 3
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		if Check(k, string(b)) == nil {
			t.Errorf("typo in %s not caught by the checksum", s)
		}
	}
}

func TestSecretRedacted(t *testing.T) {
	s, _ := New(KindCredential)
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "cred", s)
	if strings.Contains(b.String(), string(s)[12:]) {
		t.Errorf("secret leaked into log: %s", b.String())
	}
	if got := fmt.Sprint(Hash(string(s))); len(got) != 64 {
		t.Errorf("hash length %d", len(got))
	}
}

func TestBearer(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"Basic abc", "", false},
		{"Bearer ", "", false},
		{"", "", false},
		{"Bearer   ", "", false},
		{"Bearer  abc", "", false},
		{"Bearer abc ", "", false},
		{"Bearer a\tbc", "", false},
		{"Bearerabc", "", false},
		{"Token abc", "", false},
		{"abc", "", false},
	}
	for _, tt := range tests {
		got, ok := Bearer(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Bearer(%q) = %q,%v want %q,%v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
