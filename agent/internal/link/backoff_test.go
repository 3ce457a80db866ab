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
