package faultstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"ferry.dev/hub/internal/promotion"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// stuckQA is a Dispatcher whose QA agent never answers a delivery (it
// stopped reading its link) and whose other agents answer at once. It
// records the most QA calls in flight at once.
type stuckQA struct {
	release chan struct{} // closed at the end of the test

	mu            sync.Mutex
	qaNow, qaPeak int
	delivered     map[string]int // environment id → deliveries answered
}

func (d *stuckQA) Online(string) bool { return true }

func (d *stuckQA) CallEnv(ctx context.Context, envID string, op protocol.Op, _, _ any) error {
	if op != protocol.OpDeliverPromotion {
		return nil
	}
	if envID != "env-QA" {
		d.mu.Lock()
		d.delivered[envID]++
		d.mu.Unlock()
		return nil
	}
	d.mu.Lock()
	d.qaNow++
	d.qaPeak = max(d.qaPeak, d.qaNow)
	d.mu.Unlock()
	defer func() { d.mu.Lock(); d.qaNow--; d.mu.Unlock() }()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-d.release:
		return protocol.Errorf(protocol.CodeDisconnected, "link closed")
	}
}

// TestStuckEnvironmentHoldsFewSlots is A5 at the delivery loop: with more
// promotions waiting for a QA agent that never answers than there are
// delivery slots, QA's calls hold at most promotion.DeliverySlotsPerEnv of them, and Prod's
// promotions are still delivered at once. (Before the per-environment
// limit, QA's calls took all 16 slots until they timed out, a minute for
// a large definition, and Prod waited; hub/e2e.TestStuckReader measured 5 s
// p99 against 17 ms with real processes.)
func TestStuckEnvironmentHoldsFewSlots(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	disp := &stuckQA{release: make(chan struct{}), delivered: map[string]int{}}
	st, svc, _ := newWorkflowWith(t, disp, promotion.Options{Retry: 50 * time.Millisecond}, "Dev", "Prod", "QA")
	create := func(target string, i int) state.Promotion {
		t.Helper()
		id := fmt.Sprintf("%s-%02d", target, i)
		p, err := svc.Create(ctx, promotion.Request{OrgID: "o1", SourceEnvID: "env-Dev", TargetEnvID: "env-" + target, By: admin,
			API: protocol.ExportedAPI{APIID: "api-" + id, CrossID: "cross-" + id, Name: id, Definition: json.RawMessage(`{"api":{}}`)}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for i := range 2 * promotion.DeliverySlots {
		create("QA", i)
	}
	var run sync.WaitGroup
	run.Add(1)
	go func() { defer run.Done(); svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); close(disp.release); run.Wait() })

	// Let QA's deliveries take what they can.
	waitUntil(t, "QA's deliveries in flight", func() bool { disp.mu.Lock(); defer disp.mu.Unlock(); return disp.qaNow > 0 })
	time.Sleep(200 * time.Millisecond)
	for i := range 5 {
		p := create("Prod", i)
		waitUntil(t, "Prod's promotion "+p.ID+" delivered while QA is stuck", func() bool {
			got, err := st.Promotion(ctx, p.ID)
			return err == nil && got.Status == protocol.PromotionToBeValidated
		})
	}
	disp.mu.Lock()
	peak := disp.qaPeak
	disp.mu.Unlock()
	if peak > promotion.DeliverySlotsPerEnv {
		t.Errorf("QA's deliveries in flight peaked at %d, want at most %d", peak, promotion.DeliverySlotsPerEnv)
	}
}

// waitUntil polls cond every 10 ms for up to 5 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
