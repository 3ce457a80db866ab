package deploycheck

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY…
	args string
	line int
}

// stage is one build stage: its FROM line and the instructions after it.
type stage struct {
	from  string // image reference with global ARG defaults substituted
	name  string // AS name, if any
	instr []instruction
}

// dockerfile is a parsed Dockerfile: the global ARGs before the first FROM
// and its stages. It understands just enough of the syntax for these checks.
type dockerfile struct {
	args   map[string]string
	stages []stage
}

var argRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

func parseDockerfile(text string) (*dockerfile, error) {
	df := &dockerfile{args: map[string]string{}}
	var (
		cur   strings.Builder
		start int
	)
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		switch {
		case in.cmd == "FROM":
			fields := strings.Fields(in.args)
			st := stage{}
			for _, f := range fields {
				if !strings.HasPrefix(f, "--") {
					st.from = argRef.ReplaceAllStringFunc(f, func(ref string) string {
						return df.args[argRef.FindStringSubmatch(ref)[1]]
					})
					break
				}
			}
			if i := slices.IndexFunc(fields, func(f string) bool { return strings.EqualFold(f, "AS") }); i >= 0 && i+1 < len(fields) {
				st.name = fields[i+1]
			}
			df.stages = append(df.stages, st)
		case in.cmd == "ARG" && len(df.stages) == 0:
			k, v, _ := strings.Cut(in.args, "=")
			df.args[k] = v
		case len(df.stages) > 0:
			s := &df.stages[len(df.stages)-1]
			s.instr = append(s.instr, in)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() > 0) {
			continue // comments (also inside continuations) and blank continuation lines
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return df, sc.Err()
}

// final returns the last stage, the one that becomes the image.
func (df *dockerfile) final() stage { return df.stages[len(df.stages)-1] }

// all returns the stage's instructions named cmd.
func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instr {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// goBuild returns the package path and -o output of the stage's `go build`.
func (s stage) goBuild() (pkg, out string, in instruction, ok bool) {
	for _, in := range s.all("RUN") {
		fields := strings.Fields(in.args)
		i := slices.Index(fields, "build")
		if i < 1 || fields[i-1] != "go" {
			continue
		}
		for j := i + 1; j < len(fields); j++ {
			switch f := fields[j]; {
			case f == "-o" && j+1 < len(fields):
				out = fields[j+1]
				j++
			case strings.HasPrefix(f, "./"):
				pkg = f
			}
		}
		return pkg, out, in, true
	}
	return "", "", instruction{}, false
}

// wantDockerfiles is every Dockerfile under deploy/ and what it must build.
var wantDockerfiles = map[string]struct {
	pkg    string // `go build` target, relative to the repository root
	binary string // installed as /usr/local/bin/<binary> and run as ENTRYPOINT
	port   string // EXPOSEd port: the binary's container listen port
}{
	"deploy/Dockerfile.hub":      {"./hub/cmd/ferry-hub", "ferry-hub", "8080"},
	"deploy/Dockerfile.agent":    {"./agent/cmd/ferry-agent", "ferry-agent", "8090"},
	"deploy/Dockerfile.apim-sim": {"./agent/cmd/apim-sim", "apim-sim", "8083"},
}

// builderSources are what the build stage must copy: go.work joins them all.
var builderSources = []string{"go.work", "shared/", "hub/", "agent/"}

func TestParseDockerfile(t *testing.T) {
	df, err := parseDockerfile(`ARG V=1.26
FROM golang:${V} AS build
# comment
RUN CGO_ENABLED=0 \
    # inner comment
    go build -o /out/x \
      ./cmd/x
FROM alpine:3.22
USER 10001
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(df.stages) != 2 || df.stages[0].from != "golang:1.26" || df.stages[0].name != "build" {
		t.Fatalf("stages = %+v", df.stages)
	}
	pkg, out, _, ok := df.stages[0].goBuild()
	if !ok || pkg != "./cmd/x" || out != "/out/x" {
		t.Errorf("goBuild = %q, %q, %v; want ./cmd/x, /out/x, true", pkg, out, ok)
	}
	if _, _, _, ok := df.final().goBuild(); ok {
		t.Error("final stage has no go build, but goBuild found one")
	}
}

func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	found, err := filepath.Glob(filepath.Join(root, "deploy", "Dockerfile.*"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range found {
		if !strings.HasSuffix(f, ".dockerignore") {
			rel, _ := filepath.Rel(root, f)
			names = append(names, filepath.ToSlash(rel))
		}
	}
	for name := range wantDockerfiles {
		if !slices.Contains(names, name) {
			t.Errorf("%s is missing", name)
		}
	}
	for _, name := range names {
		want, ok := wantDockerfiles[name]
		if !ok {
			t.Errorf("%s is not listed in wantDockerfiles", name)
			continue
		}
		t.Run(filepath.Base(name), func(t *testing.T) {
			text, err := os.ReadFile(filepath.Join(root, name))
			if err != nil {
				t.Fatal(err)
			}
			df, err := parseDockerfile(string(text))
			if err != nil {
				t.Fatal(err)
			}
			if len(df.stages) < 2 {
				t.Fatalf("%d stages, want a builder and a runtime stage", len(df.stages))
			}
			checkBuilder(t, root, df, want.pkg, want.binary)
			checkRuntime(t, df.final(), want.binary, want.port)
		})
	}
}

func checkBuilder(t *testing.T, root string, df *dockerfile, wantPkg, binary string) {
	t.Helper()
	b := df.stages[0]
	if !strings.HasPrefix(b.from, "golang:1.26") {
		t.Errorf("builder FROM %q, want golang:1.26", b.from)
	}
	var copied []string
	for _, in := range b.all("COPY") {
		fields := strings.Fields(in.args)
		if len(fields) > 1 {
			copied = append(copied, fields[:len(fields)-1]...)
		}
	}
	for _, src := range builderSources {
		if !slices.Contains(copied, src) {
			t.Errorf("builder does not COPY %s (copies %v)", src, copied)
		}
	}
	pkg, out, in, ok := b.goBuild()
	if !ok {
		t.Fatal("builder has no `go build`")
	}
	if pkg != wantPkg {
		t.Errorf("go build %q, want %q", pkg, wantPkg)
	}
	if !strings.Contains(in.args, "CGO_ENABLED=0") {
		t.Errorf("line %d: go build without CGO_ENABLED=0", in.line)
	}
	if filepath.Base(out) != binary {
		t.Errorf("go build -o %q, want a binary named %s", out, binary)
	}
	dir := filepath.Join(root, filepath.FromSlash(pkg))
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("go build target %s is not a directory in the repository: %v", pkg, err)
	}
}

func checkRuntime(t *testing.T, s stage, binary, port string) {
	t.Helper()
	if strings.HasPrefix(s.from, "golang:") {
		t.Errorf("runtime stage FROM %q; ship a small base, not the toolchain", s.from)
	}
	users := s.all("USER")
	if len(users) == 0 {
		t.Error("runtime stage has no USER; the image would run as root")
	} else if u, _, _ := strings.Cut(users[len(users)-1].args, ":"); u == "root" || u == "0" {
		t.Errorf("runtime stage runs as %q", users[len(users)-1].args)
	}
	var exposed []string
	for _, in := range s.all("EXPOSE") {
		exposed = append(exposed, strings.Fields(in.args)...)
	}
	if !slices.Contains(exposed, port) && !slices.Contains(exposed, port+"/tcp") {
		t.Errorf("EXPOSE %v, want %s", exposed, port)
	}
	hc := s.all("HEALTHCHECK")
	if len(hc) == 0 {
		t.Error("runtime stage has no HEALTHCHECK")
	} else if !strings.Contains(hc[0].args, port) {
		t.Errorf("HEALTHCHECK %q does not probe port %s", hc[0].args, port)
	}
	copied := false
	for _, in := range s.all("COPY") {
		if strings.Contains(in.args, "--from=") && strings.Contains(in.args, "/usr/local/bin/"+binary) {
			copied = true
		}
	}
	if !copied {
		t.Errorf("runtime stage does not COPY --from the builder to /usr/local/bin/%s", binary)
	}
	ep := s.all("ENTRYPOINT")
	if len(ep) == 0 || !strings.Contains(ep[len(ep)-1].args, "/usr/local/bin/"+binary) {
		t.Errorf("ENTRYPOINT does not run /usr/local/bin/%s", binary)
	}
}
