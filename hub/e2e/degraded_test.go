package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"ferry.dev/hub/internal/faultproxy"
	"ferry.dev/hub/internal/testbed"
)

// importBigAPIs creates n APIs in the Dev stand-in whose definitions are
// size bytes each (the sample, padded through its description) and returns
// their ids.
func importBigAPIs(t *testing.T, a *apim, n, size int) []string {
	t.Helper()
	var def map[string]any
	if err := json.Unmarshal(testbed.Sample(t, "v4-http-proxy-no-ids-plan-with-flows.json"), &def); err != nil {
		t.Fatal(err)
	}
	api := def["api"].(map[string]any)
	paths := api["listeners"].([]any)[0].(map[string]any)["paths"].([]any)[0].(map[string]any)
	ids := make([]string, n)
	for i := range n {
		api["name"] = fmt.Sprintf("big-%04d", i)
		paths["path"] = fmt.Sprintf("/big-%04d/", i)
		api["description"] = ""
		b, _ := json.Marshal(def)
		api["description"] = strings.Repeat(string(rune('a'+i%26)), max(0, size-len(b)))
		b, err := json.Marshal(def)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = importAPI(t, a, b)
	}
	return ids
}

// TestDegradedLink is A6: the Prod agent's link runs through a faultproxy
// adding 500 ± 200 ms of latency each way and capping each direction at
// 64 KiB/s, while FERRY_DEGRADED_N promotions (3) with 1 MiB definitions
// are delivered and accepted, one after another (each 1 MiB delivery alone
// takes 16 s at that rate). Every promotion ends ACCEPTED with one APIM
// create per crossId and no update, one delivery per promotion, no
// delivery retried (the hub's promotion_delivery_retries_total), no call
// that timed out in either process's log, and no reconnect of the link.
//
// FERRY_DEGRADED_BURST=1 submits every promotion at once instead, so that
// the deliveries share the slow link.
func TestDegradedLink(t *testing.T) {
	t.Parallel()
	n := chaosInt(t, "FERRY_DEGRADED_N", 3)
	burst := chaosInt(t, "FERRY_DEGRADED_BURST", 2) == 1
	const size = 1 << 20
	var px *faultproxy.Proxy
	w := newChaosWorld(t, func(hubAddr string) string {
		var err error
		if px, err = faultproxy.Listen("127.0.0.1:0", hubAddr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { px.Close() })
		return "http://" + px.Addr()
	})
	apis := importBigAPIs(t, w.devAPIM, n, size)
	px.SetLatency(500*time.Millisecond, 200*time.Millisecond)
	px.SetThrottle(64 << 10)
	connsBefore := px.Accepted()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*2*time.Minute+time.Minute)
	defer cancel()

	start := time.Now()
	ids := map[string]bool{}
	var each []time.Duration
	submit := func(api string) string {
		key := newKey()
		for {
			p, st, err := promoteKeyed(ctx, w.hubURL, w.hub.token, "demo", api, "Dev", "Prod", key)
			if err == nil && st == http.StatusCreated {
				ids[p.ID] = true
				return p.ID
			}
			if ctx.Err() != nil || (st != http.StatusTooManyRequests && st != http.StatusServiceUnavailable) {
				t.Fatalf("promote %s: %d %v", api, st, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	// Sessions last 15 minutes; the full-size run takes longer, so the
	// admin signs in again when the agent says the session is over.
	admin := newAccepter(w.prodAgnt.url, w.hubURL, w.prodAgnt.session)
	acceptWhenDelivered := func(id string) {
		for {
			st, err := tryJSON(ctx, "POST", w.prodAgnt.url+"/api/v1/tasks/"+id+"/_accept", admin.session, map[string]any{}, nil)
			if err == nil && st == http.StatusOK {
				return
			}
			if err == nil && st == http.StatusUnauthorized {
				admin.signIn(ctx)
			}
			if ctx.Err() != nil {
				t.Fatalf("promotion %s never reached the Prod agent (last %d %v)", id, st, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	if burst {
		var list []string
		for _, api := range apis {
			list = append(list, submit(api))
		}
		for _, id := range list {
			acceptWhenDelivered(id)
		}
	} else {
		for _, api := range apis {
			t0 := time.Now()
			id := submit(api)
			acceptWhenDelivered(id)
			each = append(each, time.Since(t0))
		}
	}
	var list []promotionTimes
	for {
		var err error
		list, err = listPromotions(ctx, w.hubURL, w.hub.token, "demo")
		done, failed := 0, 0
		for _, p := range list {
			switch {
			case !ids[p.ID]:
			case p.Status == "ACCEPTED":
				done++
			case terminal(p.Status):
				failed++
			}
		}
		if err == nil && done+failed == n {
			for _, p := range list {
				if ids[p.ID] && p.Status != "ACCEPTED" {
					t.Errorf("promotion %s (%s) ended %s: %s", p.ID, p.APIID, p.Status, p.Reason)
				}
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("deadline: %s; want %d ACCEPTED", statusCounts(fullOf(list)), n)
		}
		time.Sleep(500 * time.Millisecond)
	}
	took := time.Since(start)

	stats := w.prodAPIM.stats(t)
	duplicates := 0
	for _, p := range list {
		if c := stats.Creates[p.CrossID]; c != 1 {
			t.Errorf("crossId %s created %d times in Prod, want 1", p.CrossID, c)
			duplicates += max(0, c-1)
		}
	}
	for cross, c := range stats.Updates {
		duplicates += c
		t.Errorf("crossId %s updated %d times in Prod", cross, c)
	}
	for _, a := range listAPIs(t, w.prodAPIM) {
		if got := len(exportRaw(t, w.prodAPIM, a.ID)); got < size*9/10 {
			t.Errorf("Prod's %s exports %d bytes; the 1 MiB definition did not arrive whole", a.Name, got)
		}
	}
	events := auditSettled(t, w, ids, "PROMOTION_DELIVERED", "PROMOTION_ACCEPTED")
	for id := range ids {
		if c := events["PROMOTION_DELIVERED"][id]; c != 1 {
			t.Errorf("promotion %s delivered %d times, want 1", id, c)
		}
	}
	retries := metric(t, w.hub.url, "ferry_hub_promotion_delivery_retries_total")
	timeouts := strings.Count(w.hub.Output(), "in time") + strings.Count(w.prodAgnt.Output(), "in time")
	reconnects := px.Accepted() - connsBefore
	t.Logf("chaos summary: test=DegradedLink n=%d definition_bytes=%d latency=500±200ms throttle=64KiB/s burst=%v completed=%d duplicates=%d delivery_retries=%v timeouts_logged=%d reconnects=%d took=%v per_promotion=%v",
		n, size, burst, accepted(list), duplicates, retries, timeouts, reconnects, took.Round(time.Second), roundAll(each))
	if retries != 0 {
		t.Errorf("the hub retried %v deliveries on a slow but working link", retries)
	}
	if timeouts != 0 {
		t.Errorf("%d calls timed out on a slow but working link (grep 'in time' in the hub and Prod agent logs)", timeouts)
	}
	if reconnects != 0 {
		t.Errorf("the Prod agent's link was re-established %d times", reconnects)
	}
}

func accepted(list []promotionTimes) int {
	k := 0
	for _, p := range list {
		if p.Status == "ACCEPTED" {
			k++
		}
	}
	return k
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(100 * time.Millisecond)
	}
	return out
}
