package deploycheck

import (
	"encoding/json"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"
)

// metricContract is every ferry_* metric the alert rules and the dashboard
// use, with its type. The hub and the agent must export these names (full
// names, namespace "ferry", subsystem "hub" or "agent"); renaming one there
// means renaming it here and in deploy/.
var metricContract = map[string]string{
	"ferry_hub_agents_connected":                 "gauge",
	"ferry_hub_link_handshake_failures_total":    "counter", // label reason
	"ferry_hub_promotions_waiting":               "gauge",
	"ferry_hub_promotions_total":                 "counter", // label status; "ERROR" on failure
	"ferry_hub_store_operation_duration_seconds": "histogram",
	"ferry_agent_link_state":                     "gauge",     // 0 closed, 1 connecting, 2 connected, 3 draining
	"ferry_agent_apim_request_duration_seconds":  "histogram", // label code: HTTP status or "error"
}

var metricRef = regexp.MustCompile(`\bferry_[a-z0-9_]+`)

// metricsIn returns the contract metrics expr uses and complaints about any
// ferry_* series that is not in the contract or misuses its type.
func metricsIn(expr string) (used []string, problems []string) {
	for _, ref := range metricRef.FindAllString(expr, -1) {
		name, kind := ref, metricContract[ref]
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(ref, suffix); ok && metricContract[base] == "histogram" {
				name, kind = base, "histogram"
			}
		}
		switch {
		case kind == "":
			problems = append(problems, ref+" is not in metricContract")
		case kind == "histogram" && name == ref:
			problems = append(problems, ref+" is a histogram; query _bucket, _count or _sum")
		case kind == "counter" && !strings.HasSuffix(name, "_total"):
			problems = append(problems, ref+" is a counter without the _total suffix")
		}
		if !slices.Contains(used, name) {
			used = append(used, name)
		}
	}
	return used, problems
}

func TestMetricsIn(t *testing.T) {
	for _, tc := range []struct {
		expr     string
		used     []string
		problems int
	}{
		{`sum(ferry_hub_agents_connected) == 0`, []string{"ferry_hub_agents_connected"}, 0},
		{`rate(ferry_agent_apim_request_duration_seconds_count{code=~"5.."}[5m])`, []string{"ferry_agent_apim_request_duration_seconds"}, 0},
		{`ferry_agent_apim_request_duration_seconds > 1`, []string{"ferry_agent_apim_request_duration_seconds"}, 1},
		{`rate(ferry_hub_promotions_failed[5m])`, []string{"ferry_hub_promotions_failed"}, 1},
		{`up == 0`, nil, 0},
	} {
		used, problems := metricsIn(tc.expr)
		if !slices.Equal(used, tc.used) || len(problems) != tc.problems {
			t.Errorf("metricsIn(%q) = %v, %v; want %v and %d problems", tc.expr, used, problems, tc.used, tc.problems)
		}
	}
}

// balanced reports whether brackets and double quotes in a PromQL expression
// pair up; a cheap stand-in for a PromQL parser, which is not in the module
// graph.
func balanced(expr string) bool {
	var stack []rune
	inQuote := false
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for i, r := range expr {
		switch {
		case r == '"' && (i == 0 || expr[i-1] != '\\'):
			inQuote = !inQuote
		case inQuote:
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case pairs[r] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return !inQuote && len(stack) == 0
}

type promConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// readYAML decodes a repository file strictly: unknown fields are fine
// (the structs are partial), but syntax errors are not.
func readYAML(t *testing.T, rel string, v any) {
	t.Helper()
	data, err := os.ReadFile(repoPath(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// wantJobs maps each Ferry scrape job to the compose services it must scrape.
// The alert rules select on these job names.
var wantJobs = map[string][]string{
	"ferry-hub":   {"hub"},
	"ferry-agent": {"agent-dev", "agent-prod"},
}

func TestPrometheusConfig(t *testing.T) {
	var cfg promConfig
	readYAML(t, "deploy/prometheus/prometheus.yml", &cfg)
	p := loadCompose(t, nil)
	prom := service(t, p, "prometheus")

	mounts := map[string]string{} // container path → repository path
	for _, v := range prom.Volumes {
		if v.Type == "bind" {
			mounts[v.Target] = v.Source
		}
	}
	if src := mounts["/etc/prometheus/prometheus.yml"]; src != repoPath(t, "deploy/prometheus/prometheus.yml") {
		t.Errorf("prometheus: /etc/prometheus/prometheus.yml is mounted from %q", src)
	}
	if !slices.Contains(prom.Command, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus: command %q does not load /etc/prometheus/prometheus.yml", prom.Command)
	}
	if !slices.Contains(cfg.RuleFiles, "/etc/prometheus/alerts.yml") {
		t.Errorf("rule_files = %v, want /etc/prometheus/alerts.yml", cfg.RuleFiles)
	}
	for _, f := range cfg.RuleFiles {
		if _, ok := mounts[f]; !ok {
			t.Errorf("rule file %s is not mounted into the prometheus service", f)
		}
	}

	got := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path %q; Ferry serves /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("job %s: target %q: %v", sc.JobName, target, err)
					continue
				}
				s, err := p.GetService(host)
				if err != nil {
					t.Errorf("job %s: target %q names no compose service", sc.JobName, target)
					continue
				}
				if want, ok := listenPort(s); ok && port != want {
					t.Errorf("job %s: target %q, but %s listens on port %s", sc.JobName, target, host, want)
				}
				got[sc.JobName] = append(got[sc.JobName], host)
			}
		}
	}
	for job, want := range wantJobs {
		have := slices.Sorted(slices.Values(got[job]))
		if !slices.Equal(have, want) {
			t.Errorf("job %s scrapes %v, want %v", job, have, want)
		}
	}
}

type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// wantAlerts is the alert every operator concern needs: the metric it
// watches, fragments its expression must contain and its minimum `for`.
var wantAlerts = []struct {
	alert    string
	metric   string
	contains []string
	minFor   time.Duration
}{
	{"FerryHubDown", "up", []string{`job="ferry-hub"`}, time.Minute},
	{"FerryAgentDown", "up", []string{`job="ferry-agent"`}, time.Minute},
	{"FerryNoAgentsConnected", "ferry_hub_agents_connected", nil, time.Minute},
	{"FerryAgentsDisconnected", "ferry_hub_agents_connected", []string{"max_over_time"}, 5 * time.Minute},
	{"FerryAgentLinkDown", "ferry_agent_link_state", []string{"!= 2"}, time.Minute},
	{"FerryLinkHandshakeFailures", "ferry_hub_link_handshake_failures_total", []string{"rate("}, 5 * time.Minute},
	{"FerryPromotionsWaiting", "ferry_hub_promotions_waiting", []string{"> 0"}, 15 * time.Minute},
	{"FerryPromotionErrors", "ferry_hub_promotions_total", []string{`status="ERROR"`}, 0},
	{"FerryAgentApimErrors", "ferry_agent_apim_request_duration_seconds", []string{`code=~"5..|error"`}, 5 * time.Minute},
	{"FerryHubStoreSlow", "ferry_hub_store_operation_duration_seconds", []string{"histogram_quantile(0.99", "_bucket"}, 5 * time.Minute},
}

// promTemplateFuncs stands in for the template functions Prometheus offers
// in annotations, so that text/template can check their syntax.
var promTemplateFuncs = template.FuncMap{
	"humanize": fmtAny, "humanize1024": fmtAny, "humanizeDuration": fmtAny,
	"humanizePercentage": fmtAny, "humanizeTimestamp": fmtAny, "title": fmtAny,
	"toUpper": fmtAny, "toLower": fmtAny, "reReplaceAll": func(a, b, c string) string { return c },
	"query": func(string) ([]any, error) { return nil, nil }, "first": fmtAny, "value": fmtAny,
	"label": func(string, any) string { return "" }, "externalURL": func() string { return "" },
}

func fmtAny(any) string { return "" }

func TestAlertRules(t *testing.T) {
	var rules alertRules
	readYAML(t, "deploy/prometheus/alerts.yml", &rules)
	var promCfg promConfig
	readYAML(t, "deploy/prometheus/prometheus.yml", &promCfg)
	var jobs []string
	for _, sc := range promCfg.ScrapeConfigs {
		jobs = append(jobs, sc.JobName)
	}
	jobRef := regexp.MustCompile(`job(=~?)"([^"]*)"`)

	type alert struct {
		expr   string
		forDur time.Duration
	}
	alerts := map[string]alert{}
	used := map[string]bool{}
	for _, g := range rules.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q is unnamed or empty", g.Name)
		}
		for _, r := range g.Rules {
			name := r.Alert
			if name == "" {
				t.Errorf("group %s: a rule is not an alert (record %q); keep recording rules elsewhere", g.Name, r.Record)
				continue
			}
			if _, dup := alerts[name]; dup {
				t.Errorf("alert %s is defined twice", name)
			}
			var d time.Duration
			if r.For != "" {
				var err error
				if d, err = time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", name, r.For, err)
				}
			}
			alerts[name] = alert{r.Expr, d}

			if strings.TrimSpace(r.Expr) == "" || !balanced(r.Expr) {
				t.Errorf("%s: expression is empty or unbalanced: %s", name, r.Expr)
			}
			metrics, problems := metricsIn(r.Expr)
			for _, m := range metrics {
				used[m] = true
			}
			for _, p := range problems {
				t.Errorf("%s: %s", name, p)
			}
			for _, m := range jobRef.FindAllStringSubmatch(r.Expr, -1) {
				if m[1] == "=" && !slices.Contains(jobs, m[2]) {
					t.Errorf("%s: selects job %q, which prometheus.yml does not scrape (jobs %v)", name, m[2], jobs)
				}
			}
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", name, sev)
			}
			for _, key := range []string{"summary", "description"} {
				text := strings.TrimSpace(r.Annotations[key])
				if text == "" {
					t.Errorf("%s: no %s annotation", name, key)
					continue
				}
				header := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}"
				if _, err := template.New(name).Funcs(promTemplateFuncs).Parse(header + text); err != nil {
					t.Errorf("%s: %s annotation: %v", name, key, err)
				}
			}
		}
	}

	for _, w := range wantAlerts {
		a, ok := alerts[w.alert]
		if !ok {
			t.Errorf("alert %s is missing", w.alert)
			continue
		}
		if m, _ := metricsIn(a.expr); w.metric != "up" && !slices.Contains(m, w.metric) {
			t.Errorf("%s: expression does not use %s: %s", w.alert, w.metric, a.expr)
		}
		for _, frag := range append([]string{w.metric}, w.contains...) {
			if !strings.Contains(a.expr, frag) {
				t.Errorf("%s: expression lacks %q: %s", w.alert, frag, a.expr)
			}
		}
		if a.forDur < w.minFor {
			t.Errorf("%s: for %v, want at least %v", w.alert, a.forDur, w.minFor)
		}
	}
	for m := range metricContract {
		if !used[m] {
			t.Errorf("no alert watches %s", m)
		}
	}
}

type grafanaDashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ X, Y, W, H int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile(repoPath(t, "deploy/grafana/ferry-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("ferry-dashboard.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both are required", d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if len(d.Panels) == 0 {
		t.Fatal("dashboard has no panels")
	}
	ids := map[int]bool{}
	used := map[string]bool{}
	for _, p := range d.Panels {
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("panel %q: id %d is zero or repeated", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Title == "" || p.Type == "" || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			t.Errorf("panel %d: needs a title, a type and a size (%+v)", p.ID, p.GridPos)
		}
		if p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource type %q, want prometheus", p.Title, p.Datasource.Type)
		}
		if v, ok := strings.CutPrefix(p.Datasource.UID, "$"); ok && vars[strings.Trim(v, "{}")] != "datasource" {
			t.Errorf("panel %q: datasource %q is not a datasource variable", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, q := range p.Targets {
			if q.RefID == "" || strings.TrimSpace(q.Expr) == "" || !balanced(q.Expr) {
				t.Errorf("panel %q: query %q: needs a refId and a balanced expression: %s", p.Title, q.RefID, q.Expr)
			}
			metrics, problems := metricsIn(q.Expr)
			for _, m := range metrics {
				used[m] = true
			}
			for _, pr := range problems {
				t.Errorf("panel %q: %s", p.Title, pr)
			}
		}
	}
	for m := range metricContract {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}
