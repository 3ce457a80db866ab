package deploycheck

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"ferry.dev/hub/internal/config"
)

// composeFile is the compose file under test, relative to the repository root.
const composeFile = "docker-compose.yml"

// repoRoot returns the absolute path of the repository root (three levels up
// from this package) and checks that it really is the root.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("repository root %s has no go.work: %v", root, err)
	}
	return root
}

// repoPath joins slash-separated rel onto the repository root.
func repoPath(t *testing.T, rel string) string {
	t.Helper()
	return filepath.Join(repoRoot(t), filepath.FromSlash(rel))
}

// loadCompose loads docker-compose.yml the way `docker compose config` would,
// but hermetically: the environment is exactly env (not the test process's
// environment, and no .env file), there are no remote resource loaders (git,
// OCI) and nothing talks to a Docker engine. Any error fails the test.
func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, composeFile)},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(kv),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load %s: %v", composeFile, err)
	}
	return project
}

// service returns the named service or fails the test.
func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	return s
}

// env returns the value of an environment variable of s ("" when unset).
func env(s types.ServiceConfig, key string) string {
	if v, ok := s.Environment[key]; ok && v != nil {
		return *v
	}
	return ""
}

// listenPort returns the port a service's Ferry binary listens on, taken from
// FERRY_LISTEN or a --listen flag in its command.
func listenPort(s types.ServiceConfig) (string, bool) {
	addr := env(s, "FERRY_LISTEN")
	for i, arg := range s.Command {
		switch {
		case arg == "--listen" || arg == "-listen":
			if i+1 < len(s.Command) {
				addr = s.Command[i+1]
			}
		case strings.HasPrefix(arg, "--listen="):
			addr = strings.TrimPrefix(arg, "--listen=")
		}
	}
	if addr == "" {
		return "", false
	}
	_, port, err := net.SplitHostPort(addr)
	return port, err == nil && port != ""
}

// serviceKind classifies a compose service by name: Ferry binaries are built
// from a Dockerfile under deploy/, everything else runs a pinned image.
func serviceKind(name string) (dockerfile string, builds bool) {
	switch {
	case name == "hub":
		return "deploy/Dockerfile.hub", true
	case strings.HasPrefix(name, "agent-"):
		return "deploy/Dockerfile.agent", true
	case strings.HasPrefix(name, "apim-"):
		return "deploy/Dockerfile.apim-sim", true
	}
	return "", false
}

// imagePinned reports why ref is not pinned to a tag or digest ("" if it is).
func imagePinned(ref string) string {
	if ref == "" {
		return "no image"
	}
	if strings.Contains(ref, "@sha256:") {
		return ""
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	i := strings.LastIndex(name, ":")
	if i < 0 {
		return "no tag"
	}
	switch tag := name[i+1:]; {
	case tag == "":
		return "empty tag"
	case tag == "latest":
		return "tag latest"
	case strings.Contains(tag, "$"):
		return "tag left uninterpolated"
	}
	return ""
}

func TestImagePinned(t *testing.T) {
	for ref, want := range map[string]bool{
		"mongo:7.0":                     true,
		"prom/prometheus:v3.5.0":        true,
		"registry:5000/curl:8.15.0":     true,
		"mongo@sha256:0123456789abcdef": true,
		"mongo":                         false,
		"mongo:latest":                  false,
		"registry:5000/curl":            false,
		"prom/prometheus:":              false,
		"":                              false,
	} {
		if got := imagePinned(ref) == ""; got != want {
			t.Errorf("imagePinned(%q) ok = %v, want %v (%s)", ref, got, want, imagePinned(ref))
		}
	}
}

// composeEnvs are the environments the compose file must load under: bare
// (every variable falls back to its default) and fully overridden.
var composeEnvs = []struct {
	name string
	env  map[string]string
}{
	{"defaults", nil},
	{"overrides", map[string]string{
		"FERRY_ADMIN_TOKEN": "override-admin-token-0123456789",
		"FERRY_PUBLIC_URL":  "https://ferry.test",
		"APIM_PASSWORD":     "override-apim-password",
	}},
}

func TestComposeLoads(t *testing.T) {
	for _, tc := range composeEnvs {
		t.Run(tc.name, func(t *testing.T) {
			p := loadCompose(t, tc.env)
			hub, initSvc := service(t, p, "hub"), service(t, p, "init")

			// The init service must authenticate with the token the hub bootstraps.
			token := env(hub, "FERRY_ADMIN_TOKEN")
			if token == "" {
				t.Error("hub: FERRY_ADMIN_TOKEN is empty")
			}
			if got := env(initSvc, "FERRY_ADMIN_TOKEN"); got != token {
				t.Errorf("init FERRY_ADMIN_TOKEN = %q, hub's = %q", got, token)
			}
			if want, ok := tc.env["FERRY_ADMIN_TOKEN"]; ok && token != want {
				t.Errorf("hub FERRY_ADMIN_TOKEN = %q, want the override %q", token, want)
			}

			// The hub's own configuration loader accepts what compose passes it.
			if _, err := config.Load(hub.Command, func(k string) string { return env(hub, k) }, io.Discard); err != nil {
				t.Errorf("hub: the compose environment fails the hub's config validation: %v", err)
			}

			// Every agent must log in to its APIM with the password the APIM accepts.
			for name, s := range p.Services {
				if !strings.HasPrefix(name, "agent-") {
					continue
				}
				apim := apimService(t, p, s)
				if got, want := env(s, "FERRY_APIM_PASSWORD"), env(apim, "APIM_SIM_PASSWORD"); got == "" || got != want {
					t.Errorf("%s FERRY_APIM_PASSWORD = %q, %s APIM_SIM_PASSWORD = %q", name, got, apim.Name, want)
				}
			}
		})
	}
}

// apimService returns the compose service an agent's FERRY_APIM_URL points at.
func apimService(t *testing.T, p *types.Project, agent types.ServiceConfig) types.ServiceConfig {
	t.Helper()
	u, err := url.Parse(env(agent, "FERRY_APIM_URL"))
	if err != nil || u.Hostname() == "" {
		t.Fatalf("%s: bad FERRY_APIM_URL %q: %v", agent.Name, env(agent, "FERRY_APIM_URL"), err)
	}
	return service(t, p, u.Hostname())
}

// wantServices is the stack docker-compose.yml must define, no more, no less.
var wantServices = []string{
	"mongo", "hub", "init", "apim-dev", "apim-prod", "agent-dev", "agent-prod", "prometheus",
}

// wantImages names the image repository of each image-only service.
var wantImages = map[string]string{
	"mongo":      "mongo",
	"init":       "curlimages/curl",
	"prometheus": "prom/prometheus",
}

func TestComposeServices(t *testing.T) {
	root := repoRoot(t)
	p := loadCompose(t, nil)

	got := p.ServiceNames()
	slices.Sort(got)
	want := slices.Clone(wantServices)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("services = %v, want %v", got, want)
	}

	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		dockerfile, builds := serviceKind(name)
		if !builds {
			if s.Build != nil {
				t.Errorf("%s: builds an image; only Ferry binaries (hub, agent-*, apim-*) are built", name)
			}
			if why := imagePinned(s.Image); why != "" {
				t.Errorf("%s: image %q is not pinned: %s", name, s.Image, why)
			}
			if repo, ok := wantImages[name]; ok && !strings.HasPrefix(s.Image, repo+":") && !strings.HasPrefix(s.Image, repo+"@") {
				t.Errorf("%s: image %q, want repository %s", name, s.Image, repo)
			}
			continue
		}
		if s.Build == nil {
			t.Errorf("%s: runs a Ferry binary but has no build section", name)
			continue
		}
		if s.Build.Context != root {
			t.Errorf("%s: build context %q, want the repository root %q", name, s.Build.Context, root)
		}
		if s.Build.Dockerfile != dockerfile {
			t.Errorf("%s: dockerfile %q, want %q", name, s.Build.Dockerfile, dockerfile)
		}
		if !strings.HasPrefix(filepath.ToSlash(s.Build.Dockerfile), "deploy/") {
			t.Errorf("%s: dockerfile %q is not under deploy/", name, s.Build.Dockerfile)
		}
		if fi, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: dockerfile %q does not exist in the repository: %v", name, s.Build.Dockerfile, err)
		}
		if port, _ := listenPort(s); port != wantDockerfiles[dockerfile].port {
			t.Errorf("%s: listens on port %q, %s EXPOSEs %q", name, port, dockerfile, wantDockerfiles[dockerfile].port)
		}
	}
}

func TestComposeBindMounts(t *testing.T) {
	root := repoRoot(t)
	p := loadCompose(t, nil)
	binds := 0
	for _, name := range p.ServiceNames() {
		for _, v := range p.Services[name].Volumes {
			if v.Type != types.VolumeTypeBind {
				if _, ok := p.Volumes[v.Source]; v.Type == types.VolumeTypeVolume && !ok {
					t.Errorf("%s: named volume %q is not declared", name, v.Source)
				}
				continue
			}
			binds++
			rel, err := filepath.Rel(root, v.Source)
			if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				t.Errorf("%s: bind mount %s is outside the repository", name, v.Source)
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s: bind mount source %s does not exist: %v", name, rel, err)
			}
			if !v.ReadOnly {
				t.Errorf("%s: bind mount %s is writable; repository files are mounted read-only", name, rel)
			}
		}
	}
	if binds == 0 {
		t.Error("no bind mounts found; the init script, seed and Prometheus files should be mounted")
	}
}

// wantDependencies lists depends_on edges the stack relies on to start in order.
var wantDependencies = []struct {
	service, on, condition string
}{
	{"hub", "mongo", types.ServiceConditionHealthy},
	{"init", "hub", types.ServiceConditionHealthy},
	{"agent-dev", "init", types.ServiceConditionCompletedSuccessfully},
	{"agent-prod", "init", types.ServiceConditionCompletedSuccessfully},
	{"agent-dev", "apim-dev", types.ServiceConditionHealthy},
	{"agent-prod", "apim-prod", types.ServiceConditionHealthy},
}

func TestComposeDependencies(t *testing.T) {
	p := loadCompose(t, nil)
	for _, d := range wantDependencies {
		dep, ok := service(t, p, d.service).DependsOn[d.on]
		if !ok {
			t.Errorf("%s does not depend on %s", d.service, d.on)
			continue
		}
		if dep.Condition != d.condition {
			t.Errorf("%s depends on %s with condition %q, want %q", d.service, d.on, dep.Condition, d.condition)
		}
	}
	// A service_healthy dependency needs a healthcheck in the compose file
	// itself, so the gate does not silently rely on an image's HEALTHCHECK.
	for _, name := range p.ServiceNames() {
		for on, dep := range p.Services[name].DependsOn {
			if dep.Condition != types.ServiceConditionHealthy {
				continue
			}
			hc := service(t, p, on).HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) == 0 {
				t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, on, on)
			}
		}
	}
}

func TestComposeWiring(t *testing.T) {
	p := loadCompose(t, nil)

	// MongoDB runs as a replica set and the hub names the same set.
	mongo := service(t, p, "mongo")
	i := slices.Index(mongo.Command, "--replSet")
	if i < 0 || i+1 >= len(mongo.Command) {
		t.Fatalf("mongo: command %q has no --replSet", mongo.Command)
	}
	set := mongo.Command[i+1]
	u, err := url.Parse(env(service(t, p, "hub"), "FERRY_MONGO_URI"))
	if err != nil {
		t.Fatalf("hub: FERRY_MONGO_URI: %v", err)
	}
	if u.Scheme != "mongodb" || u.Hostname() != "mongo" {
		t.Errorf("hub: FERRY_MONGO_URI %q does not point at the mongo service", u)
	}
	if got := u.Query().Get("replicaSet"); got != set {
		t.Errorf("hub: FERRY_MONGO_URI replicaSet=%q, mongo runs --replSet %q", got, set)
	}
	if mongo.HealthCheck == nil {
		t.Fatal("mongo: no healthcheck to initiate the replica set")
	}
	hc := strings.Join(mongo.HealthCheck.Test, " ")
	if !strings.Contains(hc, "rs.initiate") || !strings.Contains(hc, "'"+set+"'") {
		t.Errorf("mongo: healthcheck does not initiate replica set %q: %s", set, hc)
	}

	// Each Ferry binary listens on all interfaces so other containers reach it.
	for _, name := range p.ServiceNames() {
		if _, builds := serviceKind(name); !builds {
			continue
		}
		s := p.Services[name]
		if _, ok := listenPort(s); !ok {
			t.Errorf("%s: no listen address in FERRY_LISTEN or --listen", name)
		}
		if addr := env(s, "FERRY_LISTEN"); strings.HasPrefix(addr, "127.") || strings.HasPrefix(addr, "localhost:") {
			t.Errorf("%s: FERRY_LISTEN %q is loopback; other containers cannot reach it", name, addr)
		}
	}

	// Agents reach the hub and their APIM by service name and read their link
	// token from the volume the init service writes.
	initSvc := service(t, p, "init")
	initVolumes := map[string]string{} // volume name → mount point in init
	for _, v := range initSvc.Volumes {
		if v.Type == types.VolumeTypeVolume {
			initVolumes[v.Source] = v.Target
		}
	}
	initEnvs := strings.Fields(strings.ToLower(env(initSvc, "FERRY_ENVS")))
	for _, name := range p.ServiceNames() {
		if !strings.HasPrefix(name, "agent-") {
			continue
		}
		s := p.Services[name]
		hub, err := url.Parse(env(s, "FERRY_HUB"))
		if err != nil || hub.Hostname() != "hub" {
			t.Errorf("%s: FERRY_HUB %q does not point at the hub service", name, env(s, "FERRY_HUB"))
		} else if port, _ := listenPort(service(t, p, "hub")); hub.Port() != port {
			t.Errorf("%s: FERRY_HUB port %q, hub listens on %q", name, hub.Port(), port)
		}
		apim := apimService(t, p, s)
		apimURL, _ := url.Parse(env(s, "FERRY_APIM_URL"))
		if port, _ := listenPort(apim); apimURL.Port() != port {
			t.Errorf("%s: FERRY_APIM_URL port %q, %s listens on %q", name, apimURL.Port(), apim.Name, port)
		}
		file := env(s, "FERRY_LINK_TOKEN_FILE")
		if file == "" {
			t.Errorf("%s: FERRY_LINK_TOKEN_FILE is not set", name)
			continue
		}
		mounted := false
		for _, v := range s.Volumes {
			if _, shared := initVolumes[v.Source]; shared && v.Type == types.VolumeTypeVolume && filepath.Dir(file) == v.Target {
				mounted = true
				if !v.ReadOnly {
					t.Errorf("%s: link token volume %s is writable", name, v.Source)
				}
			}
		}
		if !mounted {
			t.Errorf("%s: FERRY_LINK_TOKEN_FILE %s is not on a volume shared with init", name, file)
		}
		// init.sh writes <environment, lower case>.token.
		if env := strings.TrimSuffix(filepath.Base(file), ".token"); !slices.Contains(initEnvs, env) {
			t.Errorf("%s: reads %s, but init only writes tokens for %v", name, filepath.Base(file), initEnvs)
		}
		if dep, ok := s.DependsOn["init"]; !ok || dep.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s: must wait for init to complete successfully", name)
		}
	}
	script, err := os.ReadFile(repoPath(t, "deploy/compose/init.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/orgs", "/environments", "/link-tokens", ".token"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("deploy/compose/init.sh does not mention %q", want)
		}
	}
}
