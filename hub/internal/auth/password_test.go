package auth

import (
	"errors"
	"strings"
	"testing"
)

// cheap keeps the tests fast; production uses DefaultArgon2.
var cheap = Argon2Params{Memory: 64, Time: 1, Threads: 1}

func TestPassword(t *testing.T) {
	h, err := HashPassword("correct horse battery", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q does not carry its parameters", h)
	}
	h2, _ := HashPassword("correct horse battery", cheap)
	if h == h2 {
		t.Error("two hashes of one password are equal: no salt")
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{
		{"correct horse battery", true},
		{"correct horse batterY", false},
		{"", false},
		{strings.Repeat("x", MaxPassword+1), false},
	} {
		ok, err := CheckPassword(h, tc.pw)
		if err != nil || ok != tc.want {
			t.Errorf("CheckPassword(%.20q) = %v, %v; want %v", tc.pw, ok, err, tc.want)
		}
	}
	if _, err := HashPassword(strings.Repeat("x", MaxPassword+1), cheap); err == nil {
		t.Error("HashPassword accepted an over-long password")
	}
}

func TestPasswordDefaultParams(t *testing.T) {
	h, err := HashPassword("pw", DefaultArgon2)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h, "$m=19456,t=2,p=1$") {
		t.Errorf("default hash %q", h)
	}
	if ok, err := CheckPassword(h, "pw"); !ok || err != nil {
		t.Errorf("CheckPassword = %v, %v", ok, err)
	}
}

func TestCheckPasswordBadHash(t *testing.T) {
	good, _ := HashPassword("pw", cheap)
	parts := strings.Split(good, "$")
	for name, h := range map[string]string{
		"empty":          "",
		"bcrypt":         "$2a$10$abcdefghijklmnopqrstuu5xg2dyf9Fq0wqjvpB4P1yLy6cm3n0mW",
		"argon2i":        strings.Replace(good, "argon2id", "argon2i", 1),
		"version":        strings.Replace(good, "v=19", "v=16", 1),
		"params":         strings.Replace(good, "m=64,t=1,p=1", "m=x", 1),
		"zero threads":   strings.Replace(good, "p=1", "p=0", 1),
		"huge memory":    strings.Replace(good, "m=64", "m=99999999", 1),
		"salt":           strings.Join([]string{"", parts[1], parts[2], parts[3], "!!", parts[5]}, "$"),
		"short key":      strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], "AAAA"}, "$"),
		"too many parts": good + "$x",
	} {
		t.Run(name, func(t *testing.T) {
			if ok, err := CheckPassword(h, "pw"); ok || !errors.Is(err, ErrPasswordHash) {
				t.Errorf("CheckPassword = %v, %v; want false, ErrPasswordHash", ok, err)
			}
		})
	}
}
