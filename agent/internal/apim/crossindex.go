package apim

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The Management API cannot search by crossId, so finding the API a
// promotion updates means listing every API of the environment. Done for
// every accept, that is quadratic in the size of the environment: at 1,000
// APIs an accept costs ten pages of 100, and more when the APIs are large
// (ListAPIs bounds each page's bytes too). The client therefore keeps an
// index of crossId → API ids, built from a full listing and kept current
// with the imports it makes itself.
//
// What the index may get wrong, and why it is still safe:
//   - A hit is always confirmed with a GET of that API (it may have been
//     deleted or had its crossId changed); a failed confirmation rebuilds.
//   - A miss is trusted only while the index is younger than
//     Config.CrossIDIndexTTL. Within that window an API created by someone
//     else with the same crossId is not seen; the create that follows is
//     then refused by APIM (same context path) and the caller looks again
//     with FindByCrossIDFresh before deciding anything.
//   - Callers that must not miss (resuming an import whose create may have
//     gone through) use FindByCrossIDFresh, which always lists.
type crossIndex struct {
	mu      sync.Mutex
	built   time.Time           // when the listing behind byCross started
	byCross map[string][]string // nil until the first listing
	// notes are the imports noted since built; a rebuild from a listing
	// that started before one of them applies it again.
	notes []noted
}

type noted struct {
	crossID, id string
	at          time.Time
}

// FindByCrossID returns the API of the environment with the given crossId,
// and false if there is none, answering from the crossId index when it is
// fresh enough (see crossIndex). Several matches are an error wrapping
// ErrAmbiguousCrossID: updating an arbitrary one would be wrong.
func (c *Client) FindByCrossID(ctx context.Context, crossID string) (API, bool, error) {
	if crossID == "" {
		return API{}, false, fmt.Errorf("apim find by crossId: empty crossId")
	}
	ids, fresh := c.index.lookup(crossID, c.now(), c.cfg.CrossIDIndexTTL)
	switch {
	case !fresh || len(ids) > 1:
		return c.FindByCrossIDFresh(ctx, crossID)
	case len(ids) == 0:
		c.metrics.indexLookups.WithLabelValues("miss").Inc()
		return API{}, false, nil
	}
	api, err := c.GetAPI(ctx, ids[0])
	switch {
	case err == nil && api.CrossID == crossID:
		c.metrics.indexLookups.WithLabelValues("hit").Inc()
		return api, true, nil
	case err != nil && !IsNotFound(err):
		return API{}, false, err
	}
	// Deleted, or its crossId changed since the index was built.
	return c.FindByCrossIDFresh(ctx, crossID)
}

// FindByCrossIDFresh is FindByCrossID without the index: it lists every API
// of the environment, and rebuilds the index from that listing.
func (c *Client) FindByCrossIDFresh(ctx context.Context, crossID string) (API, bool, error) {
	if crossID == "" {
		return API{}, false, fmt.Errorf("apim find by crossId: empty crossId")
	}
	c.metrics.indexLookups.WithLabelValues("list").Inc()
	started := c.now()
	apis, err := c.ListAPIs(ctx)
	if err != nil {
		return API{}, false, err
	}
	c.index.rebuild(apis, started)
	var found []API
	for _, a := range apis {
		if a.CrossID == crossID {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return API{}, false, nil
	case 1:
		return found[0], true, nil
	default:
		ids := make([]string, len(found))
		for i, a := range found {
			ids[i] = a.ID
		}
		return API{}, false, fmt.Errorf("apim find by crossId %s: %w: %s", crossID, ErrAmbiguousCrossID, strings.Join(ids, ", "))
	}
}

// lookup returns the ids indexed for crossID and whether the index is
// younger than ttl.
func (x *crossIndex) lookup(crossID string, now time.Time, ttl time.Duration) ([]string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byCross == nil || now.Sub(x.built) >= ttl {
		return nil, false
	}
	return append([]string(nil), x.byCross[crossID]...), true
}

// rebuild replaces the index with one made from a listing that started at
// started: anything imported while the listing ran is in it or was added by
// note after started, and a later note wins.
func (x *crossIndex) rebuild(apis []API, started time.Time) {
	m := make(map[string][]string, len(apis))
	for _, a := range apis {
		if a.CrossID != "" {
			m[a.CrossID] = append(m[a.CrossID], a.ID)
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if started.Before(x.built) {
		return // a newer listing already rebuilt it
	}
	x.byCross, x.built = m, started
	kept := x.notes[:0]
	for _, n := range x.notes {
		if !n.at.Before(started) {
			kept = append(kept, n)
			x.applyLocked(n.crossID, n.id)
		}
	}
	x.notes = kept
}

// invalidate makes the next lookup list the environment: listings that
// started before at are not trusted any more.
func (x *crossIndex) invalidate(at time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.byCross, x.notes, x.built = nil, nil, at
}

// note records that the API id holds crossID since at, after an import.
func (x *crossIndex) note(crossID, id string, at time.Time) {
	if crossID == "" || id == "" {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byCross == nil {
		return // nothing to keep current until the first listing
	}
	x.notes = append(x.notes, noted{crossID, id, at})
	x.applyLocked(crossID, id)
}

func (x *crossIndex) applyLocked(crossID, id string) {
	for old, ids := range x.byCross {
		for i, v := range ids {
			if v == id && old != crossID {
				x.byCross[old] = append(ids[:i:i], ids[i+1:]...)
				break
			}
		}
	}
	for _, v := range x.byCross[crossID] {
		if v == id {
			return
		}
	}
	x.byCross[crossID] = append(x.byCross[crossID], id)
}
