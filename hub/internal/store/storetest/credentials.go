package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
)

// testInstallationCredential covers credential rotation: the lookup by the
// current or the previous hash, and the conditional replacement of the
// credential state. (A new hash that is another installation's credential
// is not a case: FerretDB reports that unique violation on an update as an
// internal error, and the hub only ever sets hashes of fresh secrets.)
func testInstallationCredential(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	i1 := installation("i1", "o1", true)
	i1.ClientKeyHash = ""
	// Created mid-rotation, to check that every field is stored.
	i2 := installation("i2", "o1", false)
	i2.PreviousCredentialHash, i2.PreviousCredentialExpiresAt = "old-i2", at(time.Hour)
	i2.CredentialRotatedAt, i2.CredentialPending = at(0), true
	for _, i := range []state.Installation{i1, i2} {
		must(t, "CreateInstallation("+i.ID+")", s.CreateInstallation(ctx, i))
	}
	got, err := s.InstallationByCredential(ctx, "old-i2")
	checkErr(t, "InstallationByCredential(previous of i2)", err, nil)
	diff(t, "installation created mid-rotation, by its previous credential", i2, got)
	_, err = s.InstallationByCredential(ctx, "")
	checkErr(t, "InstallationByCredential(empty)", err, state.ErrNotFound)

	// A rotation: the current credential becomes the previous one, with
	// an expiry kept to the millisecond.
	rotated := state.InstallationCredential{Hash: "n1-i1", PreviousHash: "c-i1", PreviousExpiresAt: at(time.Hour + 999*time.Microsecond),
		RotatedAt: at(time.Second + 999*time.Microsecond), Pending: true}
	want := i1
	want.CredentialHash, want.PreviousCredentialHash, want.PreviousCredentialExpiresAt = "n1-i1", "c-i1", at(time.Hour)
	want.CredentialRotatedAt, want.CredentialPending = at(time.Second), true
	got, err = s.SetInstallationCredential(ctx, "i1", i1.Credential(), rotated)
	checkErr(t, "SetInstallationCredential(rotate)", err, nil)
	diff(t, "installation after the rotation", want, got)
	checkUTC(t, "rotated installation", got.PreviousCredentialExpiresAt, got.CredentialRotatedAt)
	for _, h := range []string{"n1-i1", "c-i1"} {
		got, err := s.InstallationByCredential(ctx, h)
		checkErr(t, "InstallationByCredential("+h+")", err, nil)
		diff(t, "installation by "+h, want, got)
	}

	for _, tc := range []struct {
		name     string
		id       string
		from, to state.InstallationCredential
		wantErr  error
	}{
		{"stale hash", "i1", i1.Credential(), state.InstallationCredential{Hash: "n2-i1"}, state.ErrConflict},
		{"stale pending", "i1", state.InstallationCredential{Hash: "n1-i1"}, state.InstallationCredential{Hash: "n2-i1"}, state.ErrConflict},
		{"unknown installation", "nope", i1.Credential(), state.InstallationCredential{Hash: "n2-nope"}, state.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.SetInstallationCredential(ctx, tc.id, tc.from, tc.to)
			checkErr(t, "SetInstallationCredential", err, tc.wantErr)
			got, err := s.Installation(ctx, "i1")
			must(t, "Installation", err)
			diff(t, "i1 after a refused change", want, got)
		})
	}
	_, err = s.InstallationByCredential(ctx, "n2-i1")
	checkErr(t, "InstallationByCredential(refused hash)", err, state.ErrNotFound)

	// The agent confirms: only the pending flag changes.
	pending := want.Credential()
	confirmed := pending
	confirmed.Pending = false
	want.CredentialPending = false
	got, err = s.SetInstallationCredential(ctx, "i1", pending, confirmed)
	checkErr(t, "SetInstallationCredential(confirm)", err, nil)
	diff(t, "installation after the confirmation", want, got)

	// The next rotation drops the first credential for good.
	next := state.InstallationCredential{Hash: "n2-i1", PreviousHash: "n1-i1", PreviousExpiresAt: at(2 * time.Hour), RotatedAt: at(time.Hour), Pending: true}
	got, err = s.SetInstallationCredential(ctx, "i1", confirmed, next)
	checkErr(t, "SetInstallationCredential(rotate again)", err, nil)
	want.CredentialHash, want.PreviousCredentialHash, want.PreviousCredentialExpiresAt = "n2-i1", "n1-i1", at(2*time.Hour)
	want.CredentialRotatedAt, want.CredentialPending = at(time.Hour), true
	diff(t, "installation after the second rotation", want, got)
	_, err = s.InstallationByCredential(ctx, "c-i1")
	checkErr(t, "InstallationByCredential(first credential)", err, state.ErrNotFound)

	// Back to no rotation at all: every field cleared reads back as none.
	got, err = s.SetInstallationCredential(ctx, "i1", next, state.InstallationCredential{Hash: "n1-i1"})
	checkErr(t, "SetInstallationCredential(undo)", err, nil)
	want.CredentialHash, want.PreviousCredentialHash, want.PreviousCredentialExpiresAt = "n1-i1", "", time.Time{}
	want.CredentialRotatedAt, want.CredentialPending = time.Time{}, false
	diff(t, "installation after the undo", want, got)
	list, err := s.ListInstallations(ctx, "o1")
	checkErr(t, "ListInstallations", err, nil)
	byID := map[string]state.Installation{}
	for _, i := range list {
		byID[i.ID] = i
	}
	diff(t, "ListInstallations(o1)", map[string]state.Installation{"i1": want, "i2": i2}, byID)
}

// testSetInstallationCredentialConcurrent: of concurrent replacements of
// the same credential state, exactly one wins.
func testSetInstallationCredentialConcurrent(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	i := installation("i1", "o1", true)
	must(t, "CreateInstallation", s.CreateInstallation(ctx, i))
	const n = 8
	errs := race(n, func(k int) error {
		_, err := s.SetInstallationCredential(ctx, "i1", i.Credential(), state.InstallationCredential{
			Hash: fmt.Sprintf("n-%d", k), PreviousHash: i.CredentialHash, PreviousExpiresAt: at(time.Hour), RotatedAt: at(0), Pending: true,
		})
		return err
	})
	won := -1
	for k, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Errorf("replacements %d and %d both won", won, k)
		case err == nil:
			won = k
		case !errors.Is(err, state.ErrConflict):
			t.Errorf("replacement %d: %v, want success or a conflict", k, err)
		}
	}
	if won < 0 {
		t.Fatal("no replacement won")
	}
	got, err := s.Installation(ctx, "i1")
	must(t, "Installation", err)
	if want := fmt.Sprintf("n-%d", won); got.CredentialHash != want || got.PreviousCredentialHash != i.CredentialHash {
		t.Errorf("credential %q (previous %q), want %q (previous %q)", got.CredentialHash, got.PreviousCredentialHash, want, i.CredentialHash)
	}
}
