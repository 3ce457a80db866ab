package store

import (
	"fmt"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
)

// BenchmarkInsertPromotion measures CreatePromotion, which inserts the
// active-promotion lock and then the promotion, each key distinct.
func BenchmarkInsertPromotion(b *testing.B) {
	for _, engine := range []struct {
		name string
		open func(testing.TB) state.Store
	}{
		{"sqlite", func(tb testing.TB) state.Store { return openSQLite(tb) }},
		{"mongo", func(tb testing.TB) state.Store { return openMongo(tb) }},
	} {
		b.Run(engine.name, func(b *testing.B) {
			s := engine.open(b)
			ctx := b.Context()
			def := []byte(`{"name":"Petstore","version":"1.2","plans":[{"name":"free"}]}`)
			now := time.Now()
			i := 0
			start := time.Now()
			for b.Loop() {
				i++
				p := state.Promotion{
					ID: fmt.Sprintf("p%d", i), OrgID: "o1", SourceEnvID: "dev", TargetEnvID: "prod",
					APIID: fmt.Sprintf("api%d", i), CrossID: fmt.Sprintf("c%d", i), APIName: "Petstore",
					APIVersion: "1.2", Definition: def, Requester: "alice", Status: "CREATED",
					CreatedAt: now, UpdatedAt: now,
				}
				if _, err := s.CreatePromotion(ctx, p); err != nil {
					b.Fatalf("CreatePromotion: %v", err)
				}
			}
			b.ReportMetric(float64(i)/time.Since(start).Seconds(), "inserts/s")
		})
	}
}
