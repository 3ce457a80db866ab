package auth

import (
	"strings"
	"testing"
)

// FuzzCheck is the token parser's fuzz target (section F of
// shared/reference/reliability.md): Check never panics, accepts only a
// secret of the asked kind, length and checksum, and Bearer hands back
// exactly the token of a well-formed header. A fresh secret always passes,
// and changing any one of its characters makes it fail.
func FuzzCheck(f *testing.F) {
	for _, k := range []Kind{KindAPIToken, KindLinkToken, KindCredential} {
		s, err := New(k)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(s), 0, 3)
		f.Add(string(s), len(s)-1, 1)
	}
	f.Add("ferry_at_", 0, 0)
	f.Add("", 0, 0)
	f.Add("ferry_lt_0000000000000000000000000000000000000000000000", 12, 7)
	f.Add("Bearer ferry_ic_x", 2, 2)
	kinds := []Kind{KindAPIToken, KindLinkToken, KindCredential}
	f.Fuzz(func(t *testing.T, s string, pos, delta int) {
		for _, k := range kinds {
			if Check(k, s) != nil {
				continue
			}
			// Accepted: the shape holds.
			if !strings.HasPrefix(s, string(k)) || len(s) != len(k)+bodyLen+sumLen {
				t.Fatalf("Check(%s) accepted %q of length %d", k, s, len(s))
			}
			if body, sum := s[:len(s)-sumLen], s[len(s)-sumLen:]; checksum(body) != sum {
				t.Fatalf("Check(%s) accepted %q with a wrong checksum", k, s)
			}
			for _, other := range kinds {
				if other != k && Check(other, s) == nil {
					t.Fatalf("%q passes as both %s and %s", s, k, other)
				}
			}
			// Changing one character past the prefix breaks it (CRC-32
			// detects every single-character change).
			if i := len(k) + abs(pos)%(bodyLen+sumLen); delta%len(alphabet) != 0 {
				j := strings.IndexByte(alphabet, s[i])
				if j >= 0 {
					b := []byte(s)
					b[i] = alphabet[(j+abs(delta))%len(alphabet)]
					if b[i] != s[i] && Check(k, string(b)) == nil {
						t.Fatalf("Check(%s) accepted %q, one character off %q", k, b, s)
					}
				}
			}
		}
		if tok, ok := Bearer("Bearer " + s); ok && tok != s {
			t.Fatalf("Bearer(%q) = %q", "Bearer "+s, tok)
		}
		_ = Hash(s)
	})
}

func abs(n int) int {
	if n < 0 {
		if n == -n { // the smallest int
			return 0
		}
		return -n
	}
	return n
}
