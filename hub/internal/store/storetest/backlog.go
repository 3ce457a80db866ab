package storetest

import (
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// testCountUndelivered checks that CountUndelivered counts, per target, the
// promotions still CREATED and not delivered, and follows their changes.
func testCountUndelivered(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	from := func(st ...protocol.PromotionStatus) []protocol.PromotionStatus { return st }
	for _, p := range []state.Promotion{
		promotion("p1", "prod", "c1"), promotion("p2", "prod", "c2"), promotion("p3", "prod", "c3"),
		promotion("p4", "prod", "c4"), promotion("p5", "qa", "c1"),
	} {
		seedPromotion(t, s, p)
	}
	update(t, s, "p3", state.PromotionUpdate{From: from(created), To: toBeValid, Delivered: true, At: at(time.Minute)})
	update(t, s, "p4", state.PromotionUpdate{From: from(created), To: cancelled, At: at(time.Minute)})
	count := func(env string, want int) {
		t.Helper()
		n, err := s.CountUndelivered(ctx, env)
		if err != nil || n != want {
			t.Errorf("CountUndelivered(%s) = %d, %v; want %d", env, n, err, want)
		}
	}
	count("prod", 2) // p1 and p2; p3 is delivered, p4 cancelled
	count("qa", 1)
	count("dev", 0)
	count("", 0)
	update(t, s, "p1", state.PromotionUpdate{From: from(created), To: toBeValid, Delivered: true, At: at(2 * time.Minute)})
	update(t, s, "p2", state.PromotionUpdate{From: from(created), To: rejected, At: at(2 * time.Minute)})
	count("prod", 0)
	seedPromotion(t, s, promotion("p6", "prod", "c4"))
	count("prod", 1)
}
