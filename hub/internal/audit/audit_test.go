package audit

import (
	"fmt"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
)

func chain(n int) []state.AuditEntry {
	var out []state.AuditEntry
	prev := ""
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		e := state.AuditEntry{OrgID: "o", Seq: int64(i), Time: t0.Add(time.Duration(i) * time.Second), Event: PromotionCreated, Actor: "a", PromotionID: fmt.Sprint(i), PrevHash: prev}
		e.Hash = Hash(e)
		prev = e.Hash
		out = append(out, e)
	}
	return out
}

func TestVerifyEntries(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func([]state.AuditEntry) []state.AuditEntry
		wantSeq int64 // 0 means intact
	}{
		{"intact", func(e []state.AuditEntry) []state.AuditEntry { return e }, 0},
		{"altered detail", func(e []state.AuditEntry) []state.AuditEntry { e[2].Detail = "x"; return e }, 3},
		{"removed entry", func(e []state.AuditEntry) []state.AuditEntry { return append(e[:1:1], e[2:]...) }, 2},
		{"rehashed alteration", func(e []state.AuditEntry) []state.AuditEntry {
			e[1].Actor = "mallory"
			e[1].Hash = Hash(e[1])
			return e
		}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := VerifyEntries(tt.mutate(chain(5)), "", 1)
			switch {
			case tt.wantSeq == 0 && b != nil:
				t.Errorf("intact chain reported broken at %d: %s", b.Seq, b.Reason)
			case tt.wantSeq != 0 && b == nil:
				t.Errorf("broken chain verified")
			case tt.wantSeq != 0 && b.Seq != tt.wantSeq:
				t.Errorf("break at %d, want %d (%s)", b.Seq, tt.wantSeq, b.Reason)
			}
		})
	}
}

func FuzzVerifyEntries(f *testing.F) {
	f.Add(int64(1), "x", "")
	f.Fuzz(func(t *testing.T, seq int64, detail, prev string) {
		c := chain(3)
		c[1].Seq, c[1].Detail, c[1].PrevHash = seq, detail, prev
		b := VerifyEntries(c, "", 1)
		intact := seq == 2 && detail == "" && prev == c[0].Hash
		if intact != (b == nil) {
			t.Fatalf("intact=%v but break=%v", intact, b)
		}
	})
}
