package api

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckDepth(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		deep       bool
	}{
		{"flat", `{"a":1}`, false},
		{"128 levels", strings.Repeat("[", 128) + strings.Repeat("]", 128), false},
		{"129 levels", strings.Repeat("[", 129) + strings.Repeat("]", 129), true},
		{"129 mixed", strings.Repeat(`{"a":[`, 65), true},
		{"brackets in strings", `{"a":"` + strings.Repeat("[{", 500) + `"}`, false},
		{"escaped quote keeps the string open", `{"a":"\"` + strings.Repeat("[", 500) + `"}`, false},
		{"escaped backslash closes the string", `{"a":"\\"` + strings.Repeat("[", 200), true},
		{"siblings do not add up", strings.Repeat("[[]]", 1000), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkDepth([]byte(tc.body), MaxJSONDepth)
			var bb *badBody
			if got := errors.As(err, &bb) && bb.code == "too_deep"; got != tc.deep {
				t.Errorf("too deep = %v (%v), want %v", got, err, tc.deep)
			}
		})
	}
	// Flat but long: the scan is one pass, without allocation.
	flat := []byte(strings.Repeat("[0],", 1<<20) + "[]")
	if err := checkDepth(flat, MaxJSONDepth); err != nil {
		t.Errorf("4 MiB of flat arrays: %v", err)
	}
	deep := []byte(strings.Repeat("[", 4<<20))
	if err := checkDepth(deep, MaxJSONDepth); err == nil {
		t.Error("4 MiB of brackets passed")
	}
	if n := testing.AllocsPerRun(10, func() { _ = checkDepth(flat, MaxJSONDepth) }); n != 0 {
		t.Errorf("%v allocations per scan, want 0", n)
	}
}

// BenchmarkCheckDepth measures the depth scan on the largest bodies the
// API reads (catalogue row D8: 400 within 100 ms): 4 MiB of flat arrays,
// which pass, and 4 MiB of opening brackets, refused at level 129.
func BenchmarkCheckDepth(b *testing.B) {
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"flat-4MiB", []byte(strings.Repeat("[0],", 1<<20) + "[]")},
		{"deep-4MiB", []byte(strings.Repeat("[", 4<<20))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.body)))
			for b.Loop() {
				_ = checkDepth(bc.body, MaxJSONDepth)
			}
		})
	}
}

func TestSizeText(t *testing.T) {
	for n, want := range map[int64]string{MaxBodyBytes: "64 KiB", MaxPromotionBodyBytes: "4 MiB"} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
}
