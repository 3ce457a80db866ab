package faultstore_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"ferry.dev/hub/internal/faultstore"
	"ferry.dev/hub/internal/state"
	"ferry.dev/hub/internal/store"
)

func TestFailStallRecover(t *testing.T) {
	ctx := context.Background()
	sq, err := store.OpenSQLite(ctx, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st := faultstore.Wrap(sq)
	defer st.Close()
	org := state.Org{ID: "org_1", Name: "demo", CreatedAt: time.Now().UTC()}

	st.Fail(nil)
	if err := st.CreateOrg(ctx, org); !errors.Is(err, state.ErrUnavailable) {
		t.Errorf("CreateOrg while failing: %v, want ErrUnavailable", err)
	}
	disk := errors.New("disk I/O error")
	st.Fail(disk)
	if _, err := st.ListOrgs(ctx); !errors.Is(err, disk) {
		t.Errorf("ListOrgs while failing: %v, want the injected error", err)
	}

	st.Stall()
	sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := st.Ping(sctx); !errors.Is(err, state.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ping while stalled: %v, want ErrUnavailable and DeadlineExceeded", err)
	}

	st.Recover()
	if err := st.CreateOrg(ctx, org); err != nil {
		t.Fatalf("CreateOrg after Recover: %v", err)
	}
	if orgs, err := st.ListOrgs(ctx); err != nil || len(orgs) != 1 {
		t.Errorf("ListOrgs after Recover: %v, %v; want the one org made after recovery", orgs, err)
	}
	if total, faulted := st.Calls(); total != 5 || faulted != 3 {
		t.Errorf("Calls = %d, %d; want 5, 3", total, faulted)
	}
}
