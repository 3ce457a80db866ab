package audit

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
)

// envInt reads a positive integer knob from the environment, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// bigChain builds an n-record chain with the package's own hashing. The
// records vary (events, actors, details) so that no two share a hash.
func bigChain(n int) []state.AuditEntry {
	events := []string{PromotionCreated, PromotionDelivered, PromotionAccepted, UserCreated, AccessDenied}
	out := make([]state.AuditEntry, n)
	prev := ""
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	for i := range n {
		e := state.AuditEntry{
			OrgID: "org_1", Seq: int64(i + 1), Time: t0.Add(time.Duration(i) * time.Millisecond * 1500),
			Event: events[i%len(events)], Actor: fmt.Sprintf("user:u%d", i%97), EnvID: fmt.Sprintf("env_%d", i%3),
			PromotionID: fmt.Sprintf("prm_%d", i/4), Detail: fmt.Sprintf("detail %d", i), PrevHash: prev,
		}
		e.Hash = Hash(e)
		prev = e.Hash
		out[i] = e
	}
	return out
}

// tamper kinds.
const (
	modify  = "modify"
	rehash  = "modify+rehash"
	del     = "delete"
	insert  = "insert"
	reorder = "reorder"
)

// verifyFrom runs the real verifier on c[from:] as the stored tail after
// the (trusted, already verified) entry before from.
func verifyFrom(c []state.AuditEntry, from int, prev string) *Break {
	return VerifyEntries(c[from:], prev, int64(from+1))
}

// TestTamperDetectionAtScale is E2 of shared/reference/reliability.md: in a
// 100,000-record chain, 1,000 trials each modify, delete, insert or reorder
// one random record; VerifyEntries must flag every one and name the first
// broken seq, and must pass the untouched chain.
//
// Every trial tampers with the one chain in place and restores it after. To
// keep the test within a few seconds under -race, the verifier starts up to
// 200 records before the tampered one (at a random point, from the hash of
// the entry before it, which the untouched chain proves) instead of at seq 1;
// an untouched prefix cannot change its verdict, and the full chain is
// verified before the trials and compared after them.
// FERRY_AUDIT_RECORDS and FERRY_AUDIT_TRIALS scale the test: the defaults
// are 100,000 records and 1,000 trials, but 20,000 records under -race,
// where hashing is about 40 times slower (set FERRY_AUDIT_RECORDS=100000 to
// run the full size with -race, about 15 s).
//
// What a chain cannot show by itself, and is left to the external anchor
// (E7): removing the last records, appending well-formed records, or
// rewriting a record and every one after it. So deletions, forged
// insertions and rehashed modifications pick a record that has a successor.
func TestTamperDetectionAtScale(t *testing.T) {
	n := envInt(t, "FERRY_AUDIT_RECORDS", defaultRecords)
	trials := envInt(t, "FERRY_AUDIT_TRIALS", 1000)
	if n < 10 {
		t.Fatalf("FERRY_AUDIT_RECORDS=%d: need at least 10", n)
	}
	c := bigChain(n)
	if b := VerifyEntries(c, "", 1); b != nil {
		t.Fatalf("untouched %d-record chain reported broken at %d: %s", n, b.Seq, b.Reason)
	}
	pristine := slices.Clone(c)
	rng := rand.New(rand.NewPCG(2026, 11))
	kinds := []string{modify, rehash, del, insert, reorder}
	flagged := map[string]int{}
	tried := map[string]int{}
	const back = 200
	for trial := range trials {
		kind := kinds[trial%len(kinds)]
		tried[kind]++
		var i int // index of the tampered record
		switch kind {
		case modify:
			i = rng.IntN(n)
		default:
			i = rng.IntN(n - 1) // has a successor
		}
		from := max(0, i-rng.IntN(back))
		prev := ""
		if from > 0 {
			prev = c[from-1].Hash
		}
		var b *Break
		var want int64
		switch kind {
		case modify:
			saved := c[i]
			field := rng.IntN(9)
			mutateField(&c[i], field, rng)
			want = int64(i + 1)
			b = verifyFrom(c, from, prev)
			c[i] = saved
		case rehash:
			// A forger who can also recompute the record's hash: only
			// the next record's previous-hash betrays it.
			saved := c[i]
			c[i].Actor = "user:mallory"
			c[i].Hash = Hash(c[i])
			want = int64(i + 2)
			b = verifyFrom(c, from, prev)
			c[i] = saved
		case reorder:
			c[i], c[i+1] = c[i+1], c[i]
			want = int64(i + 1)
			b = verifyFrom(c, from, prev)
			c[i], c[i+1] = c[i+1], c[i]
		case del:
			// View c[from:i] ++ c[i+1:] in place: shift c[from:i] right
			// by one over c[i].
			saved := c[i]
			copy(c[from+1:i+1], c[from:i])
			want = int64(i + 1)
			b = VerifyEntries(c[from+1:], prev, int64(from+1))
			copy(c[from:i], c[from+1:i+1])
			c[i] = saved
		case insert:
			// A well-formed forged record (right seq, previous-hash and
			// hash) before c[i]: c[i] then stands where seq i+2 belongs.
			forged := state.AuditEntry{OrgID: c[i].OrgID, Seq: int64(i + 1), Time: c[i].Time, Event: PromotionAccepted,
				Actor: "user:mallory", Detail: "forged"}
			if i > 0 {
				forged.PrevHash = c[i-1].Hash
			}
			forged.Hash = Hash(forged)
			want = int64(i + 2)
			if from == 0 {
				// No slot before the chain to shift into: copy (rare).
				view := make([]state.AuditEntry, 0, n+1)
				view = append(view, c[:i]...)
				view = append(view, forged)
				view = append(view, c[i:]...)
				b = VerifyEntries(view, "", 1)
				break
			}
			// View c[from:i] ++ forged ++ c[i:] in place: shift c[from:i]
			// left by one over c[from-1], put forged at c[i-1].
			saved := c[from-1]
			copy(c[from-1:i-1], c[from:i])
			c[i-1] = forged
			b = VerifyEntries(c[from-1:], prev, int64(from+1))
			copy(c[from:i], c[from-1:i-1])
			c[from-1] = saved
		}
		switch {
		case b == nil:
			t.Errorf("trial %d (%s of seq %d, verified from seq %d): not detected", trial, kind, i+1, from+1)
		case b.Seq != want:
			t.Errorf("trial %d (%s of seq %d): break named at seq %d (%s), want %d", trial, kind, i+1, b.Seq, b.Reason, want)
		default:
			flagged[kind]++
		}
	}
	total := 0
	for _, k := range kinds {
		total += flagged[k]
		t.Logf("%-14s flagged %d/%d", k, flagged[k], tried[k])
	}
	if total != trials {
		t.Errorf("flagged %d/%d tampered chains", total, trials)
	}
	// Every trial restored the chain (so each trial saw only its own
	// tampering), and untouched windows, verified the way the trials are,
	// pass: 0 false positives.
	if !slices.Equal(c, pristine) {
		t.Fatal("a trial did not restore the chain")
	}
	for range 100 {
		from := rng.IntN(n - 1)
		prev := ""
		if from > 0 {
			prev = c[from-1].Hash
		}
		if b := VerifyEntries(c[from:min(n, from+back)], prev, int64(from+1)); b != nil {
			t.Errorf("untouched chain verified from seq %d: false positive at %d (%s)", from+1, b.Seq, b.Reason)
		}
	}
}

// mutateField changes one field of e (chosen by field) to a different value.
func mutateField(e *state.AuditEntry, field int, rng *rand.Rand) {
	switch field {
	case 0:
		e.Detail += " (edited)"
	case 1:
		e.Actor = "user:mallory"
	case 2:
		if e.Event == PromotionRejected {
			e.Event = PromotionAccepted
		} else {
			e.Event = PromotionRejected
		}
	case 3:
		e.Time = e.Time.Add(time.Duration(1+rng.IntN(1000)) * time.Millisecond)
	case 4:
		e.PromotionID += "x"
	case 5:
		e.EnvID += "x"
	case 6:
		e.OrgID += "x"
	case 7:
		e.Hash = Hash(state.AuditEntry{Detail: fmt.Sprint(rng.Int64())})
	case 8:
		e.PrevHash = Hash(state.AuditEntry{Detail: fmt.Sprint(rng.Int64())})
	}
}
