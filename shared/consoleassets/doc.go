// Package consoleassets holds what Ferry's two web consoles share: one
// stylesheet and one small script of browser helpers (fetch with problem
// documents, a server-sent-events reader, formatting). The hub console and
// the environment console (agent) embed them from here so that they look
// and behave alike; each serves them under its own /console/static/ path.
//
// The package has no code besides the embedded files and imports only the
// standard library. Files is read-only and safe for concurrent use.
package consoleassets

import "embed"

// Files holds console.css and common.js.
//
//go:embed console.css common.js
var Files embed.FS
