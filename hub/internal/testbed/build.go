package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Binaries holds the paths of the binaries built for a test run.
type Binaries struct {
	Dir     string // the temporary directory holding them
	Hub     string // ferry-hub
	Agent   string // ferry-agent
	APIMSim string // apim-sim
}

// Build builds ferry-hub, ferry-agent and apim-sim into a new temporary
// directory whose name starts with prefix, with the go command's output
// sent to stderr. Call it from TestMain and Remove the binaries after
// m.Run.
func Build(prefix string) (Binaries, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{Dir: dir}
	for _, x := range []struct {
		dst *string
		pkg string
	}{
		{&b.Hub, "ferry.dev/hub/cmd/ferry-hub"},
		{&b.Agent, "ferry.dev/agent/cmd/ferry-agent"},
		{&b.APIMSim, "ferry.dev/agent/cmd/apim-sim"},
	} {
		*x.dst = filepath.Join(dir, filepath.Base(x.pkg))
		cmd := exec.Command("go", "build", "-o", *x.dst, x.pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			os.RemoveAll(dir)
			return Binaries{}, fmt.Errorf("build %s: %w", x.pkg, err)
		}
	}
	return b, nil
}

// Remove deletes the binaries' directory.
func (b Binaries) Remove() error { return os.RemoveAll(b.Dir) }

// Main is the body of a TestMain: it builds the binaries into *bins in a
// temporary directory whose name starts with prefix, runs the tests,
// removes the binaries and exits with the tests' code. When a build fails
// it prints why and exits 1 without running the tests.
func Main(m *testing.M, prefix string, bins *Binaries) {
	b, err := Build(prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bins = b
	code := m.Run()
	b.Remove()
	os.Exit(code)
}

// Sample returns the named Gravitee sample definition, read from
// ../../../shared/reference/gravitee/samples relative to the test's
// directory: the path the tests in hub/e2e and hub/browsertest use.
func Sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "reference", "gravitee", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
