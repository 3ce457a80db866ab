package store

import (
	"testing"
	"time"
)

func TestPageLimit(t *testing.T) {
	for _, tc := range []struct{ in, want int }{
		{-5, 100}, {0, 100}, {1, 1}, {100, 100}, {1000, 1000}, {1001, 1000}, {1 << 40, 1000},
	} {
		if got := pageLimit(tc.in); got != tc.want {
			t.Errorf("pageLimit(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestMsTime(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		name     string
		in, want time.Time
	}{
		{"zero", time.Time{}, time.Time{}},
		{"truncated", time.Date(2025, 1, 2, 3, 4, 5, 6_789_999, paris), time.Date(2025, 1, 2, 2, 4, 5, 6_000_000, time.UTC)},
		{"before 1970", time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC), time.Date(1969, 12, 31, 23, 59, 59, 999_000_000, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := msTime(tc.in)
			if !got.Equal(tc.want) || got.Location() != tc.want.Location() {
				t.Errorf("msTime(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
