package server

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"ferry.dev/hub/internal/store"
)

// secretPattern matches any Ferry secret by its prefix and shape.
var secretPattern = regexp.MustCompile(`ferry_(at|lt|ic)_[0-9A-Za-z]{46}`)

// TestNoRawSecretsAtRest is C6 of shared/reference/reliability.md: after
// link tokens (used and unused), an installation credential (and its
// rotation), personal access tokens, sessions and user passwords were made
// through the REST API, no table of the SQLite database holds any of them in the clear,
// and neither do the database files' raw bytes (main file and WAL), nor
// anything shaped like a Ferry secret.
func TestNoRawSecretsAtRest(t *testing.T) {
	h := newTestHub(t)
	acme := h.newOrg("acme")
	var secrets []string
	for _, name := range []string{"ada", "bob"} {
		u := h.newUser(acme, name)
		secrets = append(secrets, u.Password, u.PAT, u.Session)
	}
	// Link tokens: one used to enroll an agent (which gets a credential),
	// one left unused.
	var used, unused struct{ Token string }
	h.must(http.StatusCreated, testAdminToken, "POST", "/api/v1/orgs/acme/environments/Dev/link-tokens", map[string]any{}, &used)
	h.must(http.StatusCreated, testAdminToken, "POST", "/api/v1/orgs/acme/environments/Prod/link-tokens", map[string]any{}, &unused)
	var enrolled struct{ InstallationID, Credential string }
	h.must(http.StatusCreated, used.Token, "POST", "/api/v1/link/enroll", map[string]string{"agentVersion": "1.0.0", "hostname": "dev-host"}, &enrolled)
	// A rotation makes a credential nobody here sees (the agent is not
	// connected): what it stores must not hold it either.
	h.must(http.StatusAccepted, testAdminToken, "POST", "/api/v1/orgs/acme/installations/"+enrolled.InstallationID+"/_rotate-credential", nil, nil)
	secrets = append(secrets, used.Token, unused.Token, enrolled.Credential, testAdminToken)
	for i, s := range secrets {
		if len(s) < 16 {
			t.Fatalf("secret %d is %q: the setup did not get it", i, s)
		}
	}
	for _, s := range []string{used.Token, unused.Token, enrolled.Credential, secrets[1]} {
		if !secretPattern.MatchString(s) {
			t.Fatalf("secret %.12s… does not match %v; the test's pattern is stale", s, secretPattern)
		}
	}

	// The store's files: the harness's data directory is a sibling of
	// this test's next temporary directory.
	files, err := filepath.Glob(filepath.Join(filepath.Dir(t.TempDir()), "*", "hub.db*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no hub.db found: %v", err)
	}
	var dbPath string
	for _, f := range files {
		if strings.HasSuffix(f, "hub.db") {
			dbPath = f
		}
	}

	// Every row of every table, as text.
	dump, rows, err := store.DumpSQLite(t.Context(), filepath.Dir(dbPath))
	if err != nil {
		t.Fatal(err)
	}
	if rows < 10 || !bytes.Contains(dump, []byte("api_tokens:")) || !bytes.Contains(dump, []byte("installations:")) ||
		!bytes.Contains(dump, []byte("link_tokens:")) || !bytes.Contains(dump, []byte("users:")) {
		t.Fatalf("dumped only %d rows; the setup did not reach the store", rows)
	}
	haystacks := map[string][]byte{"table dump": dump}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		haystacks[filepath.Base(f)] = b
	}
	for where, hay := range haystacks {
		for i, s := range secrets {
			if bytes.Contains(hay, []byte(s)) {
				t.Errorf("%s holds secret %d (%.12s…) in the clear", where, i, s)
			}
		}
		if m := secretPattern.Find(hay); m != nil {
			t.Errorf("%s holds something shaped like a secret: %.12s…", where, m)
		}
	}
	t.Logf("checked %d secrets against %d rows and %d files", len(secrets), rows, len(files))
}
