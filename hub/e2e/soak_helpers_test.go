package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"
)

// This file holds what the duplicate, fragmentation, latency, degraded and
// soak tests share: keyed promotion requests, a paged promotion list and
// percentiles.

// newKey returns a fresh Idempotency-Key.
func newKey() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "e2e-" + hex.EncodeToString(b[:])
}

// promoteKeyed asks the hub of url to promote apiID of org from src to dst
// with Idempotency-Key key; retrying with the same key cannot create a
// second promotion. It returns the promotion, the status and a transport
// error.
func promoteKeyed(ctx context.Context, url, token, org, apiID, src, dst, key string) (hubPromotionFull, int, error) {
	var p hubPromotionFull
	b, _ := json.Marshal(map[string]string{"apiId": apiID, "sourceEnv": src, "targetEnv": dst})
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/api/v1/orgs/"+org+"/promotions", bytes.NewReader(b))
	if err != nil {
		return p, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := chaosClient.Do(req)
	if err != nil {
		return p, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return p, resp.StatusCode, err
	}
	if resp.StatusCode < 300 {
		if err := json.Unmarshal(body, &p); err != nil {
			return p, resp.StatusCode, fmt.Errorf("decode %q: %w", body, err)
		}
	}
	return p, resp.StatusCode, nil
}

// promotionTimes is a promotion with the times the hub recorded.
type promotionTimes struct {
	hubPromotionFull
	TargetEnvID string     `json:"targetEnvId"`
	Reason      string     `json:"reason"`
	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	DeliveredAt *time.Time `json:"deliveredAt"`
	DecidedAt   *time.Time `json:"decidedAt"`
}

// listPromotions lists every promotion of org, 100 per page (the hub's
// largest page).
func listPromotions(ctx context.Context, url, token, org string) ([]promotionTimes, error) {
	var all []promotionTimes
	for off := 0; ; off += 100 {
		var page struct{ Items []promotionTimes }
		st, err := tryJSON(ctx, "GET", fmt.Sprintf("%s/api/v1/orgs/%s/promotions?limit=100&offset=%d", url, org, off), token, nil, &page)
		if err != nil {
			return nil, err
		}
		if st != http.StatusOK {
			return nil, fmt.Errorf("list promotions: %d", st)
		}
		all = append(all, page.Items...)
		if len(page.Items) < 100 {
			return all, nil
		}
	}
}

// percentile returns the p-th percentile (0-100, nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(k, len(s)-1))]
}

// acceptTask accepts task id at the agent of url with session sess and
// returns the status.
func acceptTask(ctx context.Context, url, sess, id string) (int, error) {
	return tryJSON(ctx, "POST", url+"/api/v1/tasks/"+id+"/_accept", sess, map[string]any{}, nil)
}
