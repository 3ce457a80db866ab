package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

const (
	// MaxPageSize is the most items any list answers; limit ranges over
	// 1..MaxPageSize.
	MaxPageSize = 100
	// DefaultPageSize is the page size when the request names no limit.
	DefaultPageSize = MaxPageSize
	// maxOffset bounds offset, so that a page is never a scan of millions.
	maxOffset = 1_000_000
)

// paging reads limit (1-100, default 100) and offset (0-1000000, default
// 0). A value that is not a decimal integer in range is refused with 400
// invalid_parameter.
func paging(c *gin.Context) (limit, offset int, err error) {
	limit, offset = DefaultPageSize, 0
	if v, ok := c.GetQuery("limit"); ok {
		n, err := decimal(v)
		if err != nil || n < 1 || n > MaxPageSize {
			return 0, 0, &badParam{"limit must be an integer from 1 to " + strconv.Itoa(MaxPageSize) + "; page with offset (or afterSeq on the audit trail)"}
		}
		limit = n
	}
	if v, ok := c.GetQuery("offset"); ok {
		n, err := decimal(v)
		if err != nil || n < 0 || n > maxOffset {
			return 0, 0, &badParam{"offset must be an integer from 0 to " + strconv.Itoa(maxOffset)}
		}
		offset = n
	}
	return limit, offset, nil
}

// decimal parses plain decimal digits (no sign, no spaces), at most 9 of
// them.
func decimal(v string) (int, error) {
	if v == "" || len(v) > 9 || strings.TrimLeft(v, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(v)
}

// badParam is a 400 invalid_parameter refusal of a query parameter.
type badParam struct{ detail string }

func (e *badParam) Error() string { return e.detail }

// sendPage answers one page of items, a list the store returned whole, as
// a List with limit and offset applied.
func sendPage[T any](a *API, c *gin.Context, items []T) {
	limit, offset, err := paging(c)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := List[T]{Items: []T{}}
	if offset < len(items) {
		end := min(offset+limit, len(items))
		out.Items = append(out.Items, items[offset:end]...)
		if end < len(items) {
			out.NextOffset = end
		}
	}
	c.JSON(http.StatusOK, out)
}
