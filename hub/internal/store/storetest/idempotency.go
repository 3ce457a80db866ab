package storetest

import (
	"errors"
	"fmt"
	"testing"

	"ferry.dev/hub/internal/state"
)

// keyed returns promotion(id, target, crossID) of org carrying an
// idempotency key.
func keyed(id, org, target, crossID, key string) state.Promotion {
	p := promotion(id, target, crossID)
	p.OrgID, p.IdempotencyKey, p.RequestHash = org, key, "req-"+id
	return p
}

// testPromotionIdempotencyKey checks the contract behind row A11: a
// promotion's idempotency key is unique within its organization, finds the
// promotion again, and a refused duplicate leaves nothing behind.
func testPromotionIdempotencyKey(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	p1 := keyed("p1", "o1", "prod", "c1", "k1")
	seedPromotion(t, s, p1)
	got, err := s.PromotionByIdempotencyKey(ctx, "o1", "k1")
	must(t, "PromotionByIdempotencyKey", err)
	diff(t, "promotion by key", p1, got)
	byID, err := s.Promotion(ctx, "p1")
	must(t, "Promotion", err)
	diff(t, "promotion by id", p1, byID)

	// The same key in the organization, for another API: refused, and its
	// active-promotion lock is not left behind.
	active, err := s.CreatePromotion(ctx, keyed("p2", "o1", "prod", "c2", "k1"))
	if !errors.Is(err, state.ErrConflict) || active != "" {
		t.Errorf("CreatePromotion with a taken key = %q, %v; want no active id, ErrConflict", active, err)
	}
	_, err = s.Promotion(ctx, "p2")
	checkErr(t, "Promotion(p2)", err, state.ErrNotFound)
	seedPromotion(t, s, keyed("p3", "o1", "prod", "c2", "k3"))

	// Another organization may use the key; promotions without a key
	// never collide.
	seedPromotion(t, s, keyed("p4", "o2", "o2-prod", "c1", "k1"))
	seedPromotion(t, s, promotion("p5", "qa", "c1"))
	seedPromotion(t, s, promotion("p6", "qa", "c2"))
	got, err = s.PromotionByIdempotencyKey(ctx, "o2", "k1")
	must(t, "PromotionByIdempotencyKey(o2)", err)
	if got.ID != "p4" {
		t.Errorf("PromotionByIdempotencyKey(o2, k1) = %s, want p4", got.ID)
	}
	for _, k := range []string{"", "k9"} {
		_, err := s.PromotionByIdempotencyKey(ctx, "o1", k)
		checkErr(t, fmt.Sprintf("PromotionByIdempotencyKey(o1, %q)", k), err, state.ErrNotFound)
	}
	p5, err := s.Promotion(ctx, "p5")
	must(t, "Promotion(p5)", err)
	if p5.IdempotencyKey != "" || p5.RequestHash != "" {
		t.Errorf("promotion without a key reads back key %q, hash %q", p5.IdempotencyKey, p5.RequestHash)
	}

	// 50 concurrent creations with one key, each for another API: one
	// promotion.
	errs := race(racers, func(i int) error {
		_, err := s.CreatePromotion(ctx, keyed(fmt.Sprintf("r%02d", i), "o1", "stage", fmt.Sprintf("c%02d", i), "same"))
		return err
	})
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, state.ErrConflict):
			t.Errorf("create %d: %v, want ErrConflict", i, err)
		}
	}
	list, err := s.ListPromotions(ctx, state.PromotionFilter{OrgID: "o1", TargetEnvID: "stage"})
	must(t, "ListPromotions", err)
	if wins != 1 || len(list) != 1 {
		t.Errorf("%d of %d concurrent creations with one key succeeded, %d stored; want 1 and 1", wins, racers, len(list))
	}
}
