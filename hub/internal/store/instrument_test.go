package store

import (
	"errors"
	"flag"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/hub/internal/state"
	"ferry.dev/hub/internal/store/storetest"
)

// observations returns the histogram's sample counts by "op result" for
// engine.
func observations(t *testing.T, reg *prometheus.Registry, engine string) map[string]uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "ferry_hub_store_operation_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["engine"] == engine {
				got[labels["op"]+" "+labels["result"]] += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return got
}

func TestInstrument(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := Instrument(openSQLite(t), "sqlite", reg)
	ctx := t.Context()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.CreateOrg(ctx, state.Org{ID: "o1", Name: "acme"}); err != nil {
		t.Fatalf("CreateOrg: %v", err)
	}
	if err := s.CreateOrg(ctx, state.Org{ID: "o2", Name: "acme"}); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("CreateOrg(duplicate): %v", err)
	}
	if _, err := s.Org(ctx, "nope"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Org(nope): %v", err)
	}
	if _, err := s.UpdatePromotion(ctx, "p1", state.PromotionUpdate{From: terminalStatuses, To: "CREATED"}); err == nil {
		t.Fatal("UpdatePromotion out of a terminal status: no error")
	}
	// A second store on the same registry shares the histogram.
	other := Instrument(openSQLite(t), "other", reg)
	if err := other.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}

	want := map[string]uint64{
		"Ping ok":               1,
		"CreateOrg ok":          1,
		"CreateOrg conflict":    1,
		"Org not_found":         1,
		"UpdatePromotion error": 1,
	}
	if d := cmp.Diff(want, observations(t, reg, "sqlite")); d != "" {
		t.Errorf("observations (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]uint64{"Ping ok": 1}, observations(t, reg, "other")); d != "" {
		t.Errorf("observations of the second store (-want +got):\n%s", d)
	}
}

// TestInstrumentSuite runs the conformance suite through the decorator,
// then checks that every operation was measured.
func TestInstrumentSuite(t *testing.T) {
	reg := prometheus.NewRegistry()
	storetest.Run(t, func(t *testing.T) state.Store {
		s := openSQLite(t)
		return crashable{Store: Instrument(s, "sqlite", reg), locks: s}
	})
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() != "" {
		return // a filtered run leaves operations out
	}
	seen := map[string]bool{}
	for k := range observations(t, reg, "sqlite") {
		op, _, _ := strings.Cut(k, " ")
		seen[op] = true
	}
	var missing []string
	st := reflect.TypeFor[state.Store]()
	for i := range st.NumMethod() {
		if op := st.Method(i).Name; op != "Close" && !seen[op] {
			missing = append(missing, op)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("operations never observed: %v", missing)
	}
}
