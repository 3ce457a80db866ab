// Command ferry-promobench drives promotions through a running Ferry (hub,
// Dev and Prod agents, APIM stand-ins) and prints throughput and latency. It
// is a benchmark tool for scripts/bench-promotion, not a test: it seeds N APIs
// into the Dev APIM stand-in, requests a promotion of each at the hub,
// accepts each task at the Prod agent as soon as it appears, and waits for the
// hub to record every decision.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

type options struct {
	hub, token, org, devAPIM, prodAgent string
	session                             string // a session token accepted by the Prod agent, if it requires one
	n, concurrency                      int
}

type promotion struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"createdAt"`
	DeliveredAt *time.Time `json:"deliveredAt"`
	DecidedAt   *time.Time `json:"decidedAt"`
}

type result struct {
	taskRaised, recorded time.Duration
	err                  error
}

var client = &http.Client{Timeout: 30 * time.Second}

func main() {
	var o options
	flag.StringVar(&o.hub, "hub", "http://127.0.0.1:8080", "hub base URL")
	flag.StringVar(&o.token, "token", os.Getenv("FERRY_ADMIN_TOKEN"), "hub API token (FERRY_ADMIN_TOKEN)")
	flag.StringVar(&o.org, "org", "bench", "organization with environments Dev and Prod")
	flag.StringVar(&o.devAPIM, "dev-apim", "http://127.0.0.1:8083/management/v2", "Dev APIM stand-in base URL")
	flag.StringVar(&o.prodAgent, "prod-agent", "http://127.0.0.1:8091", "Prod agent base URL")
	flag.StringVar(&o.session, "session", os.Getenv("FERRY_SESSION"), "session token for the Prod agent's REST API (FERRY_SESSION)")
	flag.IntVar(&o.n, "n", 200, "promotions to run")
	flag.IntVar(&o.concurrency, "c", 8, "promotions in flight at once")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "ferry-promobench:", err)
		os.Exit(1)
	}
}

// do makes a JSON call; headers are extra name, value pairs.
func do(method, url, token string, body, out any, headers ...string) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", url, err)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode, nil
}

// seed imports n APIs into the Dev APIM and returns their ids.
func seed(o options) ([]string, error) {
	ids := make([]string, 0, o.n)
	stamp := time.Now().UnixNano()
	for i := range o.n {
		def := map[string]any{
			"api": map[string]any{
				"definitionVersion": "V4", "type": "PROXY", "name": fmt.Sprintf("Bench API %d", i), "apiVersion": "1.0",
				"listeners": []any{map[string]any{"type": "HTTP", "paths": []any{map[string]any{"path": fmt.Sprintf("/bench-%d-%d", stamp, i)}},
					"entrypoints": []any{map[string]any{"type": "http-proxy"}}}},
				"endpointGroups": []any{map[string]any{"name": "default", "type": "http-proxy",
					"endpoints": []any{map[string]any{"name": "default", "type": "http-proxy", "configuration": map[string]any{"target": "https://backend.example/bench"}}}}},
			},
			"plans": []any{map[string]any{"name": "Free", "security": map[string]any{"type": "KEY_LESS"}, "status": "PUBLISHED", "mode": "STANDARD", "definitionVersion": "V4"}},
		}
		var out struct{ ID string }
		if _, err := do("POST", o.devAPIM+"/environments/DEFAULT/apis/_import/definition", "", def, &out); err != nil {
			return nil, fmt.Errorf("seed API %d: %w", i, err)
		}
		ids = append(ids, out.ID)
	}
	return ids, nil
}

func one(o options, apiID string) result {
	var p promotion
	// The hub requires an Idempotency-Key to create a promotion.
	if _, err := do("POST", o.hub+"/api/v1/orgs/"+o.org+"/promotions", o.token, map[string]string{"apiId": apiID, "sourceEnv": "Dev", "targetEnv": "Prod"}, &p,
		"Idempotency-Key", rand.Text()); err != nil {
		return result{err: err}
	}
	// Accept as soon as the task is at the Prod agent.
	deadline := time.Now().Add(60 * time.Second)
	var accepted time.Time
	for {
		st, err := do("POST", o.prodAgent+"/api/v1/tasks/"+p.ID+"/_accept", o.session, map[string]string{}, nil)
		if err == nil {
			accepted = time.Now()
			break
		}
		if st != http.StatusNotFound || time.Now().After(deadline) {
			return result{err: err}
		}
		time.Sleep(2 * time.Millisecond)
	}
	for {
		var cur promotion
		if _, err := do("GET", o.hub+"/api/v1/orgs/"+o.org+"/promotions/"+p.ID, o.token, nil, &cur); err != nil {
			return result{err: err}
		}
		if cur.DecidedAt != nil {
			if cur.Status != "ACCEPTED" {
				return result{err: fmt.Errorf("promotion %s ended %s", p.ID, cur.Status)}
			}
			r := result{recorded: cur.DecidedAt.Sub(accepted)}
			if cur.DeliveredAt != nil {
				r.taskRaised = cur.DeliveredAt.Sub(cur.CreatedAt)
			}
			return r
		}
		if time.Now().After(deadline) {
			return result{err: fmt.Errorf("promotion %s not decided in time", p.ID)}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func run(o options) error {
	ids, err := seed(o)
	if err != nil {
		return err
	}
	results := make([]result, len(ids))
	sem := make(chan struct{}, o.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i, id := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i] = one(o, id)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var raised, recorded []time.Duration
	failed := 0
	for _, r := range results {
		if r.err != nil {
			failed++
			fmt.Fprintln(os.Stderr, "failed:", r.err)
			continue
		}
		raised = append(raised, r.taskRaised)
		recorded = append(recorded, r.recorded)
	}
	out := map[string]any{
		"promotions": len(ids), "failed": failed, "concurrency": o.concurrency,
		"promotions_per_second":     float64(len(ids)-failed) / elapsed.Seconds(),
		"request_to_task_p50_ms":    ms(pct(raised, 0.50)),
		"request_to_task_p99_ms":    ms(pct(raised, 0.99)),
		"accept_to_recorded_p50_ms": ms(pct(recorded, 0.50)),
		"accept_to_recorded_p99_ms": ms(pct(recorded, 0.99)),
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(b))
	if failed > 0 {
		return fmt.Errorf("%d promotions failed", failed)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
