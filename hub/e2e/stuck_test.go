package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"ferry.dev/hub/internal/testbed"
)

// TestStuckReader is A5: the QA agent stops reading its link (SIGSTOP)
// while FERRY_STUCK_BIG promotions (20) with 1 MiB definitions wait to be
// delivered to it, and the hub must neither let them hold up the other
// environments nor lose them:
//
//   - baseline: FERRY_STUCK_N promotions (20) from Dev to Prod, one after
//     another, each delivered (the hub's deliveredAt) before the next;
//   - stuck: QA's agent is stopped, the big promotions to QA are made, and
//     FERRY_STUCK_N more go from Dev to Prod the same way; each must reach
//     Prod within 30 s (without a per-environment limit QA's calls, which
//     wait a minute each for 1 MiB, took every delivery slot). The hub
//     must close QA's link and show it offline;
//   - recovery: QA's agent continues, links again and gets every big
//     promotion, each recorded as delivered exactly once.
//
// Logged: when the hub closed QA's link after the stop, the hub's live
// heap before and at most while QA was stuck, and Prod's dispatch p50 and
// p99 (createdAt → deliveredAt at the hub) in both phases.
// FERRY_STUCK_STRICT=1 (scripts/chaos) also checks the catalogue's figures:
// the heap grows by at most 20 MiB, the link is closed within 40 s of the
// stop (write deadline 10 s + 30 s pong wait), and Prod's stuck-phase p99
// is within 10 % (or 5 ms) of the baseline's.
func TestStuckReader(t *testing.T) {
	t.Parallel()
	n := chaosInt(t, "FERRY_STUCK_N", 20)
	m := chaosInt(t, "FERRY_STUCK_BIG", 20)
	strict := os.Getenv("FERRY_STUCK_STRICT") == "1"
	dir := t.TempDir()
	// The test polls each promotion with the admin token, more than its
	// default rate limit allows at full size.
	h := startHub(t, testbed.FreeAddr(t), filepath.Join(dir, "hub"), "FERRY_RATE_LIMIT_TOKEN=200:400")
	h.setupOrg(t, "demo", "Dev", "Prod", "QA")
	devAPIM, prodAPIM, qaAPIM := startAPIM(t, ""), startAPIM(t, ""), startAPIM(t, "")
	startAgent(t, h, devAPIM, filepath.Join(dir, "dev"), h.linkToken(t, "demo", "Dev"))
	startAgent(t, h, prodAPIM, filepath.Join(dir, "prod"), h.linkToken(t, "demo", "Prod"))
	qa := startAgent(t, h, qaAPIM, filepath.Join(dir, "qa"), h.linkToken(t, "demo", "QA"))
	connected := func() float64 { return metric(t, h.url, "ferry_hub_agents_connected") }
	testbed.WaitFor(t, 30*time.Second, "three agents online", func() bool { return connected() == 3 })
	small := importChaosAPIs(t, devAPIM, 2*n)
	big := importBigAPIs(t, devAPIM, m, chaosInt(t, "FERRY_STUCK_SIZE", 1<<20))
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	promote := func(api, dst string) string {
		t.Helper()
		key := newKey()
		for {
			p, st, err := promoteKeyed(ctx, h.url, h.token, "demo", api, "Dev", dst, key)
			if err == nil && st == http.StatusCreated {
				return p.ID
			}
			if ctx.Err() != nil || (st != http.StatusTooManyRequests && st != http.StatusServiceUnavailable) {
				t.Fatalf("promote %s to %s: %d %v", api, dst, st, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// delivered waits until the hub records every promotion of ids as
	// delivered, for at most within, and returns them. It asks for each
	// promotion on its own, every poll apart: listing them all would make
	// the hub's work per poll grow with the test (and the stuck phase,
	// with more promotions, look slower than the baseline).
	delivered := func(ids []string, within time.Duration, poll time.Duration) (map[string]promotionTimes, bool) {
		t.Helper()
		end := time.Now().Add(within)
		got := map[string]promotionTimes{}
		for {
			for _, id := range ids {
				if _, ok := got[id]; ok {
					continue
				}
				var p promotionTimes
				if st, err := tryJSON(ctx, "GET", h.url+"/api/v1/orgs/demo/promotions/"+id, h.token, nil, &p); err == nil && st == http.StatusOK && p.DeliveredAt != nil {
					got[id] = p
				}
			}
			if len(got) == len(ids) {
				return got, true
			}
			if time.Now().After(end) || ctx.Err() != nil {
				return got, false
			}
			time.Sleep(poll)
		}
	}
	seen := map[string]promotionTimes{} // Prod's promotions as first seen delivered
	toProd := func(apis []string, phase string) []string {
		t.Helper()
		var ids []string
		for _, api := range apis {
			id := promote(api, "Prod")
			ids = append(ids, id)
			p, ok := delivered([]string{id}, 30*time.Second, 20*time.Millisecond)
			if !ok {
				t.Fatalf("Prod's promotion %s not delivered within 30 s (%s)", id, phase)
			}
			seen[id] = p[id]
		}
		return ids
	}
	scrape := &http.Client{Timeout: 10 * time.Second}

	base := toProd(small[:n], "baseline")
	heapBefore := hubGauges(t, scrape, h.url).heap

	// QA's agent stops reading; its promotions pile up at the hub.
	qa.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	t.Cleanup(func() { qa.Signal(syscall.SIGCONT) }) // a stopped process still dies of SIGKILL, but let it run its end
	var heapMax float64
	var closedAfter time.Duration // when the hub first showed QA offline
	var smu sync.Mutex
	sampling, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for sampling.Err() == nil {
			if g, err := hubGaugesErr(scrape, h.url); err == nil {
				smu.Lock()
				heapMax = max(heapMax, g.heap)
				if g.connected == 2 && closedAfter == 0 {
					closedAfter = time.Since(stopped)
				}
				smu.Unlock()
			}
			sleepCtx(sampling, 250*time.Millisecond)
		}
	}()
	var qaIDs []string
	for _, api := range big {
		qaIDs = append(qaIDs, promote(api, "QA"))
	}
	stuck := toProd(small[n:], "QA's agent stopped, its 1 MiB promotions waiting")
	testbed.WaitFor(t, 2*time.Minute, "the hub closes the stopped QA agent's link", func() bool {
		smu.Lock()
		defer smu.Unlock()
		return closedAfter > 0
	})
	stopSampling()
	sampler.Wait()

	// QA's agent continues: it links again and gets every promotion.
	qa.Signal(syscall.SIGCONT)
	testbed.WaitFor(t, time.Minute, "QA's agent back online", func() bool { return connected() == 3 })
	qaDone, ok := delivered(qaIDs, 3*time.Minute, 500*time.Millisecond)
	if !ok {
		t.Fatalf("3 minutes after QA's agent continued, %d of its %d promotions are delivered", len(qaDone), len(qaIDs))
	}
	ids := map[string]bool{}
	for _, id := range append(append(append([]string{}, base...), stuck...), qaIDs...) {
		ids[id] = true
	}
	events := auditSettled(t, &chaosWorld{world: &world{hub: h}}, ids, "PROMOTION_DELIVERED")
	for id := range ids {
		if c := events["PROMOTION_DELIVERED"][id]; c != 1 {
			t.Errorf("promotion %s has %d PROMOTION_DELIVERED entries, want 1", id, c)
		}
	}

	dispatch := func(ids []string) []time.Duration {
		var ds []time.Duration
		for _, id := range ids {
			p := seen[id]
			ds = append(ds, p.DeliveredAt.Sub(p.CreatedAt))
		}
		return ds
	}
	bd, sd := dispatch(base), dispatch(stuck)
	bp99, sp99 := percentile(bd, 99), percentile(sd, 99)
	growth := heapMax - heapBefore
	t.Logf("chaos summary: test=StuckReader prod_n=%d qa_big=%d link_closed_after=%v heap_before=%.1fMiB heap_max_stuck=%.1fMiB heap_growth=%+.1fMiB prod_dispatch_p50=%v->%v prod_dispatch_p99=%v->%v",
		n, m, closedAfter.Round(100*time.Millisecond), heapBefore/(1<<20), heapMax/(1<<20), growth/(1<<20),
		ms(percentile(bd, 50)), ms(percentile(sd, 50)), ms(bp99), ms(sp99))
	if strict {
		if growth > 20<<20 {
			t.Errorf("hub live heap grew by %.1f MiB while QA's agent was stuck, want ≤ 20 MiB", growth/(1<<20))
		}
		if closedAfter > 40*time.Second {
			t.Errorf("the hub closed the stuck link %v after the stop, want ≤ 40 s", closedAfter.Round(time.Second))
		}
		if sp99 > bp99+bp99/10 && sp99 > bp99+5*time.Millisecond {
			t.Errorf("Prod's dispatch p99 went from %v to %v while QA was stuck, want within 10 %% (or 5 ms)", ms(bp99), ms(sp99))
		}
	}
}
