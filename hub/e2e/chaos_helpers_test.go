package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry.dev/hub/internal/testbed"
)

// This file holds the rig of the chaos tests (chaos_test.go): a world whose
// Prod agent may reach the hub through a proxy, a submitter and an
// auto-accepter that survive their peers dying, and the final count.

// chaosInt reads an integer setting from the environment, or def.
func chaosInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// chaosDuration reads a duration setting from the environment, or def.
func chaosDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}

// chaosClient gives every request its own deadline, so that a hung peer
// makes an unanswered request rather than a stuck test.
var chaosClient = &http.Client{Timeout: 15 * time.Second}

// tryJSON is doJSON for peers that may die: it returns transport errors
// instead of failing the test, and never fails on the body.
func tryJSON(ctx context.Context, method, url, token string, body, out any, header ...string) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := chaosClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if out != nil && len(b) > 0 && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %q: %w", b, err)
		}
	}
	return resp.StatusCode, nil
}

// neverSent reports whether err means the request never reached the peer
// (the dial failed), so that retrying it cannot apply it twice.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// chaosWorld is a world whose Prod agent may dial the hub through another
// address (a faultproxy), with its own admin session.
type chaosWorld struct {
	*world
	hubURL string // fixed across hub restarts
}

// newChaosWorld starts a hub, Dev and Prod APIM stand-ins and agents; the
// Prod agent dials prodHub(hubAddr) (nil: the hub itself).
func newChaosWorld(t *testing.T, prodHub func(hubAddr string) string) *chaosWorld {
	t.Helper()
	dir := t.TempDir()
	w := &world{dir: dir}
	w.hub = startHub(t, testbed.FreeAddr(t), filepath.Join(dir, "hub"))
	w.envs = w.hub.setupOrg(t, "demo", "Dev", "Prod")
	w.devAPIM, w.prodAPIM = startAPIM(t, ""), startAPIM(t, "")
	w.devAgent = startAgent(t, w.hub, w.devAPIM, filepath.Join(dir, "dev"), w.hub.linkToken(t, "demo", "Dev"))
	via := w.hub
	if prodHub != nil {
		via = &hub{url: prodHub(w.hub.addr)}
	}
	w.prodAgnt = startAgent(t, via, w.prodAPIM, filepath.Join(dir, "prod"), w.hub.linkToken(t, "demo", "Prod"))
	testbed.WaitFor(t, 20*time.Second, "both agents online", func() bool { return w.hub.online(t, "demo") == 2 })
	sess := w.hub.adminSession(t, "demo")
	w.devAgent.session, w.prodAgnt.session = sess, sess
	testbed.WaitFor(t, 15*time.Second, "agents accept sessions", func() bool {
		return doJSON(t, "GET", w.devAgent.url+"/api/v1/session", sess, nil, nil) == http.StatusOK &&
			doJSON(t, "GET", w.prodAgnt.url+"/api/v1/session", sess, nil, nil) == http.StatusOK
	})
	return &chaosWorld{world: w, hubURL: w.hub.url}
}

// importChaosAPIs creates n distinct APIs (own name and listener path) in
// the Dev stand-in and returns their ids.
func importChaosAPIs(t *testing.T, a *apim, n int) []string {
	t.Helper()
	var def map[string]any
	if err := json.Unmarshal(testbed.Sample(t, "v4-http-proxy-no-ids-plan-with-flows.json"), &def); err != nil {
		t.Fatal(err)
	}
	api := def["api"].(map[string]any)
	paths := api["listeners"].([]any)[0].(map[string]any)["paths"].([]any)[0].(map[string]any)
	ids := make([]string, n)
	for i := range n {
		api["name"] = fmt.Sprintf("chaos-%04d", i)
		paths["path"] = fmt.Sprintf("/chaos-%04d/", i)
		b, err := json.Marshal(def)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = importAPI(t, a, b)
	}
	return ids
}

// submitter asks the hub for one promotion per API, at most one every
// interval. A request refused before it reached the hub (dial error), or
// answered 429 or 503 (Dev agent not connected yet), is retried; one that
// got no answer is not, as it may have been applied.
type submitter struct {
	url, token string
	apiIDs     []string
	interval   time.Duration

	mu         sync.Mutex
	answered   map[string]string // API id → promotion id, answered 201
	unanswered map[string]bool   // API ids whose request got no answer
	refused    map[string]int    // API ids answered another status
	retries    int
	done       chan struct{} // closed when every API has an outcome
}

func newSubmitter(url, token string, apiIDs []string, interval time.Duration) *submitter {
	return &submitter{url: url, token: token, apiIDs: apiIDs, interval: interval,
		answered: map[string]string{}, unanswered: map[string]bool{}, refused: map[string]int{}, done: make(chan struct{})}
}

func (s *submitter) run(ctx context.Context) {
	defer close(s.done)
	for _, id := range s.apiIDs {
		for ctx.Err() == nil {
			var p hubPromotion
			// One key per API: a retry is the same request.
			st, err := tryJSON(ctx, "POST", s.url+"/api/v1/orgs/demo/promotions", s.token,
				map[string]string{"apiId": id, "sourceEnv": "Dev", "targetEnv": "Prod"}, &p, "Idempotency-Key", "chaos-"+id)
			s.mu.Lock()
			retry := false
			switch {
			case err != nil && (neverSent(err) || ctx.Err() == nil):
				// Sent or not, the retry carries the same key: the hub
				// answers the promotion the first attempt made, if any.
				retry = true
			case err != nil:
				s.unanswered[id] = true
			case st == http.StatusCreated && p.ID != "":
				s.answered[id] = p.ID
			case st == http.StatusServiceUnavailable || st == http.StatusTooManyRequests || st == http.StatusBadGateway:
				retry = true
			default:
				s.refused[id] = st
			}
			if retry {
				s.retries++
			}
			s.mu.Unlock()
			if !retry {
				break
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
		sleepCtx(ctx, s.interval)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// accepter accepts every task the agent lists, as an organization admin,
// until its context ends; it signs in again when the agent refuses the
// session.
type accepter struct {
	agentURL, hubURL string

	mu       sync.Mutex
	session  string
	last     map[string]time.Time // task id → when an accept was last answered 200
	calls    int
	accepted int // accept calls answered 200
}

func newAccepter(agentURL, hubURL, session string) *accepter {
	return &accepter{agentURL: agentURL, hubURL: hubURL, session: session, last: map[string]time.Time{}}
}

func (a *accepter) run(ctx context.Context) {
	for ctx.Err() == nil {
		var out struct {
			Items []struct {
				ID string `json:"id"`
			}
		}
		a.mu.Lock()
		sess := a.session
		a.mu.Unlock()
		st, err := tryJSON(ctx, "GET", a.agentURL+"/api/v1/tasks", sess, nil, &out)
		switch {
		case err != nil:
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		case st == http.StatusUnauthorized:
			a.signIn(ctx)
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		for _, it := range out.Items {
			a.mu.Lock()
			recent := time.Since(a.last[it.ID]) < 3*time.Second
			a.mu.Unlock()
			if recent {
				continue // accepted a moment ago; the list may lag
			}
			st, err := tryJSON(ctx, "POST", a.agentURL+"/api/v1/tasks/"+it.ID+"/_accept", sess, map[string]any{}, nil)
			a.mu.Lock()
			a.calls++
			if err == nil && st == http.StatusOK {
				a.accepted++
				a.last[it.ID] = time.Now()
			}
			a.mu.Unlock()
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

func (a *accepter) signIn(ctx context.Context) {
	var s struct{ Token string }
	st, err := tryJSON(ctx, "POST", a.hubURL+"/api/v1/auth/session", "", map[string]string{"org": "demo", "username": "e2e-admin", "password": "e2e-admin-password"}, &s)
	if err == nil && st == http.StatusOK && s.Token != "" {
		a.mu.Lock()
		a.session = s.Token
		a.mu.Unlock()
	}
}

// simStats are an apim-sim's counters from GET /_sim/stats.
type simStats struct {
	Creates map[string]int `json:"creates"`
	Updates map[string]int `json:"updates"`
}

func (a *apim) stats(t *testing.T) simStats {
	t.Helper()
	var s simStats
	base := a.url[:len(a.url)-len("/management/v2")]
	if st := doJSON(t, "GET", base+"/_sim/stats", "", nil, &s); st != http.StatusOK {
		t.Fatalf("apim-sim stats: %d", st)
	}
	return s
}

// allPromotions lists every promotion of demo, page by page.
func allPromotions(ctx context.Context, url, token string) ([]hubPromotionFull, error) {
	const pageSize = 100 // the hub's largest page
	var all []hubPromotionFull
	for off := 0; ; off += pageSize {
		var page struct{ Items []hubPromotionFull }
		st, err := tryJSON(ctx, "GET", fmt.Sprintf("%s/api/v1/orgs/demo/promotions?limit=%d&offset=%d", url, pageSize, off), token, nil, &page)
		if err != nil {
			return nil, err
		}
		if st != http.StatusOK {
			return nil, fmt.Errorf("list promotions: %d", st)
		}
		all = append(all, page.Items...)
		if len(page.Items) < pageSize {
			return all, nil
		}
	}
}

type hubPromotionFull struct {
	hubPromotion
	APIID string `json:"apiId"`
}

// statusCounts says how many promotions are in each status and delivery
// state, for the progress lines of a settling chaos test.
func statusCounts(list []hubPromotionFull) string {
	counts := map[string]int{}
	for _, p := range list {
		counts[p.Status+"/"+p.Delivery]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, counts[k])
	}
	return strings.TrimSpace(b.String())
}

func terminal(status string) bool {
	switch status {
	case "ACCEPTED", "REJECTED", "ERROR", "CANCELLED":
		return true
	}
	return false
}

// chaosOutcome is what a chaos run counts.
type chaosOutcome struct {
	submitted, answered, unanswered, unansweredPresent, accepted, lost, duplicates, faults int
	auditGaps                                                                              int
}

// settle waits until every promotion the hub answered 201 is ACCEPTED and
// every other promotion is terminal, or until deadline; then it counts lost
// promotions and duplicate side effects, checks the audit chain and logs a
// one-line summary (scripts/chaos prints these lines).
func (w *chaosWorld) settle(t *testing.T, name string, sub *submitter, deadline time.Time, faults int) chaosOutcome {
	t.Helper()
	ctx := context.Background()
	sub.mu.Lock()
	answered := make(map[string]string, len(sub.answered))
	for k, v := range sub.answered {
		answered[k] = v
	}
	unanswered := make(map[string]bool, len(sub.unanswered))
	for k := range sub.unanswered {
		unanswered[k] = true
	}
	for id, st := range sub.refused {
		t.Errorf("promotion of API %s answered %d", id, st)
	}
	retries := sub.retries
	sub.mu.Unlock()

	byID := map[string]hubPromotionFull{}
	lastProgress := time.Now()
	for {
		list, err := allPromotions(ctx, w.hubURL, w.hub.token)
		if err == nil {
			clear(byID)
			for _, p := range list {
				byID[p.ID] = p
			}
			settled := true
			for _, pid := range answered {
				if byID[pid].Status != "ACCEPTED" {
					settled = false
				}
			}
			for _, p := range list {
				if !terminal(p.Status) {
					settled = false
				}
			}
			if settled {
				break
			}
			if time.Since(lastProgress) >= 10*time.Second {
				lastProgress = time.Now()
				t.Logf("%s settling: %s", name, statusCounts(list))
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}

	o := chaosOutcome{submitted: len(sub.apiIDs), answered: len(answered), unanswered: len(unanswered), faults: faults}
	crossIDs := map[string]bool{}
	for api, pid := range answered {
		p, ok := byID[pid]
		switch {
		case !ok:
			o.lost++
			t.Errorf("promotion %s of API %s was answered 201 and is gone", pid, api)
		case p.Status != "ACCEPTED":
			o.lost++
			t.Errorf("promotion %s of API %s is %s (%s), want ACCEPTED", pid, api, p.Status, p.Delivery)
		default:
			o.accepted++
			crossIDs[p.CrossID] = true
		}
	}
	for _, p := range byID {
		if !unanswered[p.APIID] {
			continue
		}
		o.unansweredPresent++
		if !terminal(p.Status) {
			t.Errorf("promotion %s, whose request got no answer, is %s: want absent or terminal", p.ID, p.Status)
		}
		if p.Status == "ACCEPTED" {
			o.accepted++
			crossIDs[p.CrossID] = true
		}
	}
	stats := w.prodAPIM.stats(t)
	for cross, n := range stats.Creates {
		if n > 1 {
			o.duplicates += n - 1
			t.Errorf("crossId %s created %d times in Prod", cross, n)
		}
		if !crossIDs[cross] {
			t.Errorf("crossId %s created in Prod without an accepted promotion", cross)
		}
	}
	for cross, n := range stats.Updates {
		o.duplicates += n
		t.Errorf("crossId %s updated %d times in Prod; each API was promoted once", cross, n)
	}
	for cross := range crossIDs {
		if stats.Creates[cross] != 1 {
			t.Errorf("accepted crossId %s created %d times in Prod, want 1", cross, stats.Creates[cross])
		}
	}
	var v struct {
		OK      bool  `json:"ok"`
		Checked int64 `json:"checked"`
	}
	if st, err := tryJSON(ctx, "GET", w.hubURL+"/api/v1/orgs/demo/audit/_verify", w.hub.token, nil, &v); err != nil || st != http.StatusOK || !v.OK {
		t.Errorf("audit verify: status %d, %+v, %v", st, v, err)
	}
	o.auditGaps = w.checkAuditComplete(t, byID)
	t.Logf("chaos summary: test=%s submitted=%d answered=%d unanswered=%d unanswered_present=%d accepted=%d lost=%d duplicates=%d faults=%d retries=%d audit_checked=%d audit_gaps=%d",
		name, o.submitted, o.answered, o.unanswered, o.unansweredPresent, o.accepted, o.lost, o.duplicates, o.faults, retries, v.Checked, o.auditGaps)
	return o
}

// envOnline reports whether the installation serving env shows online.
func envOnline(ctx context.Context, url, token, env string) (bool, error) {
	var out struct{ Items []installation }
	st, err := tryJSON(ctx, "GET", url+"/api/v1/orgs/demo/installations", token, nil, &out)
	if err != nil {
		return false, err
	}
	if st != http.StatusOK {
		return false, fmt.Errorf("installations: %d", st)
	}
	for _, i := range out.Items {
		for _, e := range i.Environments {
			if e.Name == env {
				return i.Status == "online", nil
			}
		}
	}
	return false, fmt.Errorf("no installation serves %s", env)
}

// checkAuditComplete is catalogue row E1: the trail holds each transition
// of each promotion exactly once (created, delivered, and its decision) and
// its seq has no gaps. Entries a hub kill kept from being written are
// written by the hub's audit catch-up within about 30 s, so it waits up to
// a minute for them. It returns how many entries are missing or doubled.
func (w *chaosWorld) checkAuditComplete(t *testing.T, byID map[string]hubPromotionFull) int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		problems, err := w.auditProblems(byID)
		if err != nil {
			t.Errorf("read the audit trail: %v", err)
			return -1
		}
		if len(problems) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			for _, p := range problems {
				t.Error(p)
			}
			return len(problems)
		}
		time.Sleep(2 * time.Second)
	}
}

// auditProblems lists what is wrong with the trail (see checkAuditComplete).
func (w *chaosWorld) auditProblems(byID map[string]hubPromotionFull) ([]string, error) {
	ctx := context.Background()
	counts := map[string]map[string]int{} // promotion id → event → entries
	var after, prev int64
	var problems []string
	for {
		var page struct {
			Items []struct {
				Seq         int64  `json:"seq"`
				Event       string `json:"event"`
				PromotionID string `json:"promotionId"`
			} `json:"items"`
			NextAfterSeq int64 `json:"nextAfterSeq"`
		}
		url := fmt.Sprintf("%s/api/v1/orgs/demo/audit?limit=100&afterSeq=%d", w.hubURL, after)
		st, err := tryJSON(ctx, "GET", url, w.hub.token, nil, &page)
		for tries := 0; err == nil && st == http.StatusTooManyRequests && tries < 30; tries++ {
			time.Sleep(time.Second) // the per-token rate limit; read on
			st, err = tryJSON(ctx, "GET", url, w.hub.token, nil, &page)
		}
		if err != nil || st != http.StatusOK {
			return nil, fmt.Errorf("after seq %d: %d, %v", after, st, err)
		}
		for _, e := range page.Items {
			if e.Seq != prev+1 {
				problems = append(problems, fmt.Sprintf("audit seq %d follows %d", e.Seq, prev))
			}
			prev = e.Seq
			if e.PromotionID == "" {
				continue
			}
			if counts[e.PromotionID] == nil {
				counts[e.PromotionID] = map[string]int{}
			}
			counts[e.PromotionID][e.Event]++
		}
		if page.NextAfterSeq == 0 || len(page.Items) == 0 {
			break
		}
		after = page.NextAfterSeq
	}
	for id, p := range byID {
		want := map[string]int{"PROMOTION_CREATED": 1}
		switch p.Status {
		case "ACCEPTED":
			want["PROMOTION_ACCEPTED"] = 1
		case "CANCELLED":
			want["PROMOTION_CANCELLED"] = 1
		}
		for ev, n := range want {
			if got := counts[id][ev]; got != n {
				problems = append(problems, fmt.Sprintf("promotion %s (%s) has %d %s audit entries, want %d", id, p.Status, got, ev, n))
			}
		}
		// Delivered is recorded when the agent's acknowledgement arrives;
		// if the link dropped it, the promotion goes from CREATED straight
		// to its decision, which proves the delivery. Never twice.
		if got := counts[id]["PROMOTION_DELIVERED"]; got > 1 {
			problems = append(problems, fmt.Sprintf("promotion %s has %d PROMOTION_DELIVERED audit entries, want at most 1", id, got))
		}
	}
	return problems, nil
}
