package webconsole

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"ferry.dev/shared/consoleassets"
)

// SecurityHeaders sets the headers every console response carries: no
// sniffing, no referrer, no framing, and a content security policy that
// allows only same-origin scripts, styles and connections.
func SecurityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
}

// Problem writes an RFC 9457 problem document with the given status, code
// and detail. A 503 also gets "Retry-After: 5".
func Problem(w http.ResponseWriter, status int, code, detail string) {
	b, _ := json.Marshal(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "code": code, "detail": detail})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// ServeStatic serves the static file name (a request's /console/static/{file}
// value): ownName from own, the console's own script, or else one of the
// shared consoleassets.Files. It reports false, having written nothing, when
// there is no such file.
func ServeStatic(w http.ResponseWriter, name string, own fs.FS, ownName string) bool {
	name = path.Clean(name)
	var fsys fs.FS = consoleassets.Files
	if name == path.Base(ownName) {
		fsys, name = own, ownName
	}
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return false
	}
	switch {
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
	return true
}
