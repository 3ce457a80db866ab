package apim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
)

const (
	// listShare: a page of ListAPIs aims at 1/listShare of
	// Config.MaxResponseBytes, leaving room for APIs larger than those
	// measured so far.
	listShare = 4
	// maxPages stops ListAPIs after this many requests.
	maxPages = 10000
)

// ListAPIs returns every API of the environment, in APIM's order, a page
// at a time (GET /apis?page=&perPage=).
//
// A page is bounded in bytes as well as in APIs. Listed APIs are whole API
// objects, and one can weigh megabytes (a long description, say), so a
// page of Config.PageSize APIs could exceed Config.MaxResponseBytes.
// Each page therefore holds as many APIs as fit in a quarter of that cap
// at the largest size per API seen so far, and at most PageSize. The first
// listing of a Client starts with a one-API page to measure them. Later
// listings start from the size the previous one saw. When the page size
// changes, the request asks for the page that holds the next unlisted API,
// and skips the APIs it already has. A page that still exceeds the cap
// (the APIs grew from one page to the next) is asked again, smaller. Only
// a single API larger than the cap fails the listing.
//
// The listing ends with a page shorter than asked, or when it has
// pagination.totalCount APIs. Gravitee reports totalCount as -1 when it
// could not count in time, and then only a short page ends it.
func (c *Client) ListAPIs(ctx context.Context) ([]API, error) {
	budget := int64(c.cfg.MaxResponseBytes / listShare)
	seen := int64(0) // the most bytes per API on a page of this listing
	per := 1         // a one-API page to measure APIs of unknown size
	if hint := c.apiBytes.Load(); hint > 0 {
		per = fitPage(budget, hint, c.cfg.PageSize)
	}
	var all []API
	for req := 1; ; req++ {
		if req > maxPages {
			return nil, fmt.Errorf("apim %s: more than %d pages", opList, maxPages)
		}
		page := len(all)/per + 1
		skip := len(all) - (page-1)*per // listed already: on an earlier, differently sized page
		q := url.Values{"page": {strconv.Itoa(page)}, "perPage": {strconv.Itoa(per)}}
		body, err := c.do(ctx, request{op: opList, method: http.MethodGet, path: "/apis", query: q, want: http.StatusOK, idempotent: true})
		if errors.Is(err, errTooLarge) && per > 1 {
			// Its APIs average over cap/per bytes.
			seen = max(seen, int64(c.cfg.MaxResponseBytes/per)+1)
			next := min(per/2, fitPage(budget, seen, c.cfg.PageSize))
			c.log.Warn("apim page too large; asking again with fewer APIs per page",
				slog.Int("page", page), slog.Int("per_page", per), slog.Int("next_per_page", next))
			per = next
			continue
		}
		var ae *Error
		if errors.As(err, &ae) && ae.TechnicalCode == "pagination.invalid" && len(all) > 0 && skip == 0 {
			// A page past the end: the previous page was full and the
			// last (totalCount unknown, or APIs deleted meanwhile).
			if seen > 0 {
				c.apiBytes.Store(seen)
			}
			return all, nil
		}
		if err != nil {
			return nil, err
		}
		var resp struct {
			Data       []API `json:"data"`
			Pagination struct {
				TotalCount *int64 `json:"totalCount"`
			} `json:"pagination"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			return nil, fmt.Errorf("apim %s: decode page %d: %w", opList, page, err)
		}
		n := len(resp.Data)
		if n > per {
			return nil, fmt.Errorf("apim %s: page %d has %d APIs, more than the %d asked for", opList, page, n, per)
		}
		if n > 0 {
			seen = max(seen, int64(len(body))/int64(n))
		}
		if skip < n {
			all = append(all, resp.Data[skip:]...)
		}
		total := resp.Pagination.TotalCount
		if n < per || (total != nil && *total >= 0 && int64(len(all)) >= *total) {
			if seen > 0 {
				c.apiBytes.Store(seen)
			}
			return all, nil
		}
		per = fitPage(budget, seen, c.cfg.PageSize)
	}
}

// fitPage returns how many APIs of perAPI bytes fit in budget: at least 1,
// at most most.
func fitPage(budget, perAPI int64, most int) int {
	if perAPI <= 0 {
		return most
	}
	return int(max(1, min(int64(most), budget/perAPI)))
}
