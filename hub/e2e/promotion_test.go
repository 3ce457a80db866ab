package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry.dev/hub/internal/testbed"
)

// world is a hub with a Dev and a Prod environment, each with an APIM
// stand-in and a linked agent.
type world struct {
	hub                *hub
	envs               map[string]string
	devAPIM, prodAPIM  *apim
	devAgent, prodAgnt *agent
	dir                string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{dir: dir}
	w.hub = startHub(t, testbed.FreeAddr(t), filepath.Join(dir, "hub"))
	w.envs = w.hub.setupOrg(t, "demo", "Dev", "Prod")
	w.devAPIM, w.prodAPIM = startAPIM(t, ""), startAPIM(t, "")
	w.devAgent = startAgent(t, w.hub, w.devAPIM, filepath.Join(dir, "dev"), w.hub.linkToken(t, "demo", "Dev"))
	w.prodAgnt = startAgent(t, w.hub, w.prodAPIM, filepath.Join(dir, "prod"), w.hub.linkToken(t, "demo", "Prod"))
	testbed.WaitFor(t, 15*time.Second, "both agents online", func() bool { return w.hub.online(t, "demo") == 2 })
	// The agents' REST APIs take hub-signed sessions only.
	sess := w.hub.adminSession(t, "demo")
	w.devAgent.session, w.prodAgnt.session = sess, sess
	// An agent verifies sessions once it has the hub's keys from the
	// hello reply, which may land just after the hub shows it online.
	testbed.WaitFor(t, 15*time.Second, "agents accept sessions", func() bool {
		return doJSON(t, "GET", w.devAgent.url+"/api/v1/session", sess, nil, nil) == http.StatusOK &&
			doJSON(t, "GET", w.prodAgnt.url+"/api/v1/session", sess, nil, nil) == http.StatusOK
	})
	return w
}

// importAPI creates an API in an APIM stand-in from a definition file and
// returns its id.
func importAPI(t *testing.T, a *apim, def []byte) string {
	t.Helper()
	req, _ := http.NewRequest("POST", a.url+"/environments/DEFAULT/apis/_import/definition", strings.NewReader(string(def)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusCreated || out.ID == "" {
		t.Fatalf("import into APIM: status %d", resp.StatusCode)
	}
	return out.ID
}

type apiSummary struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	CrossID string `json:"crossId"`
}

func listAPIs(t *testing.T, a *apim) []apiSummary {
	t.Helper()
	var out struct{ Data []apiSummary }
	if st := doJSON(t, "GET", a.url+"/environments/DEFAULT/apis?perPage=100", "", nil, &out); st != http.StatusOK {
		t.Fatalf("list APIs: %d", st)
	}
	return out.Data
}

func exportRaw(t *testing.T, a *apim, id string) string {
	t.Helper()
	resp, err := http.Get(a.url + "/environments/DEFAULT/apis/" + id + "/_export/definition")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	_, _ = io_Copy(b, resp)
	return b.String()
}

type hubPromotion struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Delivery    string `json:"delivery"`
	CrossID     string `json:"crossId"`
	TargetAPIID string `json:"targetApiId"`
}

func (w *world) promote(t *testing.T, apiID string) (hubPromotion, int) {
	t.Helper()
	var p hubPromotion
	st := w.hub.call(t, "POST", "/api/v1/orgs/demo/promotions", map[string]string{"apiId": apiID, "sourceEnv": "Dev", "targetEnv": "Prod"}, &p)
	return p, st
}

func (w *world) promotion(t *testing.T, id string) hubPromotion {
	t.Helper()
	var p hubPromotion
	if st := w.hub.call(t, "GET", "/api/v1/orgs/demo/promotions/"+id, nil, &p); st != http.StatusOK {
		t.Fatalf("get promotion: %d", st)
	}
	return p
}

func (w *world) waitStatus(t *testing.T, id, status string) hubPromotion {
	t.Helper()
	var p hubPromotion
	testbed.WaitFor(t, 30*time.Second, "promotion "+id+" "+status, func() bool {
		p = w.promotion(t, id)
		return p.Status == status
	})
	return p
}

func pendingTasks(t *testing.T, ag *agent) []string {
	t.Helper()
	var out struct {
		Items []struct {
			ID string `json:"id"`
		}
	}
	if st := doJSON(t, "GET", ag.url+"/api/v1/tasks", ag.session, nil, &out); st != http.StatusOK {
		t.Fatalf("tasks: %d", st)
	}
	var ids []string
	for _, i := range out.Items {
		ids = append(ids, i.ID)
	}
	return ids
}

func decide(t *testing.T, ag *agent, id, verb string, body any) int {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	return doJSON(t, "POST", ag.url+"/api/v1/tasks/"+id+"/_"+verb, ag.session, body, nil)
}

// TestPromoteAcceptUpdateReject walks the main flow: promote and accept
// creates the API in Prod without members or groups; a second promotion
// updates the same API; a request while one is active is refused; a reject
// leaves Prod unchanged; the audit trail holds every step and verifies.
func TestPromoteAcceptUpdateReject(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	devID := importAPI(t, w.devAPIM, testbed.Sample(t, "v4-http-proxy-with-members-groups-plans-pages-media.json"))

	p, st := w.promote(t, devID)
	if st != http.StatusCreated {
		t.Fatalf("promote: status %d", st)
	}
	if _, st := w.promote(t, devID); st != http.StatusConflict {
		t.Errorf("second promotion while one is active: status %d, want 409", st)
	}
	w.waitStatus(t, p.ID, "TO_BE_VALIDATED")
	testbed.WaitFor(t, 10*time.Second, "task at Prod", func() bool { return len(pendingTasks(t, w.prodAgnt)) == 1 })
	if st := decide(t, w.prodAgnt, p.ID, "accept", nil); st != http.StatusOK {
		t.Fatalf("accept: status %d", st)
	}
	if n := len(pendingTasks(t, w.prodAgnt)); n != 0 {
		t.Errorf("%d tasks pending after accept, want 0", n)
	}
	done := w.waitStatus(t, p.ID, "ACCEPTED")
	prod := listAPIs(t, w.prodAPIM)
	if len(prod) != 1 || prod[0].CrossID != done.CrossID || prod[0].ID != done.TargetAPIID {
		t.Fatalf("Prod APIs = %+v, want one with crossId %s and id %s", prod, done.CrossID, done.TargetAPIID)
	}
	raw := exportRaw(t, w.prodAPIM, prod[0].ID)
	// The sample's member ("member-id", "John Doe") and group ("group1")
	// must not reach Prod; Prod's APIM may list its own importing user.
	for _, bad := range []string{`member-id`, `John Doe`, `group1`} {
		if strings.Contains(raw, bad) {
			t.Errorf("Prod's copy contains %s: members and groups must never leave Dev", bad)
		}
	}

	// Promote again: the same Prod API is updated.
	p2, st := w.promote(t, devID)
	if st != http.StatusCreated {
		t.Fatalf("second promote after accept: status %d", st)
	}
	w.waitStatus(t, p2.ID, "TO_BE_VALIDATED")
	if st := decide(t, w.prodAgnt, p2.ID, "accept", nil); st != http.StatusOK {
		t.Fatalf("accept 2: %d", st)
	}
	w.waitStatus(t, p2.ID, "ACCEPTED")
	if prod := listAPIs(t, w.prodAPIM); len(prod) != 1 {
		t.Errorf("after re-promotion Prod has %d APIs, want 1 (updated, not duplicated)", len(prod))
	}

	// Reject: nothing changes in Prod and the task is gone.
	before := withoutExportBlock(t, exportRaw(t, w.prodAPIM, prod[0].ID))
	p3, _ := w.promote(t, devID)
	w.waitStatus(t, p3.ID, "TO_BE_VALIDATED")
	if st := decide(t, w.prodAgnt, p3.ID, "reject", map[string]string{"reason": "not this week"}); st != http.StatusOK {
		t.Fatalf("reject: %d", st)
	}
	w.waitStatus(t, p3.ID, "REJECTED")
	if n := len(pendingTasks(t, w.prodAgnt)); n != 0 {
		t.Errorf("%d tasks pending after reject", n)
	}
	if after := withoutExportBlock(t, exportRaw(t, w.prodAPIM, prod[0].ID)); after != before {
		t.Error("reject changed the Prod API")
	}

	// The source agent learns the outcome.
	testbed.WaitFor(t, 15*time.Second, "Dev agent shows REJECTED", func() bool {
		var out struct{ Items []struct{ ID, Status string } }
		doJSON(t, "GET", w.devAgent.url+"/api/v1/promotions", w.devAgent.session, nil, &out)
		for _, i := range out.Items {
			if i.ID == p3.ID && i.Status == "REJECTED" {
				return true
			}
		}
		return false
	})

	// The trail shows every step and verifies. (The rejection's entry is
	// written just after its status, which the source may hear first.)
	seen := map[string]int{}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		seen = map[string]int{}
		for _, e := range w.hub.audit(t, "demo") {
			seen[e.Event]++
		}
		if seen["PROMOTION_REJECTED"] >= 1 || time.Now().After(end) {
			break
		}
	}
	for ev, n := range map[string]int{"PROMOTION_CREATED": 3, "PROMOTION_DELIVERED": 3, "PROMOTION_ACCEPTED": 2, "PROMOTION_REJECTED": 1} {
		if seen[ev] != n {
			t.Errorf("audit has %d %s, want %d (all: %v)", seen[ev], ev, n, seen)
		}
	}
	var v struct {
		OK      bool  `json:"ok"`
		Checked int64 `json:"checked"`
	}
	w.hub.call(t, "GET", "/api/v1/orgs/demo/audit/_verify", nil, &v)
	if !v.OK || v.Checked < 9 {
		t.Errorf("audit verify = %+v, want ok over ≥ 9 entries", v)
	}
}

// TestOfflineTargetAndCancel: a promotion to an offline target waits and is
// delivered when the agent returns; cancel removes the task at the target; a
// target in another organization is refused.
func TestOfflineTargetAndCancel(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	devID := importAPI(t, w.devAPIM, testbed.Sample(t, "v4-http-proxy-no-ids-plan-with-flows.json"))

	w.prodAgnt.Stop(t, stopGrace)
	testbed.WaitFor(t, 15*time.Second, "Prod offline", func() bool { return w.hub.online(t, "demo") == 1 })
	p, st := w.promote(t, devID)
	if st != http.StatusCreated {
		t.Fatalf("promote to offline target: status %d, want 201 (it waits)", st)
	}
	time.Sleep(time.Second)
	if got := w.promotion(t, p.ID); got.Status != "CREATED" || got.Delivery != "waiting_for_target" {
		t.Errorf("while Prod is offline: %+v, want CREATED and waiting_for_target", got)
	}
	w.prodAgnt.restart(t)
	w.waitStatus(t, p.ID, "TO_BE_VALIDATED")
	testbed.WaitFor(t, 10*time.Second, "task at Prod after reconnect", func() bool { return len(pendingTasks(t, w.prodAgnt)) == 1 })

	var c hubPromotion
	if st := w.hub.call(t, "POST", "/api/v1/orgs/demo/promotions/"+p.ID+"/_cancel", nil, &c); st != http.StatusOK || c.Status != "CANCELLED" {
		t.Fatalf("cancel: status %d %+v", st, c)
	}
	testbed.WaitFor(t, 10*time.Second, "task gone after cancel", func() bool { return len(pendingTasks(t, w.prodAgnt)) == 0 })
	if st := decide(t, w.prodAgnt, p.ID, "accept", nil); st == http.StatusOK {
		t.Error("accepting a cancelled promotion succeeded")
	}
	if n := len(listAPIs(t, w.prodAPIM)); n != 0 {
		t.Errorf("Prod has %d APIs after a cancelled promotion", n)
	}

	// Another organization's environment is not a valid target.
	other := w.hub.setupOrg(t, "other", "Prod")
	st = w.hub.call(t, "POST", "/api/v1/orgs/demo/promotions", map[string]string{"apiId": devID, "sourceEnv": "Dev", "targetEnv": other["Prod"]}, nil)
	if st != http.StatusNotFound {
		t.Errorf("promotion to another organization's environment: status %d, want 404", st)
	}
}

// TestAgentKilledBetweenImportAndReport: the Prod agent dies right after the
// import; after a restart the hub shows ACCEPTED and APIM has exactly one API.
func TestAgentKilledBetweenImportAndReport(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	devID := importAPI(t, w.devAPIM, testbed.Sample(t, "v4-http-proxy-no-ids-plan-with-flows.json"))
	p, _ := w.promote(t, devID)
	w.waitStatus(t, p.ID, "TO_BE_VALIDATED")

	// Stop the hub so the report cannot be delivered, accept, then kill
	// the agent before it can report.
	w.hub.Kill()
	if st := decide(t, w.prodAgnt, p.ID, "accept", nil); st != http.StatusOK {
		t.Fatalf("accept while the hub is down: %d", st)
	}
	w.prodAgnt.Signal(syscall.SIGKILL)
	<-w.prodAgnt.Done()
	w.hub = startHub(t, w.hub.addr, w.hub.dir)
	w.prodAgnt.restart(t)
	got := w.waitStatus(t, p.ID, "ACCEPTED")
	prod := listAPIs(t, w.prodAPIM)
	if len(prod) != 1 || prod[0].ID != got.TargetAPIID {
		t.Errorf("Prod APIs %+v, want exactly one with id %s", prod, got.TargetAPIID)
	}
}

// withoutExportBlock drops the export's own timestamp so two exports of an
// unchanged API compare equal.
func withoutExportBlock(t *testing.T, raw string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("export is not JSON: %v", err)
	}
	delete(m, "export")
	b, _ := json.Marshal(m)
	return string(b)
}
