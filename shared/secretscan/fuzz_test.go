package secretscan

import (
	"encoding/json"
	"regexp"
	"testing"
)

// wellFormed matches an RFC 6901 pointer: empty, or "/"-separated tokens in
// which every "~" is escaped.
var wellFormed = regexp.MustCompile(`^(/([^~/]|~[01])*)*$`)

// FuzzScan checks that Scan refuses exactly the invalid documents, and that
// every finding is at a well-formed pointer, of a known kind, once.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"api":{"proxy":{"headers":[{"name":"Authorization","value":"Bearer s3cr3t"}]}}}`,
		`{"headers":{"Authorization":"{{secret:x}}"},"a/b":{"c~d":{"password":"x"}}}`,
		`{"properties":[{"key":"password","value":"c2VhbGVk","encrypted":true}]}`,
		`{"sharedConfiguration":"{\"headers\":[{\"name\":\"Authorization\",\"value\":\"Basic x\"}]}"}`,
		`["-----BEGIN PRIVATE KEY-----",{"password":"a","password":"b"}]`,
		`{"name":"X-Api-Key","value":"k","key":"token"}`,
		`{`, `"x"`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, def []byte) {
		found, err := Scan(def)
		if valid := json.Valid(def); (err == nil) != valid {
			t.Fatalf("Scan error %v for a document with json.Valid %v", err, valid)
		}
		seen := map[Finding]bool{}
		for _, fd := range found {
			if !wellFormed.MatchString(fd.Pointer) || !wellFormed.MatchString(fd.Embedded) {
				t.Errorf("malformed pointer in %+v", fd)
			}
			switch fd.Kind {
			case Authorization, Password, Secret, PrivateKey:
			default:
				t.Errorf("unknown kind in %+v", fd)
			}
			at := Finding{Pointer: fd.Pointer, Embedded: fd.Embedded}
			if seen[at] {
				t.Errorf("%+v reported twice", at)
			}
			seen[at] = true
		}
	})
}
