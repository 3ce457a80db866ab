package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

func enrollMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	hub := fs.String("hub", "", "hub base URL on loopback, e.g. http://127.0.0.1:8080 (required)")
	n := fs.Int("n", 1000, "installations to enroll (1-20000)")
	credsFile := fs.String("creds", "", "file to write the credentials to, one a line (required)")
	org := fs.String("org", "bench", "organization to create")
	env := fs.String("env", "bench", "environment to create in it")
	concurrency := fs.Int("concurrency", 16, "enrollments in flight")
	maxTime := fs.Duration("max-time", 15*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *hub == "" || *credsFile == "" {
		return errors.New("enroll: -hub and -creds are required")
	}
	if *n < 1 || *n > 20000 {
		return errors.New("enroll: -n must be 1-20000")
	}
	base, err := loopbackURL(*hub)
	if err != nil {
		return err
	}
	admin := os.Getenv("FERRY_ADMIN_TOKEN")
	if admin == "" {
		return errors.New("enroll: set FERRY_ADMIN_TOKEN to the hub's platform admin token")
	}
	ctx, cancel := context.WithTimeout(ctx, *maxTime)
	defer cancel()

	rc := &restClient{base: base.String(), hc: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: *concurrency, MaxConnsPerHost: *concurrency},
	}}
	var o struct{ ID string }
	if err := rc.do(ctx, "POST", "/api/v1/orgs", admin, map[string]string{"name": *org}, http.StatusCreated, &o); err != nil {
		return fmt.Errorf("create organization: %w", err)
	}
	var e struct{ ID string }
	if err := rc.do(ctx, "POST", "/api/v1/orgs/"+url.PathEscape(o.ID)+"/environments", admin, map[string]string{"name": *env}, http.StatusCreated, &e); err != nil {
		return fmt.Errorf("create environment: %w", err)
	}
	tokenPath := "/api/v1/orgs/" + url.PathEscape(o.ID) + "/environments/" + url.PathEscape(e.ID) + "/link-tokens"

	start := time.Now()
	creds := make([]string, *n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(*concurrency)
	var mu sync.Mutex
	done := 0
	for i := range creds {
		g.Go(func() error {
			var lt struct{ Token string }
			if err := rc.do(gctx, "POST", tokenPath, admin, nil, http.StatusCreated, &lt); err != nil {
				return fmt.Errorf("installation %d: create link token: %w", i, err)
			}
			var en struct{ Credential string }
			body := map[string]string{"agentVersion": "bench", "hostname": fmt.Sprintf("bench-%05d", i)}
			if err := rc.do(gctx, "POST", "/api/v1/link/enroll", lt.Token, body, http.StatusCreated, &en); err != nil {
				return fmt.Errorf("installation %d: enroll: %w", i, err)
			}
			creds[i] = en.Credential
			mu.Lock()
			done++
			if done%1000 == 0 {
				fmt.Fprintf(os.Stderr, "enrolled %d/%d\n", done, len(creds))
			}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	elapsed := time.Since(start)
	if err := os.WriteFile(*credsFile, []byte(strings.Join(creds, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"mode": "enroll", "n": *n, "org_id": o.ID, "env_id": e.ID,
		"elapsed_s": round(elapsed.Seconds(), 3), "enrollments_per_s": round(float64(*n)/elapsed.Seconds(), 1),
	})
}

// restClient calls the hub's REST API.
type restClient struct {
	base string
	hc   *http.Client
}

// do sends body as JSON (no body when nil) with a bearer token and decodes a
// response with status want into out.
func (c *restClient) do(ctx context.Context, method, path, token string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}
