package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// MaxHeaderBytes bounds a request's header block (request line and
// header fields). The HTTP server refuses much larger blocks itself
// (server.go sets its MaxHeaderBytes to this, to which net/http adds 4 KiB
// of slack); this check makes the bound exact and the answer a problem
// document.
const MaxHeaderBytes = 8 << 10

// limitHeaders answers 431 to a request whose header block exceeds
// MaxHeaderBytes.
func limitHeaders(c *gin.Context) {
	r := c.Request
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	n += len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	if n > MaxHeaderBytes {
		c.Header("Connection", "close")
		writeProblem(c, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "the request's header block exceeds 8 KiB")
		return
	}
	c.Next()
}
