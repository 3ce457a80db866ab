package link

import (
	"testing"
	"time"
)

func TestBackoffDoublesToCapAndResets(t *testing.T) {
	b := backoff{min: time.Second, max: 60 * time.Second, rand: func() float64 { return 0.999999 }}
	var got []time.Duration
	for range 8 {
		got = append(got, b.next().Round(time.Second))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("attempt %d: got %v, want %v (all %v)", i, got[i], want[i]*time.Second, got)
		}
	}
	b.reset()
	if d := b.next(); d > time.Second {
		t.Errorf("after reset: %v, want ≤ 1s", d)
	}
	low := backoff{min: time.Second, max: 60 * time.Second, rand: func() float64 { return 0 }}
	if d := low.next(); d != 500*time.Millisecond {
		t.Errorf("jitter floor = %v, want 500ms", d)
	}
}

// TestReconnectSpread: the first wait after a reset is uniform over the
// spread (row B3: a fleet that lost its hub redials over the window, not in
// one second); later waits follow the backoff.
func TestReconnectSpread(t *testing.T) {
	x := 0.0
	b := backoff{min: time.Second, max: 60 * time.Second, spread: 5 * time.Second, rand: func() float64 { return x }}
	for _, v := range []float64{0, 0.5, 0.999} {
		x = v
		b.reset()
		if d, want := b.next(), time.Duration(v*float64(5*time.Second)); d != want {
			t.Errorf("first wait with rand %v = %v, want %v", v, d, want)
		}
	}
	x = 0.999999
	if d := b.next().Round(time.Second); d != time.Second {
		t.Errorf("second wait = %v, want the backoff's first step (1s)", d)
	}
	// Uniform in fact: 10,000 draws fill each second of the window evenly.
	b = backoff{min: time.Second, max: 60 * time.Second, spread: 5 * time.Second}
	var perSecond [5]int
	for range 10000 {
		b.reset()
		perSecond[int(b.next()/time.Second)]++
	}
	for i, n := range perSecond {
		if n < 1800 || n > 2200 {
			t.Errorf("second %d of the window got %d of 10,000 first redials, want about 2,000 (%v)", i, n, perSecond)
		}
	}
}
