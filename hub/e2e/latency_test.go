package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestDispatchLatency is B5: with the Prod agent online on a loopback
// link, FERRY_LATENCY_N promotions (50) are made one after another at the
// hub and accepted at the Prod agent as soon as their task shows. From
// the times the processes record (one machine, one clock):
//
//   - promotion → command received: the Prod agent's task receivedAt less
//     the hub's promotion createdAt;
//   - result → hub state: the hub's PROMOTION_ACCEPTED audit entry time
//     less the agent's decision time (decidedAt, stored after the APIM
//     import, before the report).
//
// Both p99 must be ≤ 1 s. The wall time seen by the test (POST → task
// visible at the agent), which includes its 10 ms polling, is logged
// beside them. (The hub is not polled per promotion: the admin token's
// rate limit allows 20 requests/s.)
func TestDispatchLatency(t *testing.T) {
	t.Parallel()
	n := chaosInt(t, "FERRY_LATENCY_N", 50)
	w := newChaosWorld(t, nil)
	apis := importChaosAPIs(t, w.devAPIM, n)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	type sample struct {
		id                string
		created, received time.Time // hub, agent
		decided           time.Time // agent
		postAt, seenAt    time.Time // test
	}
	samples := make([]sample, 0, n)
	for _, api := range apis {
		s := sample{postAt: time.Now()}
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
		s.id = p.ID
		var task struct {
			ReceivedAt *time.Time `json:"receivedAt"`
		}
		for {
			st, err := tryJSON(ctx, "GET", w.prodAgnt.url+"/api/v1/tasks/"+p.ID, w.prodAgnt.session, nil, &task)
			if err == nil && st == http.StatusOK && task.ReceivedAt != nil {
				break
			}
			if ctx.Err() != nil || time.Since(s.postAt) > 30*time.Second {
				t.Fatalf("task %s not at the Prod agent 30s after the promotion (last status %d, %v)", p.ID, st, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		s.seenAt, s.received = time.Now(), *task.ReceivedAt
		var d struct {
			Outcome   string     `json:"outcome"`
			DecidedAt *time.Time `json:"decidedAt"`
		}
		if st, err := tryJSON(ctx, "POST", w.prodAgnt.url+"/api/v1/tasks/"+p.ID+"/_accept", w.prodAgnt.session, map[string]any{}, &d); err != nil || st != http.StatusOK || d.DecidedAt == nil {
			t.Fatalf("accept %s: %d %v %+v", p.ID, st, err, d)
		}
		s.decided = *d.DecidedAt
		samples = append(samples, s)
	}

	// The hub's own times: createdAt, and the audit entry of the accept.
	var list []promotionTimes
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		list, err = listPromotions(ctx, w.hubURL, w.hub.token, "demo")
		accepted := 0
		for _, p := range list {
			if p.Status == "ACCEPTED" {
				accepted++
			}
		}
		if err == nil && accepted == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after the last accept: %s (%v); want %d ACCEPTED", statusCounts(fullOf(list)), err, n)
		}
		time.Sleep(500 * time.Millisecond)
	}
	created := map[string]time.Time{}
	for _, p := range list {
		created[p.ID] = p.CreatedAt
	}
	acceptedAt := auditTimes(t, w, "PROMOTION_ACCEPTED")
	var dispatch, result, wallDispatch []time.Duration
	for _, s := range samples {
		c, ok := created[s.id]
		a, ok2 := acceptedAt[s.id]
		if !ok || !ok2 {
			t.Fatalf("promotion %s: hub createdAt known %v, PROMOTION_ACCEPTED audited %v", s.id, ok, ok2)
		}
		dispatch = append(dispatch, s.received.Sub(c))
		result = append(result, a.Sub(s.decided))
		wallDispatch = append(wallDispatch, s.seenAt.Sub(s.postAt))
	}
	pd, pr := percentile(dispatch, 99), percentile(result, 99)
	t.Logf("chaos summary: test=DispatchLatency n=%d dispatch_p50=%v dispatch_p99=%v dispatch_max=%v result_p50=%v result_p99=%v result_max=%v wall_promote_to_task_p99=%v",
		len(samples), ms(percentile(dispatch, 50)), ms(pd), ms(percentile(dispatch, 100)), ms(percentile(result, 50)), ms(pr), ms(percentile(result, 100)),
		ms(percentile(wallDispatch, 99)))
	for name, ds := range map[string][]time.Duration{"dispatch": dispatch, "result": result} {
		for i, d := range ds {
			if d < -5*time.Millisecond {
				t.Errorf("%s latency of promotion %s is negative (%v): the recorded times are inconsistent", name, samples[i].id, d)
			}
		}
	}
	if pd > time.Second {
		t.Errorf("promotion → task received p99 = %v, want ≤ 1s", ms(pd))
	}
	if pr > time.Second {
		t.Errorf("result → hub state p99 = %v, want ≤ 1s", ms(pr))
	}
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// auditTimes returns when each promotion got an audit entry of event (the
// first one), reading the trail 100 entries at a time.
func auditTimes(t *testing.T, w *chaosWorld, event string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	after := int64(0)
	for {
		var page struct {
			Items []struct {
				Event, PromotionID string
				Time               time.Time
			}
			NextAfterSeq int64 `json:"nextAfterSeq"`
		}
		if st := w.hub.call(t, "GET", fmt.Sprintf("/api/v1/orgs/demo/audit?limit=100&event=%s&afterSeq=%d", event, after), nil, &page); st != http.StatusOK {
			t.Fatalf("audit: %d", st)
		}
		for _, e := range page.Items {
			if _, seen := out[e.PromotionID]; !seen && e.Event == event {
				out[e.PromotionID] = e.Time
			}
		}
		if page.NextAfterSeq == 0 || len(page.Items) == 0 {
			return out
		}
		after = page.NextAfterSeq
	}
}
