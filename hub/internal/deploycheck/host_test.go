package deploycheck

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// unit is a parsed systemd unit: section → key → values in file order.
type unit map[string]map[string][]string

func parseUnit(text string) (unit, error) {
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, errors.New("line " + sc.Text() + ": not key=value inside a section")
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u, sc.Err()
}

// last returns the effective (last) value of a directive.
func (u unit) last(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// hardening is required of every Ferry unit, as [Service] key → value.
var hardening = map[string]string{
	"Restart":                 "always",
	"NoNewPrivileges":         "yes",
	"ProtectSystem":           "strict",
	"ProtectHome":             "yes",
	"PrivateTmp":              "yes",
	"PrivateDevices":          "yes",
	"ProtectKernelTunables":   "yes",
	"ProtectKernelModules":    "yes",
	"ProtectControlGroups":    "yes",
	"RestrictSUIDSGID":        "yes",
	"CapabilityBoundingSet":   "",
	"SystemCallArchitectures": "native",
}

var wantUnits = map[string]struct {
	binary, envFile, stateDir string
}{
	"deploy/systemd/ferry-agent.service": {"ferry-agent", "/etc/ferry/agent.env", "ferry-agent"},
	"deploy/systemd/ferry-hub.service":   {"ferry-hub", "/etc/ferry/hub.env", "ferry-hub"},
}

func TestSystemdUnits(t *testing.T) {
	for rel, want := range wantUnits {
		t.Run(path.Base(rel), func(t *testing.T) {
			data, err := os.ReadFile(repoPath(t, rel))
			if err != nil {
				t.Fatal(err)
			}
			u, err := parseUnit(string(data))
			if err != nil {
				t.Fatal(err)
			}
			for key, value := range hardening {
				if _, set := u["Service"][key]; !set || u.last("Service", key) != value {
					t.Errorf("[Service] %s=%q, want %q", key, u.last("Service", key), value)
				}
			}
			exec := strings.Fields(u.last("Service", "ExecStart"))
			if len(exec) == 0 || path.Base(exec[0]) != want.binary || !path.IsAbs(exec[0]) {
				t.Errorf("ExecStart=%q, want an absolute path to %s", u.last("Service", "ExecStart"), want.binary)
			}
			if !slices.Contains(u["Service"]["EnvironmentFile"], want.envFile) {
				t.Errorf("EnvironmentFile=%v, want %s", u["Service"]["EnvironmentFile"], want.envFile)
			}
			if got := u.last("Service", "StateDirectory"); got != want.stateDir {
				t.Errorf("StateDirectory=%q, want %q", got, want.stateDir)
			}
			if !slices.Contains(u["Service"]["Environment"], "FERRY_DATA_DIR=%S/"+want.stateDir) {
				t.Errorf("Environment=%v does not point FERRY_DATA_DIR at the state directory", u["Service"]["Environment"])
			}
			if u.last("Service", "DynamicUser") != "yes" && u.last("Service", "User") == "" {
				t.Error("neither DynamicUser=yes nor a dedicated User=")
			}
			if u.last("Install", "WantedBy") == "" {
				t.Error("[Install] has no WantedBy; systemctl enable would do nothing")
			}
		})
	}
}

// k8sObject is the part of a Kubernetes manifest these checks read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		// Deployment
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// Service (its selector is a plain map; Deployment's is under matchLabels)
		Ports []struct {
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
			Name       string `yaml:"name"`
		} `yaml:"ports"`
	} `yaml:"spec"`
	ServiceSelector map[string]string `yaml:"-"`
}

type k8sContainer struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
}

// readManifests decodes every YAML document in a repository file.
func readManifests(t *testing.T, rel string) []k8sObject {
	t.Helper()
	data, err := os.ReadFile(repoPath(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	var objs []k8sObject
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var node yaml.Node
		if err := dec.Decode(&node); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		var o k8sObject
		if err := node.Decode(&o); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		var svc struct {
			Spec struct {
				Selector map[string]string `yaml:"selector"`
			} `yaml:"spec"`
		}
		if o.Kind == "Service" {
			if err := node.Decode(&svc); err != nil {
				t.Fatalf("%s: %v", rel, err)
			}
			o.ServiceSelector = svc.Spec.Selector
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Errorf("%s: a document lacks apiVersion, kind or metadata.name", rel)
		}
		objs = append(objs, o)
	}
	return objs
}

// wantManifests: file → the Deployment it holds, its image and its listen
// port, and whether a Service exposes it.
var wantManifests = map[string]struct {
	deployment, image, port string
	service                 bool
	secrets                 []string // secretKeyRef names the container reads
}{
	"deploy/k8s/hub.yaml":   {"ferry-hub", "ferry-hub", "8080", true, []string{"ferry-hub"}},
	"deploy/k8s/agent.yaml": {"ferry-agent-dev", "ferry-agent", "8090", false, []string{"ferry-agent-dev"}},
}

func TestKubernetesManifests(t *testing.T) {
	for rel, want := range wantManifests {
		t.Run(path.Base(rel), func(t *testing.T) {
			objs := readManifests(t, rel)
			i := slices.IndexFunc(objs, func(o k8sObject) bool { return o.Kind == "Deployment" && o.Metadata.Name == want.deployment })
			if i < 0 {
				t.Fatalf("no Deployment %s", want.deployment)
			}
			d := objs[i]
			pod := d.Spec.Template
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
				t.Errorf("replicas %v, want exactly 1 (one link per installation / one hub registry)", d.Spec.Replicas)
			}
			for k, v := range d.Spec.Selector.MatchLabels {
				if pod.Metadata.Labels[k] != v {
					t.Errorf("selector %s=%s does not match the pod labels %v", k, v, pod.Metadata.Labels)
				}
			}
			if !pod.Spec.SecurityContext.RunAsNonRoot {
				t.Error("pod securityContext.runAsNonRoot is not true")
			}
			if len(pod.Spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
			}
			c := pod.Spec.Containers[0]
			if img, _, _ := strings.Cut(path.Base(c.Image), ":"); img != want.image {
				t.Errorf("image %q, want %s", c.Image, want.image)
			}
			if p := c.SecurityContext.AllowPrivilegeEscalation; p == nil || *p || !c.SecurityContext.ReadOnlyRootFilesystem {
				t.Error("container must set allowPrivilegeEscalation: false and readOnlyRootFilesystem: true")
			}
			var listen string
			var secrets []string
			for _, e := range c.Env {
				if e.Name == "FERRY_LISTEN" {
					listen = e.Value
				}
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					secrets = append(secrets, e.ValueFrom.SecretKeyRef.Name)
				}
			}
			if !strings.HasSuffix(listen, ":"+want.port) {
				t.Errorf("FERRY_LISTEN %q, want port %s", listen, want.port)
			}
			for _, s := range want.secrets {
				if !slices.Contains(secrets, s) {
					t.Errorf("no env var reads Secret %s (reads %v)", s, secrets)
				}
			}
			portNames := map[string]int{}
			for _, p := range c.Ports {
				portNames[p.Name] = p.ContainerPort
			}

			j := slices.IndexFunc(objs, func(o k8sObject) bool { return o.Kind == "Service" })
			if !want.service {
				return
			}
			if j < 0 {
				t.Fatal("no Service")
			}
			svc := objs[j]
			if len(svc.ServiceSelector) == 0 {
				t.Error("Service has no selector")
			}
			for k, v := range svc.ServiceSelector {
				if pod.Metadata.Labels[k] != v {
					t.Errorf("Service selector %s=%s does not match the pod labels", k, v)
				}
			}
			for _, p := range svc.Spec.Ports {
				name, _ := p.TargetPort.(string)
				if _, ok := portNames[name]; !ok {
					t.Errorf("Service port %d targets %v, not a named container port %v", p.Port, p.TargetPort, portNames)
				}
			}
		})
	}

	var k struct {
		Resources []string `yaml:"resources"`
	}
	readYAML(t, "deploy/k8s/kustomization.yaml", &k)
	for rel := range wantManifests {
		if !slices.Contains(k.Resources, path.Base(rel)) {
			t.Errorf("kustomization.yaml does not list %s", path.Base(rel))
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(repoPath(t, "deploy/k8s/"+r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
}
