package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry.dev/hub/internal/faultproxy"
	"ferry.dev/shared/protocol"
)

// linkTap records the envelopes a faultproxy sees on the Prod agent's link:
// the commands each side sent and the replies each command got.
type linkTap struct {
	mu      sync.Mutex
	cmds    map[faultproxy.Direction][]tappedCmd           // in order sent
	replies map[faultproxy.Direction]map[string][]tapReply // by reply_to, in order
	bad     int                                            // frames that are not envelopes
}

type tappedCmd struct {
	id string
	op protocol.Op
}

type tapReply struct {
	status    protocol.ReplyStatus
	code      protocol.Code
	body      string
	duplicate bool // the reply to a copy of the command
}

func newLinkTap() *linkTap {
	return &linkTap{cmds: map[faultproxy.Direction][]tappedCmd{},
		replies: map[faultproxy.Direction]map[string][]tapReply{faultproxy.ClientToServer: {}, faultproxy.ServerToClient: {}}}
}

func (l *linkTap) observe(dir faultproxy.Direction, _ byte, payload []byte) {
	env, err := protocol.Decode(payload)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.bad++
		return
	}
	switch env.Type {
	case protocol.TypeCommand:
		var c protocol.Command
		_ = env.DecodePayload(&c)
		l.cmds[dir] = append(l.cmds[dir], tappedCmd{env.ID, c.Op})
	case protocol.TypeReply:
		var r protocol.Reply
		_ = env.DecodePayload(&r)
		tr := tapReply{status: r.Status, body: string(r.Body), duplicate: r.Duplicate}
		if r.Error != nil {
			tr.code = r.Error.Code
		}
		l.replies[dir][env.ReplyTo] = append(l.replies[dir][env.ReplyTo], tr)
	}
}

// commandsAndReplies selects the envelopes A8 sends twice: commands and
// their results (not the hello, which opens a connection once, nor health
// checks).
func commandsAndReplies(_ faultproxy.Direction, _ byte, payload []byte) bool {
	env, err := protocol.Decode(payload)
	return err == nil && (env.Type == protocol.TypeCommand || env.Type == protocol.TypeReply)
}

// TestDuplicateFrames is A8: a faultproxy between the Prod agent and the
// hub sends every command frame and every reply frame twice, both ways,
// while N promotions (FERRY_DUP_N, 10) are delivered and accepted. Each
// side effect happens once (one APIM create per crossId, no update, one
// PROMOTION_DELIVERED and one PROMOTION_ACCEPTED per promotion), every
// promotion ends ACCEPTED, and the second copy of each command is answered
// `duplicate` carrying the original result.
func TestDuplicateFrames(t *testing.T) {
	t.Parallel()
	n := chaosInt(t, "FERRY_DUP_N", 10)
	var px *faultproxy.Proxy
	w := newChaosWorld(t, func(hubAddr string) string {
		var err error
		if px, err = faultproxy.Listen("127.0.0.1:0", hubAddr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { px.Close() })
		return "http://" + px.Addr()
	})
	tap := newLinkTap()
	px.Observe(tap.observe)
	px.SetDuplicate(faultproxy.BothDirections, commandsAndReplies)
	connsBefore := px.Accepted()

	apis := importChaosAPIs(t, w.devAPIM, n)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ids := map[string]bool{}
	for _, api := range apis {
		key := newKey()
		p, st, err := promoteKeyed(ctx, w.hubURL, w.hub.token, "demo", api, "Dev", "Prod", key)
		for st == http.StatusTooManyRequests && ctx.Err() == nil {
			// The admin token's rate limit: retry with the same key.
			time.Sleep(200 * time.Millisecond)
			p, st, err = promoteKeyed(ctx, w.hubURL, w.hub.token, "demo", api, "Dev", "Prod", key)
		}
		if err != nil || st != http.StatusCreated {
			t.Fatalf("promote %s: %d %v", api, st, err)
		}
		ids[p.ID] = true
	}
	acc := newAccepter(w.prodAgnt.url, w.hubURL, w.prodAgnt.session)
	actx, stopAcc := context.WithCancel(ctx)
	accDone := make(chan struct{})
	go func() { defer close(accDone); acc.run(actx) }()

	var list []promotionTimes
	deadline := time.Now().Add(45 * time.Second)
	for {
		var err error
		list, err = listPromotions(ctx, w.hubURL, w.hub.token, "demo")
		accepted := 0
		for _, p := range list {
			if ids[p.ID] && p.Status == "ACCEPTED" {
				accepted++
			}
		}
		if err == nil && accepted == n {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("45s after the last promotion: %s; want %d ACCEPTED", statusCounts(fullOf(list)), n)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Let late copies (replies to reports, updates to Dev) land.
	time.Sleep(time.Second)
	stopAcc()
	<-accDone
	px.SetDuplicate(0, nil)

	// Side effects once.
	if len(list) != n {
		t.Errorf("the hub has %d promotions, want %d", len(list), n)
	}
	stats := w.prodAPIM.stats(t)
	crosses := map[string]bool{}
	for _, p := range list {
		if p.Status == "ACCEPTED" {
			crosses[p.CrossID] = true
			if c := stats.Creates[p.CrossID]; c != 1 {
				t.Errorf("crossId %s created %d times in Prod, want 1", p.CrossID, c)
			}
		}
	}
	duplicates := 0
	for cross, c := range stats.Creates {
		if c > 1 {
			duplicates += c - 1
		}
		if !crosses[cross] {
			t.Errorf("crossId %s created in Prod without an accepted promotion", cross)
		}
	}
	for cross, c := range stats.Updates {
		duplicates += c
		t.Errorf("crossId %s updated %d times in Prod; each API was promoted once", cross, c)
	}
	events := auditSettled(t, w, ids, "PROMOTION_DELIVERED")
	for _, ev := range []string{"PROMOTION_DELIVERED", "PROMOTION_ACCEPTED"} {
		for _, p := range list {
			if c := events[ev][p.ID]; c != 1 && (ev == "PROMOTION_DELIVERED" || p.Status == "ACCEPTED") {
				t.Errorf("promotion %s (%s) has %d %s audit entries, want 1", p.ID, p.Status, c, ev)
			}
		}
	}

	// The second copy of each command gets the first reply again, marked
	// duplicate.
	tap.mu.Lock()
	defer tap.mu.Unlock()
	dupAnswered, okTwice, dupWithBody, unanswered := 0, 0, 0, 0
	var okTwiceOps []string
	cmdsTotal := 0
	for _, dir := range []faultproxy.Direction{faultproxy.ServerToClient, faultproxy.ClientToServer} {
		back := faultproxy.ClientToServer
		if dir == faultproxy.ClientToServer {
			back = faultproxy.ServerToClient
		}
		for _, c := range tap.cmds[dir] {
			cmdsTotal++
			rs := tap.replies[back][c.id]
			var first, dups []tapReply
			for _, r := range rs {
				if r.duplicate {
					dups = append(dups, r)
				} else {
					first = append(first, r)
				}
			}
			switch {
			case len(rs) < 2:
				unanswered++
			case len(first) == 1 && len(dups) >= 1:
				dupAnswered++
				same := true
				for _, d := range dups {
					same = same && d.status == first[0].status && d.code == first[0].code && d.body == first[0].body
				}
				if same {
					dupWithBody++
				}
			case len(first) >= 2:
				okTwice++
				okTwiceOps = append(okTwiceOps, fmt.Sprintf("%s %s", dirName(dir), c.op))
			}
		}
	}
	reconnects := px.Accepted() - connsBefore
	sort.Strings(okTwiceOps)
	t.Logf("chaos summary: test=DuplicateFrames promotions=%d accepted=%d duplicates=%d frames_duplicated=%d commands=%d answered_duplicate=%d duplicate_with_result=%d answered_ok_twice=%d fewer_than_two_replies=%d reconnects=%d hub_policy_closes=%v",
		n, len(crosses), duplicates, px.Duplicated(), cmdsTotal, dupAnswered, dupWithBody, okTwice, unanswered, reconnects,
		metric(t, w.hub.url, "ferry_hub_link_policy_closes_total"))
	if len(okTwiceOps) > 0 {
		t.Errorf("commands answered twice as if new (no duplicate mark): %s", strings.Join(compact(okTwiceOps), ", "))
	}
	if px.Duplicated() == 0 || cmdsTotal == 0 {
		t.Fatalf("nothing was duplicated (%d frames, %d commands)", px.Duplicated(), cmdsTotal)
	}
	if dupAnswered != cmdsTotal {
		t.Errorf("%d of %d duplicated commands had their second copy answered as a duplicate (catalogue A8)", dupAnswered, cmdsTotal)
	}
	if dupWithBody != dupAnswered {
		t.Errorf("%d of %d duplicate replies carry the original result (catalogue A8)", dupWithBody, dupAnswered)
	}
	if reconnects != 0 {
		t.Errorf("the Prod agent's link was re-established %d times while frames were duplicated; duplicates must not cost the link", reconnects)
	}
}

func dirName(d faultproxy.Direction) string {
	if d == faultproxy.ServerToClient {
		return "hub→agent"
	}
	return "agent→hub"
}

// compact turns a sorted list into "x ×n" items.
func compact(s []string) []string {
	var out []string
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == s[i] {
			j++
		}
		out = append(out, fmt.Sprintf("%s ×%d", s[i], j-i))
		i = j
	}
	return out
}

func fullOf(l []promotionTimes) []hubPromotionFull {
	out := make([]hubPromotionFull, len(l))
	for i, p := range l {
		out[i] = p.hubPromotionFull
	}
	return out
}

// auditCounts counts, per event, the audit entries of each promotion in
// ids, reading the trail 100 entries at a time.
// auditSettled is auditCounts once every promotion of ids has an entry of
// each of events, or after 10 s: a decision's entry is written just after
// its status, so a test that saw the status may read the trail a moment
// before it.
func auditSettled(t *testing.T, w *chaosWorld, ids map[string]bool, events ...string) map[string]map[string]int {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		counts := auditCounts(t, w, ids)
		all := true
		for _, ev := range events {
			for id := range ids {
				all = all && counts[ev][id] > 0
			}
		}
		if all || time.Now().After(end) {
			return counts
		}
	}
}

func auditCounts(t *testing.T, w *chaosWorld, ids map[string]bool) map[string]map[string]int {
	t.Helper()
	out := map[string]map[string]int{}
	for _, e := range w.hub.audit(t, "demo") {
		if ids[e.PromotionID] {
			if out[e.Event] == nil {
				out[e.Event] = map[string]int{}
			}
			out[e.Event][e.PromotionID]++
		}
	}
	return out
}
