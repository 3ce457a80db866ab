package link

import (
	"math/rand/v2"
	"time"
)

// backoff is capped exponential backoff with jitter. With a spread, the
// first wait after a reset is uniform over [0, spread) instead: a whole
// fleet that lost its hub at the same moment redials over that window
// (DefaultReconnectSpread). The waits after it start again from min, so an
// agent whose spread redial fails (the hub is not up yet) retries within
// a second or two, not after another spread.
type backoff struct {
	min, max time.Duration
	spread   time.Duration
	attempt  int
	spreadOK bool           // the spread wait was taken since the last reset
	rand     func() float64 // [0,1); tests fix it
}

// next returns the wait before the next attempt and advances.
func (b *backoff) next() time.Duration {
	r := b.rand
	if r == nil {
		r = rand.Float64
	}
	if b.spread > 0 && !b.spreadOK {
		b.spreadOK = true
		return time.Duration(r() * float64(b.spread))
	}
	d := b.min << b.attempt
	if d > b.max || d <= 0 {
		d = b.max
	} else {
		b.attempt++
	}
	// Jitter over [d/2, d), not "full jitter" over [0, d) (row B2's
	// wording): a wait near zero would break row A3's at most one dial per
	// second per agent, and the herd is already spread by the first wait.
	return d/2 + time.Duration(r()*float64(d/2))
}

// reset starts over after a healthy connection.
func (b *backoff) reset() { b.attempt, b.spreadOK = 0, false }
