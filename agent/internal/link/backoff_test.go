package link

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
// one second); later waits follow the backoff from its first step.
func TestReconnectSpread(t *testing.T) {
	x := 0.0
	b := backoff{min: time.Second, max: 60 * time.Second, spread: DefaultReconnectSpread, rand: func() float64 { return x }}
	for _, v := range []float64{0, 0.5, 0.999} {
		x = v
		b.reset()
		if d, want := b.next(), time.Duration(v*float64(DefaultReconnectSpread)); d != want {
			t.Errorf("first wait with rand %v = %v, want %v", v, d, want)
		}
	}
	x = 0.999999
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if d := b.next().Round(time.Second); d != want {
			t.Errorf("wait %d after the spread = %v, want the backoff's step %v", i+2, d, want)
		}
	}
	// Uniform in fact: 10,000 draws fill each second of the 10 s window
	// evenly (about 1,000 each, standard deviation 30), and none falls
	// outside it.
	b = backoff{min: time.Second, max: 60 * time.Second, spread: DefaultReconnectSpread}
	var perSecond [10]int
	for range 10000 {
		b.reset()
		d := b.next()
		if d < 0 || d >= DefaultReconnectSpread {
			t.Fatalf("first wait %v, want within [0, %v)", d, DefaultReconnectSpread)
		}
		perSecond[int(d/time.Second)]++
	}
	for i, n := range perSecond {
		if n < 850 || n > 1150 {
			t.Errorf("second %d of the window got %d of 10,000 first redials, want about 1,000 (%v)", i, n, perSecond)
		}
	}
}

// TestReconnectSpreadDefault: a client given no spread uses
// DefaultReconnectSpread, 10 s (row B3), and a negative one none.
func TestReconnectSpreadDefault(t *testing.T) {
	if DefaultReconnectSpread != 10*time.Second {
		t.Errorf("DefaultReconnectSpread = %v, want 10s", DefaultReconnectSpread)
	}
	for _, tt := range []struct {
		set, want time.Duration
	}{{0, DefaultReconnectSpread}, {3 * time.Second, 3 * time.Second}, {-1, -1}} {
		c, err := New(Config{HubURL: "http://hub.test", Credential: "c", AgentVersion: "v", ReconnectSpread: tt.set}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		if c.cfg.ReconnectSpread != tt.want {
			t.Errorf("ReconnectSpread %v became %v, want %v", tt.set, c.cfg.ReconnectSpread, tt.want)
		}
		// Before any hello, the spread in use is the config's.
		if got := c.ReconnectSpread(); got != max(tt.want, 0) {
			t.Errorf("ReconnectSpread %v: spread in use %v before any hello, want %v", tt.set, got, max(tt.want, 0))
		}
	}
}
