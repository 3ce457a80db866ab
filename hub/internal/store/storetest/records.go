package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
)

func testOrgs(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	acme := state.Org{ID: "o1", Name: "acme", CreatedAt: at(123456789 * time.Nanosecond).In(paris)}
	must(t, "CreateOrg(acme)", s.CreateOrg(ctx, acme))
	acme.CreatedAt = at(123 * time.Millisecond) // stored in UTC to the millisecond
	// An org named like acme's id: lookups by id win.
	tricky := seedOrg(t, s, "o2", "o1")
	zeta := state.Org{ID: "o3", Name: "zeta"} // zero time stays zero
	must(t, "CreateOrg(zeta)", s.CreateOrg(ctx, zeta))

	for _, tc := range []struct {
		name    string
		lookup  string
		want    state.Org
		wantErr error
	}{
		{"by id", "o1", acme, nil},
		{"by name", "acme", acme, nil},
		{"id wins over name", "o1", acme, nil},
		{"name of o2", "o2", tricky, nil},
		{"zero time", "zeta", zeta, nil},
		{"unknown", "nope", state.Org{}, state.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Org(ctx, tc.lookup)
			checkErr(t, "Org("+tc.lookup+")", err, tc.wantErr)
			diff(t, "Org("+tc.lookup+")", tc.want, got)
			checkUTC(t, "Org", got.CreatedAt)
		})
	}

	for _, tc := range []struct {
		name string
		org  state.Org
	}{
		{"duplicate name", state.Org{ID: "o9", Name: "acme"}},
		{"duplicate id", state.Org{ID: "o1", Name: "other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateOrg", s.CreateOrg(ctx, tc.org), state.ErrConflict)
		})
	}

	got, err := s.ListOrgs(ctx)
	checkErr(t, "ListOrgs", err, nil)
	diff(t, "ListOrgs (by name)", []state.Org{acme, tricky, zeta}, got)
}

func testEnvironments(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	seedOrg(t, s, "o1", "acme")
	seedOrg(t, s, "o2", "globex")
	prod := state.Environment{ID: "e1", OrgID: "o1", Name: "prod", CreatedAt: at(time.Minute)}
	dev := state.Environment{ID: "e2", OrgID: "o1", Name: "dev", CreatedAt: at(2 * time.Minute)}
	otherProd := state.Environment{ID: "e3", OrgID: "o2", Name: "prod", CreatedAt: at(3 * time.Minute)}
	for _, e := range []state.Environment{prod, dev, otherProd} {
		must(t, "CreateEnvironment("+e.ID+")", s.CreateEnvironment(ctx, e))
	}

	for _, tc := range []struct {
		name        string
		org, lookup string
		want        state.Environment
		wantErr     error
	}{
		{"by id", "o1", "e1", prod, nil},
		{"by name", "o1", "prod", prod, nil},
		{"same name other org", "o2", "prod", otherProd, nil},
		{"id of another org", "o2", "e1", state.Environment{}, state.ErrNotFound},
		{"unknown", "o1", "qa", state.Environment{}, state.ErrNotFound},
		{"unknown org", "o9", "prod", state.Environment{}, state.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Environment(ctx, tc.org, tc.lookup)
			checkErr(t, "Environment", err, tc.wantErr)
			diff(t, "Environment", tc.want, got)
		})
	}

	for _, tc := range []struct {
		name    string
		env     state.Environment
		wantErr error
	}{
		{"duplicate name in org", state.Environment{ID: "e9", OrgID: "o1", Name: "dev"}, state.ErrConflict},
		{"duplicate id", state.Environment{ID: "e1", OrgID: "o2", Name: "qa"}, state.ErrConflict},
		{"unknown org", state.Environment{ID: "e8", OrgID: "o9", Name: "qa"}, state.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateEnvironment", s.CreateEnvironment(ctx, tc.env), tc.wantErr)
		})
	}

	got, err := s.ListEnvironments(ctx, "o1")
	checkErr(t, "ListEnvironments", err, nil)
	diff(t, "ListEnvironments(o1) (by name)", []state.Environment{dev, prod}, got)
	got, err = s.ListEnvironments(ctx, "o9")
	checkErr(t, "ListEnvironments(o9)", err, nil)
	diff(t, "ListEnvironments(o9)", []state.Environment(nil), got)
}

// linkToken returns a token of o1/e1 whose hash is "h-"+id.
func linkToken(id string, expires time.Time) state.LinkToken {
	return state.LinkToken{ID: id, OrgID: "o1", EnvID: "e1", Hash: "h-" + id, CreatedAt: base, ExpiresAt: expires}
}

func testLinkTokens(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	now := at(time.Hour)
	for _, tok := range []state.LinkToken{
		linkToken("valid", at(2*time.Hour)),
		linkToken("expired", at(30*time.Minute)),
		linkToken("boundary", now), // expires exactly now
		linkToken("forever", time.Time{}),
	} {
		must(t, "CreateLinkToken("+tok.ID+")", s.CreateLinkToken(ctx, tok))
	}
	dup := linkToken("other", at(2*time.Hour))
	dup.Hash = "h-valid"
	checkErr(t, "CreateLinkToken(duplicate hash)", s.CreateLinkToken(ctx, dup), state.ErrConflict)
	checkErr(t, "CreateLinkToken(duplicate id)", s.CreateLinkToken(ctx, linkToken("valid", time.Time{})), state.ErrConflict)

	used := func(tok state.LinkToken) state.LinkToken { tok.UsedAt = now; return tok }
	// The cases run in order: consuming changes the store.
	for _, tc := range []struct {
		name    string
		hash    string
		want    state.LinkToken
		wantErr error
	}{
		{"valid", "h-valid", used(linkToken("valid", at(2*time.Hour))), nil},
		{"used: the spent token comes back with the conflict", "h-valid", used(linkToken("valid", at(2*time.Hour))), state.ErrConflict},
		{"expired", "h-expired", state.LinkToken{}, state.ErrNotFound},
		{"expires now", "h-boundary", state.LinkToken{}, state.ErrNotFound},
		{"no expiry", "h-forever", used(linkToken("forever", time.Time{})), nil},
		{"unknown", "h-nope", state.LinkToken{}, state.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ConsumeLinkToken(ctx, tc.hash, now.Add(456*time.Microsecond))
			checkErr(t, "ConsumeLinkToken", err, tc.wantErr)
			diff(t, "ConsumeLinkToken", tc.want, got)
			checkUTC(t, "ConsumeLinkToken", got.CreatedAt, got.ExpiresAt, got.UsedAt)
		})
	}
}

func testConsumeLinkTokenConcurrent(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	must(t, "CreateLinkToken", s.CreateLinkToken(ctx, linkToken("t1", at(time.Hour))))
	const n = racers
	got := make([]state.LinkToken, n)
	errs := race(n, func(i int) error {
		var err error
		got[i], err = s.ConsumeLinkToken(ctx, "h-t1", at(time.Duration(i)*time.Second))
		return err
	})
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
			want := linkToken("t1", at(time.Hour))
			want.UsedAt = at(time.Duration(i) * time.Second)
			diff(t, fmt.Sprintf("winner %d", i), want, got[i])
		case !errors.Is(err, state.ErrConflict):
			t.Errorf("caller %d: error %v, want ErrConflict", i, err)
		}
	}
	if wins != 1 {
		t.Errorf("%d of %d concurrent ConsumeLinkToken calls succeeded, want 1", wins, n)
	}
}

// installation returns an installation of org whose credential hash is
// "c-"+id, bound to a client certificate key.
func installation(id, org string, online bool) state.Installation {
	return state.Installation{
		ID: id, OrgID: org, EnvIDs: []string{"e1", "e2"}, CredentialHash: "c-" + id,
		AgentVersion: "1.0.0", Hostname: "host-" + id, Online: online,
		LastSeen: at(time.Minute), CreatedAt: base, ClientKeyHash: clientKeyHash(id),
	}
}

// clientKeyHash is a stand-in for the hex SHA-256 of a client certificate's
// key, distinct per id.
func clientKeyHash(id string) string {
	h := sha256.Sum256([]byte("key of " + id))
	return hex.EncodeToString(h[:])
}

func testInstallations(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	i1 := installation("i1", "o1", true)
	i2 := installation("i2", "o1", false)
	i2.CreatedAt = at(-time.Hour) // listed first
	i2.EnvIDs, i2.LastSeen = nil, time.Time{}
	i2.ClientKeyHash = "" // enrolled without a client certificate
	i3 := installation("i3", "o2", false)
	for _, i := range []state.Installation{i1, i2, i3} {
		must(t, "CreateInstallation("+i.ID+")", s.CreateInstallation(ctx, i))
	}
	dup := installation("i9", "o1", false)
	dup.CredentialHash = "c-i1"
	checkErr(t, "CreateInstallation(duplicate credential)", s.CreateInstallation(ctx, dup), state.ErrConflict)
	checkErr(t, "CreateInstallation(duplicate id)", s.CreateInstallation(ctx, installation("i1", "o2", false)), state.ErrConflict)

	for _, tc := range []struct {
		name    string
		get     func() (state.Installation, error)
		want    state.Installation
		wantErr error
	}{
		{"by id", func() (state.Installation, error) { return s.Installation(ctx, "i1") }, i1, nil},
		{"by id, no envs, no client key", func() (state.Installation, error) { return s.Installation(ctx, "i2") }, i2, nil},
		{"by credential", func() (state.Installation, error) { return s.InstallationByCredential(ctx, "c-i3") }, i3, nil},
		{"unknown id", func() (state.Installation, error) { return s.Installation(ctx, "nope") }, state.Installation{}, state.ErrNotFound},
		{"unknown credential", func() (state.Installation, error) { return s.InstallationByCredential(ctx, "c-nope") }, state.Installation{}, state.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.get()
			checkErr(t, "get", err, tc.wantErr)
			diff(t, "installation", tc.want, got)
		})
	}
	got, err := s.ListInstallations(ctx, "o1")
	checkErr(t, "ListInstallations", err, nil)
	diff(t, "ListInstallations(o1) (by creation)", []state.Installation{i2, i1}, got)

	// Revocation deletes the installation, and with it the credential.
	must(t, "DeleteInstallation(i1)", s.DeleteInstallation(ctx, "i1"))
	checkErr(t, "DeleteInstallation(i1) again", s.DeleteInstallation(ctx, "i1"), state.ErrNotFound)
	_, err = s.InstallationByCredential(ctx, "c-i1")
	checkErr(t, "InstallationByCredential after the delete", err, state.ErrNotFound)
	got, err = s.ListInstallations(ctx, "o1")
	checkErr(t, "ListInstallations", err, nil)
	diff(t, "ListInstallations(o1) after the delete", []state.Installation{i2}, got)
}

func testUpdateInstallationSeen(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	orig := installation("i1", "o1", false)
	must(t, "CreateInstallation", s.CreateInstallation(ctx, orig))
	for _, tc := range []struct {
		name          string
		id            string
		online        bool
		at            time.Time
		version, host string
		want          func(state.Installation) state.Installation
		wantErr       error
	}{
		{"online with identity", "i1", true, at(time.Hour), "2.0.0", "new-host", func(i state.Installation) state.Installation {
			i.Online, i.LastSeen, i.AgentVersion, i.Hostname = true, at(time.Hour), "2.0.0", "new-host"
			return i
		}, nil},
		{"offline keeps identity", "i1", false, at(2*time.Hour + 999*time.Microsecond), "", "", func(i state.Installation) state.Installation {
			i.Online, i.LastSeen, i.AgentVersion, i.Hostname = false, at(2*time.Hour), "2.0.0", "new-host"
			return i
		}, nil},
		{"unknown", "nope", true, at(time.Hour), "", "", nil, state.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.UpdateInstallationSeen(ctx, tc.id, tc.online, tc.at, tc.version, tc.host)
			checkErr(t, "UpdateInstallationSeen", err, tc.wantErr)
			if tc.want == nil {
				return
			}
			got, err := s.Installation(ctx, tc.id)
			must(t, "Installation", err)
			diff(t, "after UpdateInstallationSeen", tc.want(orig), got)
		})
	}
}

func testMarkAllOffline(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	want := map[string]state.Installation{}
	for _, i := range []state.Installation{
		installation("i1", "o1", true), installation("i2", "o1", false), installation("i3", "o2", true),
	} {
		must(t, "CreateInstallation", s.CreateInstallation(ctx, i))
		i.Online = false
		want[i.ID] = i
	}
	must(t, "MarkAllOffline", s.MarkAllOffline(ctx))
	for id, w := range want {
		got, err := s.Installation(ctx, id)
		must(t, "Installation", err)
		diff(t, "installation "+id, w, got)
	}
	must(t, "MarkAllOffline (again)", s.MarkAllOffline(ctx))
}

func testAPITokens(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	admin := state.APIToken{ID: "a1", Hash: "h-a1", Name: "platform admin", CreatedAt: base}
	scoped := state.APIToken{ID: "a2", Hash: "h-a2", OrgID: "o1", Name: "ci", CreatedAt: at(time.Second),
		UserID: "u1", LastUsedAt: at(2 * time.Second), RevokedAt: at(3 * time.Second), ExpiresAt: at(time.Hour)}
	for _, tok := range []state.APIToken{admin, scoped} {
		must(t, "CreateAPIToken("+tok.ID+")", s.CreateAPIToken(ctx, tok))
	}
	for _, tc := range []struct {
		name    string
		tok     state.APIToken
		wantErr error
	}{
		{"duplicate hash", state.APIToken{ID: "a3", Hash: "h-a1"}, state.ErrConflict},
		{"duplicate id", state.APIToken{ID: "a1", Hash: "h-a3"}, state.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateAPIToken", s.CreateAPIToken(ctx, tc.tok), tc.wantErr)
		})
	}
	for _, tc := range []struct {
		hash    string
		want    state.APIToken
		wantErr error
	}{
		{"h-a1", admin, nil},
		{"h-a2", scoped, nil},
		{"h-nope", state.APIToken{}, state.ErrNotFound},
	} {
		t.Run("by hash "+tc.hash, func(t *testing.T) {
			got, err := s.APITokenByHash(ctx, tc.hash)
			checkErr(t, "APITokenByHash", err, tc.wantErr)
			diff(t, "APITokenByHash", tc.want, got)
		})
	}
}
