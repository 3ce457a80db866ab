package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// Statuses, shortened.
const (
	created   = protocol.PromotionCreated
	toBeValid = protocol.PromotionToBeValidated
	accepted  = protocol.PromotionAccepted
	rejected  = protocol.PromotionRejected
	errored   = protocol.PromotionError
	cancelled = protocol.PromotionCancelled
)

var terminal = []protocol.PromotionStatus{accepted, rejected, errored, cancelled}

// promotion returns a CREATED promotion of o1 from dev to target.
func promotion(id, target, crossID string) state.Promotion {
	return state.Promotion{
		ID: id, OrgID: "o1", SourceEnvID: "dev", TargetEnvID: target,
		APIID: "api-" + crossID, CrossID: crossID, APIName: "Petstore", APIVersion: "1.2",
		Definition: []byte(`{"name":"Petstore"}`), Requester: "alice", RequesterID: "u-alice", Status: created,
		CreatedAt: base, UpdatedAt: base,
	}
}

// seedPromotion creates p and fails the test if it cannot.
func seedPromotion(t *testing.T, s state.Store, p state.Promotion) {
	t.Helper()
	if active, err := s.CreatePromotion(ctxT(t), p); err != nil {
		t.Fatalf("CreatePromotion(%s): %v (active %q)", p.ID, err, active)
	}
}

// update applies u to id and fails the test if it cannot.
func update(t *testing.T, s state.Store, id string, u state.PromotionUpdate) state.Promotion {
	t.Helper()
	p, err := s.UpdatePromotion(ctxT(t), id, u)
	must(t, "UpdatePromotion("+id+")", err)
	return p
}

func testPromotions(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	p := promotion("p1", "prod", "c1")
	p.CreatedAt = at(1500 * time.Microsecond) // read back to the millisecond
	seedPromotion(t, s, p)
	p.CreatedAt = at(time.Millisecond)
	got, err := s.Promotion(ctx, "p1")
	checkErr(t, "Promotion", err, nil)
	diff(t, "Promotion", p, got)
	checkUTC(t, "Promotion", got.CreatedAt, got.UpdatedAt)

	_, err = s.Promotion(ctx, "nope")
	checkErr(t, "Promotion(unknown)", err, state.ErrNotFound)

	for _, st := range terminal {
		bad := promotion("p-"+string(st), "prod", "c-"+string(st))
		bad.Status = st
		if _, err := s.CreatePromotion(ctx, bad); err == nil {
			t.Errorf("CreatePromotion with terminal status %s: no error", st)
		}
	}
	// A duplicate id fails and leaves its key free.
	_, err = s.CreatePromotion(ctx, promotion("p1", "qa", "c9"))
	checkErr(t, "CreatePromotion(duplicate id)", err, state.ErrConflict)
	seedPromotion(t, s, promotion("p2", "qa", "c9"))
}

func testCreatePromotionActiveKey(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	seedPromotion(t, s, promotion("p1", "prod", "c1"))
	for _, tc := range []struct {
		name       string
		p          state.Promotion
		wantActive string
		wantErr    error
	}{
		{"same key", promotion("p2", "prod", "c1"), "p1", state.ErrConflict},
		{"other target", promotion("p3", "qa", "c1"), "", nil},
		{"other cross id", promotion("p4", "prod", "c2"), "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			active, err := s.CreatePromotion(ctx, tc.p)
			checkErr(t, "CreatePromotion", err, tc.wantErr)
			if active != tc.wantActive {
				t.Errorf("CreatePromotion active id = %q, want %q", active, tc.wantActive)
			}
		})
	}
	// Any non-terminal status holds the key.
	update(t, s, "p1", state.PromotionUpdate{From: []protocol.PromotionStatus{created}, To: toBeValid, Delivered: true, At: at(time.Minute)})
	if active, err := s.CreatePromotion(ctx, promotion("p5", "prod", "c1")); !errors.Is(err, state.ErrConflict) || active != "p1" {
		t.Errorf("CreatePromotion while p1 is %s = %q, %v; want p1, ErrConflict", toBeValid, active, err)
	}
	// A terminal status frees it.
	update(t, s, "p1", state.PromotionUpdate{From: []protocol.PromotionStatus{toBeValid}, To: accepted, At: at(2 * time.Minute)})
	seedPromotion(t, s, promotion("p6", "prod", "c1"))
	if active, err := s.CreatePromotion(ctx, promotion("p7", "prod", "c1")); !errors.Is(err, state.ErrConflict) || active != "p6" {
		t.Errorf("CreatePromotion after p6 = %q, %v; want p6, ErrConflict", active, err)
	}
}

func testCreatePromotionConcurrent(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	const n = racers
	active := make([]string, n)
	errs := race(n, func(i int) error {
		var err error
		active[i], err = s.CreatePromotion(ctx, promotion(fmt.Sprintf("p%02d", i), "prod", "c1"))
		return err
	})
	winner := ""
	for i, err := range errs {
		if err == nil {
			if winner != "" {
				t.Errorf("both %s and p%02d were created", winner, i)
			}
			winner = fmt.Sprintf("p%02d", i)
		}
	}
	if winner == "" {
		t.Fatalf("no concurrent CreatePromotion succeeded: %v", errs)
	}
	for i, err := range errs {
		id := fmt.Sprintf("p%02d", i)
		if id == winner {
			continue
		}
		if !errors.Is(err, state.ErrConflict) || active[i] != winner {
			t.Errorf("CreatePromotion(%s) = %q, %v; want %q, ErrConflict", id, active[i], err, winner)
		}
		if _, err := s.Promotion(ctx, id); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("loser %s: Promotion error %v, want ErrNotFound", id, err)
		}
	}
	got, err := s.ListPromotions(ctx, state.PromotionFilter{})
	must(t, "ListPromotions", err)
	if len(got) != 1 || got[0].ID != winner {
		t.Errorf("ListPromotions = %d promotions, want only %s", len(got), winner)
	}
}

func testStaleLocks(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	c, ok := s.(Crasher)
	if !ok {
		t.Fatalf("store %T does not implement storetest.Crasher", s)
	}
	// A crash after a terminal update, before its lock was deleted.
	seedPromotion(t, s, promotion("p1", "prod", "c1"))
	update(t, s, "p1", state.PromotionUpdate{From: []protocol.PromotionStatus{created}, To: cancelled, At: at(time.Minute)})
	must(t, "LeaveLock", c.LeaveLock(ctx, "prod", "c1", "p1", time.Now()))
	// A crash between the lock and the promotion, long ago.
	must(t, "LeaveLock", c.LeaveLock(ctx, "prod", "c2", "ghost", time.Now().Add(-2*time.Hour)))
	// A creation in progress right now.
	must(t, "LeaveLock", c.LeaveLock(ctx, "prod", "c3", "inflight", time.Now()))

	for _, tc := range []struct {
		name       string
		p          state.Promotion
		wantActive string
		wantErr    error
	}{
		{"holder terminal", promotion("p2", "prod", "c1"), "", nil},
		{"taken by recovery", promotion("p3", "prod", "c1"), "p2", state.ErrConflict},
		{"holder missing long", promotion("p4", "prod", "c2"), "", nil},
		{"holder being created", promotion("p5", "prod", "c3"), "inflight", state.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			active, err := s.CreatePromotion(ctx, tc.p)
			checkErr(t, "CreatePromotion", err, tc.wantErr)
			if active != tc.wantActive {
				t.Errorf("CreatePromotion active id = %q, want %q", active, tc.wantActive)
			}
		})
	}
}

func testUpdatePromotion(t *testing.T, s state.Store) {
	from := func(st ...protocol.PromotionStatus) []protocol.PromotionStatus { return st }
	deliver := state.PromotionUpdate{From: from(created), To: toBeValid, Delivered: true, At: at(time.Minute)}
	for i, tc := range []struct {
		name    string
		setup   []state.PromotionUpdate
		u       state.PromotionUpdate
		id      string // empty for the promotion under test
		want    func(p state.Promotion) state.Promotion
		wantErr error
	}{
		{
			name: "deliver",
			u:    state.PromotionUpdate{From: from(created), To: toBeValid, Delivered: true, At: at(time.Minute + 2500*time.Microsecond)},
			want: func(p state.Promotion) state.Promotion {
				p.Status, p.Delivered = toBeValid, true
				p.DeliveredAt, p.UpdatedAt = at(time.Minute+2*time.Millisecond), at(time.Minute+2*time.Millisecond)
				return p
			},
		},
		{
			name:  "accept",
			setup: []state.PromotionUpdate{deliver},
			u:     state.PromotionUpdate{From: from(toBeValid), To: accepted, TargetAPIID: "t-api", At: at(time.Hour)},
			want: func(p state.Promotion) state.Promotion {
				p.Status, p.Delivered, p.DeliveredAt = accepted, true, at(time.Minute)
				p.TargetAPIID, p.UpdatedAt, p.DecidedAt = "t-api", at(time.Hour), at(time.Hour)
				return p
			},
		},
		{
			name:  "reject from either status",
			setup: []state.PromotionUpdate{deliver},
			u:     state.PromotionUpdate{From: from(created, toBeValid), To: rejected, Reason: "not now", At: at(time.Hour)},
			want: func(p state.Promotion) state.Promotion {
				p.Status, p.Delivered, p.DeliveredAt = rejected, true, at(time.Minute)
				p.Reason, p.UpdatedAt, p.DecidedAt = "not now", at(time.Hour), at(time.Hour)
				return p
			},
		},
		{
			name:  "notify keeps the status",
			setup: []state.PromotionUpdate{{From: from(created), To: errored, Reason: "boom", At: at(time.Minute)}},
			u:     state.PromotionUpdate{From: terminal, Notified: true, At: at(time.Hour)},
			want: func(p state.Promotion) state.Promotion {
				p.Status, p.Reason, p.DecidedAt = errored, "boom", at(time.Minute)
				p.Notified, p.UpdatedAt = true, at(time.Hour)
				return p
			},
		},
		{
			name: "reason only",
			u:    state.PromotionUpdate{From: from(created), Reason: "waiting", At: at(time.Second)},
			want: func(p state.Promotion) state.Promotion {
				p.Reason, p.UpdatedAt = "waiting", at(time.Second)
				return p
			},
		},
		{
			name:    "status not in from",
			u:       state.PromotionUpdate{From: from(toBeValid), To: accepted, At: at(time.Hour)},
			wantErr: state.ErrConflict,
		},
		{
			name:    "terminal stays terminal",
			setup:   []state.PromotionUpdate{{From: from(created), To: cancelled, At: at(time.Minute)}},
			u:       state.PromotionUpdate{From: from(created, toBeValid), To: errored, At: at(time.Hour)},
			wantErr: state.ErrConflict,
		},
		{
			name:    "empty from matches nothing",
			u:       state.PromotionUpdate{To: cancelled, At: at(time.Hour)},
			wantErr: state.ErrConflict,
		},
		{
			name:    "unknown promotion",
			id:      "nope",
			u:       state.PromotionUpdate{From: from(created), To: cancelled, At: at(time.Hour)},
			wantErr: state.ErrNotFound,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			p := promotion(fmt.Sprintf("p%d", i), "prod", fmt.Sprintf("c%d", i))
			seedPromotion(t, s, p)
			for _, u := range tc.setup {
				update(t, s, p.ID, u)
			}
			before, err := s.Promotion(ctx, p.ID)
			must(t, "Promotion", err)
			id := tc.id
			if id == "" {
				id = p.ID
			}
			got, err := s.UpdatePromotion(ctx, id, tc.u)
			checkErr(t, "UpdatePromotion", err, tc.wantErr)
			after, rerr := s.Promotion(ctx, p.ID)
			must(t, "Promotion", rerr)
			if tc.wantErr != nil {
				diff(t, "UpdatePromotion result", state.Promotion{}, got)
				diff(t, "promotion after a failed update", before, after)
				return
			}
			diff(t, "UpdatePromotion result", tc.want(p), got)
			diff(t, "promotion after the update", got, after)
		})
	}
}

func testUpdatePromotionConcurrent(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	seedPromotion(t, s, promotion("p1", "prod", "c1"))
	update(t, s, "p1", state.PromotionUpdate{From: []protocol.PromotionStatus{created}, To: toBeValid, Delivered: true, At: at(time.Minute)})
	const n = racers
	got := make([]state.Promotion, n)
	errs := race(n, func(i int) error {
		to := accepted
		if i%2 == 1 {
			to = rejected
		}
		var err error
		got[i], err = s.UpdatePromotion(ctx, "p1", state.PromotionUpdate{
			From: []protocol.PromotionStatus{toBeValid}, To: to, Reason: fmt.Sprint(i), At: at(time.Hour),
		})
		return err
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("updates %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, state.ErrConflict):
			t.Errorf("update %d: error %v, want ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no concurrent UpdatePromotion succeeded: %v", errs)
	}
	final, err := s.Promotion(ctx, "p1")
	must(t, "Promotion", err)
	diff(t, "promotion after the race", got[winner], final)
	if final.Reason != fmt.Sprint(winner) {
		t.Errorf("final reason %q, want the winner's %d", final.Reason, winner)
	}
	// The winner's terminal transition freed the key.
	seedPromotion(t, s, promotion("p2", "prod", "c1"))
}
