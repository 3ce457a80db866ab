package link

import (
	"math/rand/v2"
	"time"
)

// backoff is capped exponential backoff with full jitter.
type backoff struct {
	min, max time.Duration
	attempt  int
	rand     func() float64 // [0,1); tests fix it
}

// next returns the wait before the next attempt and advances.
func (b *backoff) next() time.Duration {
	d := b.min << b.attempt
	if d > b.max || d <= 0 {
		d = b.max
	} else {
		b.attempt++
	}
	r := b.rand
	if r == nil {
		r = rand.Float64
	}
	// Full jitter over [d/2, d): spreads a herd without waiting near zero.
	return d/2 + time.Duration(r()*float64(d/2))
}

// reset starts over after a healthy connection.
func (b *backoff) reset() { b.attempt = 0 }
