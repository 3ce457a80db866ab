package e2e

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"ferry.dev/hub/internal/faultproxy"
	"ferry.dev/hub/internal/testbed"
)

// The chaos tests run the catalogue's fault-injection rows A1-A4
// (shared/reference/reliability.md) on real processes, scaled for make
// test. Settings, for scripts/chaos:
//
//	FERRY_CHAOS_N          promotions per test (40)
//	FERRY_CHAOS_KILLS      least number of kills in the kill loops (6)
//	FERRY_CHAOS_FLAP       how long the link flaps at least (15s)
//	FERRY_CHAOS_PARTITION  how long the silent partition lasts at least (35s)
//
// Each logs one "chaos summary:" line with its counts.

// chaosRun starts a submitter of n promotions at the hub and an accepter at
// the Prod agent; stop ends both and waits for them.
// Submissions are spread over span, at most 20/s (A1's rate).
func chaosRun(t *testing.T, w *chaosWorld, n int, span time.Duration) (sub *submitter, acc *accepter, stop func()) {
	t.Helper()
	apis := importChaosAPIs(t, w.devAPIM, n)
	ctx, cancel := context.WithCancel(context.Background())
	sub = newSubmitter(w.hubURL, w.hub.token, apis, max(50*time.Millisecond, span/time.Duration(n)))
	acc = newAccepter(w.prodAgnt.url, w.hubURL, w.prodAgnt.session)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sub.run(ctx) }()
	go func() { defer wg.Done(); acc.run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return sub, acc, stop
}

func finished(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestChaosHubKillLoop is A1: the hub is SIGKILLed every 2 s and restarted
// within 1 s on the same address and data dir while promotions are
// submitted and accepted. Every promotion answered 201 ends ACCEPTED
// within 2 minutes of the last kill; requests that got no answer left no
// promotion or a terminal one; the Prod stand-in saw exactly one create and
// no update per crossId; the audit chain verifies.
func TestChaosHubKillLoop(t *testing.T) {
	t.Parallel()
	n, minKills := chaosInt(t, "FERRY_CHAOS_N", 40), chaosInt(t, "FERRY_CHAOS_KILLS", 6)
	w := newChaosWorld(t, nil)
	sub, _, stop := chaosRun(t, w, n, time.Duration(minKills)*2*time.Second)

	// The loop does not wait for the submitter: each kill also cuts the
	// Dev agent's link, whose backoff grows while sessions stay short, so
	// the rest is submitted after the last kill.
	kills := 0
	for kills < minKills {
		time.Sleep(2 * time.Second)
		addr, dir := w.hub.addr, w.hub.dir
		w.hub.Kill() // SIGKILL
		kills++
		time.Sleep(time.Duration(100+rand.IntN(700)) * time.Millisecond)
		w.hub = startHub(t, addr, dir)
	}
	lastKill := time.Now()
	waitSubmitted(t, sub, lastKill.Add(2*time.Minute))
	o := w.settle(t, "HubKillLoop", sub, lastKill.Add(2*time.Minute), kills)
	stop()
	if o.answered == 0 {
		t.Error("no promotion was answered 201")
	}
}

// waitSubmitted waits for the submitter to give every API an outcome.
func waitSubmitted(t *testing.T, sub *submitter, deadline time.Time) {
	t.Helper()
	select {
	case <-sub.done:
	case <-time.After(time.Until(deadline)):
		t.Errorf("the submitter had not finished by the deadline")
	}
}

// TestChaosAgentKillLoop is A2: the Prod agent is SIGKILLed every 3 s and
// restarted at once while it accepts tasks, so some kills land between the
// APIM import and the report. Every promotion ends ACCEPTED; the Prod
// stand-in saw exactly one create and no update per crossId.
func TestChaosAgentKillLoop(t *testing.T) {
	t.Parallel()
	n, minKills := chaosInt(t, "FERRY_CHAOS_N", 40), chaosInt(t, "FERRY_CHAOS_KILLS", 6)
	w := newChaosWorld(t, nil)
	sub, _, stop := chaosRun(t, w, n, time.Duration(minKills)*3*time.Second)

	kills := 0
	// Kill until every promotion is accepted at the hub, so that kills keep
	// landing among accepts, imports and reports to the last one.
	for kills < minKills || !finished(sub.done) || !allAccepted(w, n) {
		time.Sleep(time.Duration(2500+rand.IntN(1000)) * time.Millisecond)
		w.prodAgnt.Signal(syscall.SIGKILL)
		<-w.prodAgnt.Done()
		kills++
		w.prodAgnt.restart(t)
		if kills >= 10*minKills {
			break
		}
	}
	lastKill := time.Now()
	waitSubmitted(t, sub, lastKill.Add(2*time.Minute))
	o := w.settle(t, "AgentKillLoop", sub, lastKill.Add(2*time.Minute), kills)
	stop()
	if o.answered != n {
		t.Errorf("%d of %d promotions answered 201; the hub was never down", o.answered, n)
	}
}

// allAccepted reports whether the hub shows n promotions ACCEPTED.
func allAccepted(w *chaosWorld, n int) bool {
	list, err := allPromotions(context.Background(), w.hubURL, w.hub.token)
	if err != nil {
		return false
	}
	accepted := 0
	for _, p := range list {
		if p.Status == "ACCEPTED" {
			accepted++
		}
	}
	return accepted >= n
}

// TestChaosLinkFlap is A3: a faultproxy between the Prod agent and the hub
// resets every connection at random every 1-3 s while promotions flow. 0
// lost, 0 duplicates.
func TestChaosLinkFlap(t *testing.T) {
	t.Parallel()
	n, minFlap := chaosInt(t, "FERRY_CHAOS_N", 40), chaosDuration(t, "FERRY_CHAOS_FLAP", 15*time.Second)
	var px *faultproxy.Proxy
	w := newChaosWorld(t, func(hubAddr string) string {
		var err error
		if px, err = faultproxy.Listen("127.0.0.1:0", hubAddr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { px.Close() })
		return "http://" + px.Addr()
	})
	sub, _, stop := chaosRun(t, w, n, minFlap)

	start, resets := time.Now(), 0
	for time.Since(start) < minFlap || !finished(sub.done) {
		time.Sleep(time.Duration(1000+rand.IntN(2000)) * time.Millisecond)
		px.Reset()
		resets++
		if time.Since(start) > 10*minFlap {
			break
		}
	}
	last := time.Now()
	// How long the agent takes to return once the link is steady (A3 asks
	// ≤ 5 s; the agent's backoff grows while sessions stay short).
	// The first 500ms let the hub see the last reset; they are counted.
	var reconnect time.Duration
	time.Sleep(500 * time.Millisecond)
	for reconnect == 0 && time.Since(last) < 2*time.Minute {
		if on, err := envOnline(context.Background(), w.hubURL, w.hub.token, "Prod"); err == nil && on {
			reconnect = time.Since(last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitSubmitted(t, sub, last.Add(2*time.Minute))
	o := w.settle(t, "LinkFlap", sub, last.Add(2*time.Minute), resets)
	stop()
	if o.answered != n {
		t.Errorf("%d of %d promotions answered 201; the hub's link to Dev was never cut", o.answered, n)
	}
	t.Logf("chaos summary: test=LinkFlap resets=%d proxy_connections=%d reconnect_after_last_reset=%v",
		resets, px.Accepted(), reconnect.Round(time.Millisecond))
}

// TestSilentPartition is A4: the proxy between the Prod agent and the hub
// blackholes the link (connections stay open, nothing is forwarded). The
// hub shows the agent offline within 40 s and never online again during
// the partition; promotions made meanwhile wait, and once healed they are
// delivered (TO_BE_VALIDATED) within 10 s of the agent showing online.
func TestSilentPartition(t *testing.T) {
	t.Parallel()
	const queued = 5
	minPartition := chaosDuration(t, "FERRY_CHAOS_PARTITION", 35*time.Second)
	var px *faultproxy.Proxy
	w := newChaosWorld(t, func(hubAddr string) string {
		var err error
		if px, err = faultproxy.Listen("127.0.0.1:0", hubAddr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { px.Close() })
		return "http://" + px.Addr()
	})
	apis := importChaosAPIs(t, w.devAPIM, queued)
	ctx := context.Background()

	px.Hang()
	start := time.Now()
	offlineIn := time.Duration(0)
	for offlineIn == 0 {
		if on, err := envOnline(ctx, w.hubURL, w.hub.token, "Prod"); err == nil && !on {
			offlineIn = time.Since(start)
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("the hub still shows Prod online %v into a silent partition", time.Since(start).Round(time.Second))
		}
		time.Sleep(250 * time.Millisecond)
	}
	if offlineIn > 40*time.Second {
		t.Errorf("hub showed Prod offline %v into the partition, want ≤ 40s", offlineIn.Round(time.Millisecond))
	}

	var ids []string
	for _, api := range apis {
		p, st := w.promote(t, api)
		if st != http.StatusCreated {
			t.Fatalf("promote while Prod is partitioned: %d, want 201", st)
		}
		ids = append(ids, p.ID)
	}
	falseOnline := 0
	for time.Since(start) < minPartition {
		if on, err := envOnline(ctx, w.hubURL, w.hub.token, "Prod"); err == nil && on {
			falseOnline++
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, id := range ids {
		if p := w.promotion(t, id); p.Status != "CREATED" {
			t.Errorf("promotion %s is %s during the partition, want CREATED", id, p.Status)
		}
	}
	if falseOnline > 0 {
		t.Errorf("the hub showed Prod online %d times during the partition", falseOnline)
	}

	px.Heal()
	healed := time.Now()
	var online time.Time
	testbed.WaitFor(t, 90*time.Second, "Prod online after healing", func() bool {
		on, err := envOnline(ctx, w.hubURL, w.hub.token, "Prod")
		if err == nil && on {
			online = time.Now()
			return true
		}
		return false
	})
	var delivered time.Duration
	testbed.WaitFor(t, 30*time.Second, "queued promotions delivered", func() bool {
		for _, id := range ids {
			if w.promotion(t, id).Status != "TO_BE_VALIDATED" {
				return false
			}
		}
		delivered = time.Since(online)
		return true
	})
	if delivered > 10*time.Second {
		t.Errorf("queued promotions delivered %v after Prod came back online, want ≤ 10s", delivered.Round(time.Millisecond))
	}
	t.Logf("chaos summary: test=SilentPartition queued=%d offline_after=%v false_online=%d reconnect_after_heal=%v delivered_after_online=%v lost=0",
		queued, offlineIn.Round(time.Millisecond), falseOnline, online.Sub(healed).Round(time.Millisecond), delivered.Round(time.Millisecond))
}
