package secretscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Kind says what a plaintext secret is.
type Kind string

// Kinds of secrets.
const (
	Authorization Kind = "authorization header" // Authorization or Proxy-Authorization with a credential
	Password      Kind = "password property"    // a field or property named …password, …passwd, …passphrase
	Secret        Kind = "secret property"      // a field, property or header named …secret, …apiKey, …token and the like
	PrivateKey    Kind = "private key"          // a PEM private-key block
)

// Finding is one plaintext secret.
type Finding struct {
	// Pointer is the RFC 6901 JSON pointer of the string holding the
	// secret.
	Pointer string
	// Embedded is the pointer of the secret inside the JSON text that the
	// string at Pointer holds; empty when the string is the secret itself.
	Embedded string
	Kind     Kind
}

// String says what and where the secret is, never its value.
func (f Finding) String() string {
	if f.Embedded == "" {
		return fmt.Sprintf("%s at %s", f.Kind, f.Pointer)
	}
	return fmt.Sprintf("%s at %s (in its JSON text, at %s)", f.Kind, f.Pointer, f.Embedded)
}

// Scan returns the plaintext secrets of the JSON document def, each place
// once, in the same order for the same document. It fails only when def is
// not valid JSON.
func Scan(def json.RawMessage) ([]Finding, error) {
	return scan(def, true)
}

// scan is Scan; embed says whether to read the JSON text of plugin
// configurations too (not again inside such text).
func scan(def []byte, embed bool) ([]Finding, error) {
	if !json.Valid(def) {
		return nil, errors.New("secretscan: not valid JSON")
	}
	s := &scanner{dec: json.NewDecoder(bytes.NewReader(def)), embed: embed, seen: map[[2]string]bool{}}
	s.dec.UseNumber()
	if _, err := s.value(""); err != nil {
		return nil, fmt.Errorf("secretscan: %w", err)
	}
	return s.found, nil
}

// scanner walks one document token by token, so that every member is seen,
// even a duplicate key.
type scanner struct {
	dec   *json.Decoder
	embed bool
	path  []string // escaped reference tokens of the value being read
	found []Finding
	seen  map[[2]string]bool // pointer and embedded pointer: one finding per place
}

// add records a secret of kind k in the value being read (in its member
// more, when given), at embedded in its JSON text.
func (s *scanner) add(k Kind, embedded string, more ...string) {
	var b strings.Builder
	for _, t := range s.path {
		b.WriteString("/" + t)
	}
	for _, t := range more {
		b.WriteString("/" + t)
	}
	at := [2]string{b.String(), embedded}
	if s.seen[at] {
		return
	}
	s.seen[at] = true
	s.found = append(s.found, Finding{Pointer: at[0], Embedded: embedded, Kind: k})
}

// value reads the next value, that of member name (empty in an array), and
// returns it when it is not an object or an array.
func (s *scanner) value(name string) (json.Token, error) {
	tok, err := s.dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		return nil, s.object()
	case json.Delim('['):
		for i := 0; s.dec.More(); i++ {
			if _, err := s.child(strconv.Itoa(i), ""); err != nil {
				return nil, err
			}
		}
		_, err := s.dec.Token() // ]
		return nil, err
	}
	if str, ok := tok.(string); ok {
		s.str(name, str)
	}
	return tok, nil
}

// child reads the next value, at reference token t under member name.
func (s *scanner) child(t, name string) (json.Token, error) {
	s.path = append(s.path, t)
	defer func() { s.path = s.path[:len(s.path)-1] }()
	return s.value(name)
}

// object reads the members of an object, whose { has been read. An object
// with a name (or key) and a value is a header or property entry: its name
// counts for its value, unless it is marked encrypted.
func (s *scanner) object() error {
	var names, values []string
	encrypted := false
	for s.dec.More() {
		tok, err := s.dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		v, err := s.child(escape.Replace(key), key)
		if err != nil {
			return err
		}
		str, isStr := v.(string)
		switch {
		case (key == "name" || key == "key") && isStr:
			names = append(names, str)
		case key == "value" && isStr:
			values = append(values, str)
		case key == "encrypted":
			encrypted, _ = v.(bool)
		}
	}
	if _, err := s.dec.Token(); err != nil { // }
		return err
	}
	if encrypted {
		return nil
	}
	var k Kind
	for _, n := range names {
		if k = classify(n); k != "" {
			break
		}
	}
	for _, v := range values {
		if k != "" && plaintext(k, v) {
			s.add(k, "", "value")
			break
		}
	}
	return nil
}

// str checks the string v, the value of member name.
func (s *scanner) str(name, v string) {
	if s.embed && jsonText[name] && strings.HasPrefix(strings.TrimSpace(v), "{") {
		if found, err := scan([]byte(v), false); err == nil {
			for _, f := range found {
				s.add(f.Kind, f.Pointer)
			}
			return
		}
	}
	if privateKey.MatchString(v) {
		s.add(PrivateKey, "")
		return
	}
	if k := classify(name); k != "" && plaintext(k, v) {
		s.add(k, "")
	}
}

// jsonText are the members that Gravitee may write as JSON text in a
// string (plugin configurations).
var jsonText = map[string]bool{"configuration": true, "sharedConfiguration": true, "sharedConfigurationOverride": true}

// escape escapes a member name for a JSON pointer (RFC 6901).
var escape = strings.NewReplacer("~", "~0", "/", "~1")

// nameNoise is what classify ignores in a name.
var nameNoise = strings.NewReplacer("_", "", "-", "", ".", "")

// classify returns the kind of secret a field, property or header named
// name holds, or "" when its name says nothing.
func classify(name string) Kind {
	n := strings.ToLower(nameNoise.Replace(name))
	switch {
	case n == "authorization" || n == "proxyauthorization":
		return Authorization
	case hasSuffix(n, "password", "passwd", "passphrase"):
		return Password
	case hasSuffix(n, "secret", "secretkey", "privatekey", "apikey", "token"):
		return Secret
	}
	return ""
}

func hasSuffix(s string, suffixes ...string) bool {
	for _, x := range suffixes {
		if strings.HasSuffix(s, x) {
			return true
		}
	}
	return false
}

var (
	// reference matches a secret kept elsewhere: {{secret:name}}, or a
	// Gravitee expression such as {#secrets.get('/vault/api', 'key')} or
	// {#api.properties['key']}.
	reference = regexp.MustCompile(`\{\{\s*secret:[^{}]+\}\}|\{#[^{}]*\}`)
	// scheme matches the authorization scheme that starts a header value.
	scheme = regexp.MustCompile(`(?i)^(basic|bearer|digest|negotiate|token)\b`)
	// privateKey matches the first line of a PEM (or PGP) private-key block.
	privateKey = regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----`)
)

// plaintext reports whether v, a value of kind k, holds a secret in the
// clear: something is left once references (and, for a header, the scheme)
// are taken out.
func plaintext(k Kind, v string) bool {
	rest := strings.TrimSpace(reference.ReplaceAllString(v, ""))
	if k == Authorization {
		rest = strings.TrimSpace(scheme.ReplaceAllString(rest, ""))
	}
	return rest != ""
}
