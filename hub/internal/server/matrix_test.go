package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// Statuses of the matrix. A link operation's outcome is shown as the status
// its error code maps to (200 when it succeeded).
const (
	ok      = http.StatusOK
	created = http.StatusCreated
	denied  = http.StatusForbidden
	hidden  = http.StatusNotFound
	na      = 0 // not applicable: the platform admin has no session to relay
)

// matrixActions are the columns of the permission matrix, in order.
var matrixActions = []string{
	"request", "request over link", "cancel", "accept over link", "reject over link",
	"list tasks", "read promotion", "read audit", "manage users", "manage tokens", "manage roles",
}

// principal is a row of the matrix.
type principal struct {
	name     string
	user     user   // empty for the platform admin
	token    string // the platform admin's token
	other    bool   // a user of the other organization
	bindings []binding
	want     [11]int // by matrixActions
}

// TestPermissionMatrix runs every role against every action in
// organization acme (environments Dev, QA and Prod), as a session and as a
// personal access token over REST and as a relayed session over the link,
// plus an admin of organization globex. Each cell checks the exact status;
// a refused one also checks that nothing changed but one ACCESS_DENIED
// audit entry naming the actor (in the caller's own trail when the answer
// is 404).
func TestPermissionMatrix(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme, globex := h.newOrg("acme"), h.newOrg("globex")
	h.must(http.StatusCreated, testAdminToken, "POST", "/api/v1/orgs/acme/roles",
		map[string]any{"scope": "ENVIRONMENT", "name": "DEPLOYER", "permissions": []string{"ENVIRONMENT_API:CREATE", "ENVIRONMENT_API:UPDATE"}}, nil)

	org := func(role string) binding { return binding{Scope: "ORGANIZATION", Role: role} }
	env := func(e, role string) binding { return binding{Scope: "ENVIRONMENT", Env: e, Role: role} }
	api := func(role string) binding { return binding{Scope: "API", Env: "Dev", CrossID: "cx", Role: role} }
	rows := []principal{
		//                                                      req  link  cancel accept reject tasks read  audit users tokens roles
		{name: "orgadmin", bindings: []binding{org("ADMIN")}, want: [11]int{created, ok, ok, ok, ok, ok, ok, ok, created, created, created}},
		{name: "platform", token: testAdminToken, want: [11]int{created, na, ok, na, na, ok, ok, ok, created, created, created}},
		{name: "orguser", bindings: []binding{org("USER")}, want: [11]int{denied, denied, denied, denied, denied, denied, denied, denied, denied, denied, denied}},
		{name: "devadmin", bindings: []binding{env("Dev", "ADMIN")}, want: [11]int{created, ok, denied, denied, denied, denied, ok, denied, denied, denied, denied}},
		{name: "devpub", bindings: []binding{env("Dev", "API_PUBLISHER")}, want: [11]int{denied, denied, denied, denied, denied, denied, ok, denied, denied, denied, denied}},
		{name: "devuser", bindings: []binding{env("Dev", "USER")}, want: [11]int{denied, denied, denied, denied, denied, denied, ok, denied, denied, denied, denied}},
		{name: "qaadmin", bindings: []binding{env("QA", "ADMIN")}, want: [11]int{denied, denied, denied, denied, denied, denied, denied, denied, denied, denied, denied}},
		{name: "prodadmin", bindings: []binding{env("Prod", "ADMIN")}, want: [11]int{denied, denied, denied, ok, ok, ok, ok, denied, denied, denied, denied}},
		{name: "prodpub", bindings: []binding{env("Prod", "API_PUBLISHER")}, want: [11]int{denied, denied, denied, ok, ok, ok, ok, denied, denied, denied, denied}},
		{name: "produser", bindings: []binding{env("Prod", "USER")}, want: [11]int{denied, denied, denied, denied, denied, ok, ok, denied, denied, denied, denied}},
		{name: "deployer", bindings: []binding{env("Prod", "DEPLOYER")}, want: [11]int{denied, denied, denied, ok, ok, denied, denied, denied, denied, denied, denied}},
		// The owner requested the promotions that cancel and read use.
		{name: "owner", bindings: []binding{api("OWNER")}, want: [11]int{created, ok, ok, denied, denied, denied, ok, denied, denied, denied, denied}},
		{name: "reviewer", bindings: []binding{api("REVIEWER")}, want: [11]int{denied, denied, denied, denied, denied, denied, denied, denied, denied, denied, denied}},
		{name: "apiuser", bindings: []binding{api("USER")}, want: [11]int{denied, denied, denied, denied, denied, denied, denied, denied, denied, denied, denied}},
		{name: "nobody", want: [11]int{denied, denied, denied, denied, denied, denied, denied, denied, denied, denied, denied}},
		// An admin of the other organization: REST hides acme (404); the
		// link refuses a session of another organization.
		{name: "globexadmin", other: true, bindings: []binding{org("ADMIN")}, want: [11]int{hidden, denied, hidden, denied, denied, hidden, hidden, hidden, hidden, hidden, hidden}},
	}
	for i := range rows {
		r := &rows[i]
		if r.token == "" {
			o := acme
			if r.other {
				o = globex
			}
			r.user = h.newUser(o, r.name, r.bindings...)
		}
	}
	owner := rows[11].user
	target := h.newUser(acme, "target") // whose tokens and roles are managed
	var names seq

	type cell struct {
		status int
		actor  string // who the refusal is recorded against in acme's trail
	}
	// run performs action i as r with credential cred (a token, or the
	// session relayed over the link).
	// fixture is the promotion action i works on, made before the
	// snapshot: requested by the owner, Dev to Prod, still undecided.
	needsFixture := func(i int) bool {
		switch matrixActions[i] {
		case "cancel", "read promotion", "accept over link", "reject over link":
			return true
		}
		return false
	}
	run := func(t *testing.T, i int, r principal, cred string, p state.Promotion) cell {
		actor := "user:" + r.user.Username
		if r.other {
			actor = "" // a 404 over REST is recorded in globex's trail
		}
		rest := func(method, path string, body any) cell {
			st, _ := h.do(cred, method, path, body, nil)
			return cell{st, actor}
		}
		switch matrixActions[i] {
		case "request":
			return rest("POST", "/api/v1/orgs/acme/promotions", map[string]string{"apiId": "api-cx", "sourceEnv": "Dev", "targetEnv": "Prod"})
		case "request over link":
			c := cell{linkStatus(h.linkRequest(acme, "Prod", "cx", cred)), actor}
			if r.other {
				c.actor = "installation:" + acme.peer("Dev").InstallationID
			}
			return c
		case "cancel", "read promotion":
			if matrixActions[i] == "cancel" {
				return rest("POST", "/api/v1/orgs/acme/promotions/"+p.ID+"/_cancel", nil)
			}
			return rest("GET", "/api/v1/orgs/acme/promotions/"+p.ID, nil)
		case "accept over link", "reject over link":
			outcome, want := protocol.OutcomeAccepted, protocol.PromotionAccepted
			if strings.HasPrefix(matrixActions[i], "reject") {
				outcome, want = protocol.OutcomeRejected, protocol.PromotionRejected
			}
			c := cell{linkStatus(h.linkDecide(acme, p, "Prod", outcome, cred, h.clock.now())), actor}
			if r.other {
				c.actor = "installation:" + acme.peer("Prod").InstallationID
			}
			if got := h.promotionStatus(p.ID); c.status == ok && got != want {
				t.Errorf("decision answered ok, yet the promotion is %s, want %s", got, want)
			}
			return c
		case "list tasks":
			return rest("GET", "/api/v1/orgs/acme/promotions?env=Prod", nil)
		case "read audit":
			return rest("GET", "/api/v1/orgs/acme/audit", nil)
		case "manage users":
			return rest("POST", "/api/v1/orgs/acme/users", map[string]string{"username": names.next("new"), "password": "a-long-password"})
		case "manage tokens":
			return rest("POST", "/api/v1/orgs/acme/tokens", map[string]string{"userId": target.ID, "name": names.next("tok")})
		case "manage roles":
			return rest("POST", "/api/v1/orgs/acme/role-bindings", map[string]string{"userId": target.ID, "scope": "API", "env": "QA", "crossId": names.next("c"), "role": "OWNER"})
		}
		t.Fatalf("unknown action %s", matrixActions[i])
		return cell{}
	}

	start := time.Now()
	cells := 0
	for _, r := range rows {
		for i, action := range matrixActions {
			want := r.want[i]
			if want == na {
				continue
			}
			creds := map[string]string{"session": r.user.Session, "pat": r.user.PAT}
			switch {
			case r.token != "":
				creds = map[string]string{"token": r.token}
			case strings.HasSuffix(action, "over link"):
				creds = map[string]string{"session": r.user.Session}
			}
			for kind, cred := range creds {
				t.Run(r.name+"/"+action+"/"+kind, func(t *testing.T) {
					cells++
					var fx state.Promotion
					if needsFixture(i) {
						fx = h.fixture(acme, "Prod", names.next("fx"), owner.ID, "user:owner")
					}
					// The full check for the first credential; the
					// audit trail, which records every change, for the
					// personal access token repeating a REST cell.
					full := kind != "pat"
					before := h.auditMark(acme)
					if full {
						before = h.snapshot(acme)
					}
					var beforeOther snapshot
					if want == hidden {
						beforeOther = h.auditMark(globex)
					}
					c := run(t, i, r, cred, fx)
					if c.status != want {
						t.Fatalf("status %d, want %d", c.status, want)
					}
					switch want {
					case denied:
						h.checkRefused(t, acme, before, c.actor, full)
					case hidden:
						h.checkRefused(t, acme, before, "", full)
						h.checkRefused(t, globex, beforeOther, "user:"+r.user.Username, false)
					}
					switch {
					case fx.ID != "":
						h.end(fx.ID)
					case c.status == created || c.status == ok:
						h.cancelActive(acme) // a request made one
					}
				})
			}
		}
	}
	t.Logf("%d cells in %v", cells, time.Since(start))
}

// TestPromoteAndAcceptRoles: a user with API_PUBLISHER on Prod but no API
// role on the Dev API cannot promote it; an OWNER of the Dev API without
// Prod rights can promote but cannot accept in Prod; an admin can do both.
func TestPromoteAndAcceptRoles(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme := h.newOrg("acme")
	publisher := h.newUser(acme, "pat", binding{Scope: "ENVIRONMENT", Env: "Prod", Role: "API_PUBLISHER"})
	owner := h.newUser(acme, "olga", binding{Scope: "API", Env: "Dev", CrossID: "orders", Role: "OWNER"})
	admin := h.newUser(acme, "ada", binding{Scope: "ORGANIZATION", Role: "ADMIN"})
	promote := map[string]string{"apiId": "api-orders", "sourceEnv": "Dev", "targetEnv": "Prod"}

	// The publisher cannot promote; the refusal names the permission.
	st, body := h.do(publisher.Session, "POST", "/api/v1/orgs/acme/promotions", promote, nil)
	if st != http.StatusForbidden || !strings.Contains(body, `"code":"forbidden"`) || !strings.Contains(body, "needs API_DEFINITION[UPDATE] on API api-orders in Dev") {
		t.Errorf("publisher promotes: %d %s", st, body)
	}
	if n := h.disp.exports(); n != 0 {
		t.Errorf("%d exports for a user who may promote nothing in Dev, want 0", n)
	}
	if err := h.linkRequest(acme, "Prod", "orders", publisher.Session); protocol.CodeOf(err) != protocol.CodeForbidden ||
		!strings.Contains(err.Error(), "needs API_DEFINITION[UPDATE] on API orders in Dev") {
		t.Errorf("publisher promotes over the link: %v", err)
	}

	// The owner can promote (REST) but cannot accept in Prod.
	var p struct{ ID, Status, Requester string }
	h.must(http.StatusCreated, owner.Session, "POST", "/api/v1/orgs/acme/promotions", promote, &p)
	if p.Status != "CREATED" || p.Requester != "user:olga" {
		t.Errorf("owner's promotion: %+v", p)
	}
	prom, err := h.store.Promotion(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	err = h.linkDecide(acme, prom, "Prod", protocol.OutcomeAccepted, owner.Session, h.clock.now())
	if protocol.CodeOf(err) != protocol.CodeForbidden ||
		!strings.Contains(err.Error(), "needs ENVIRONMENT_API[CREATE] and ENVIRONMENT_API[UPDATE] on environment Prod") {
		t.Errorf("owner accepts in Prod: %v", err)
	}
	// The publisher may decide in Prod: ENVIRONMENT_API CREATE and UPDATE.
	if err := h.linkDecide(acme, prom, "Prod", protocol.OutcomeRejected, publisher.Session, h.clock.now()); err != nil {
		t.Errorf("publisher rejects in Prod: %v", err)
	}

	// The admin does both, over the link this time.
	if err := h.linkRequest(acme, "Prod", "orders", admin.Session); err != nil {
		t.Fatalf("admin promotes over the link: %v", err)
	}
	ps, _ := h.store.ListPromotions(t.Context(), state.PromotionFilter{OrgID: acme.ID, Status: []protocol.PromotionStatus{protocol.PromotionCreated}})
	if len(ps) != 1 || ps[0].Requester != "user:ada" || ps[0].RequesterID != admin.ID {
		t.Fatalf("admin's promotion: %+v", ps)
	}
	if err := h.linkDecide(acme, ps[0], "Prod", protocol.OutcomeAccepted, admin.Session, h.clock.now()); err != nil {
		t.Errorf("admin accepts in Prod: %v", err)
	}
	if st := h.promotionStatus(ps[0].ID); st != protocol.PromotionAccepted {
		t.Errorf("status %s, want ACCEPTED", st)
	}
	// The decision is recorded against the verified user, not the name the
	// agent gave.
	es := h.audits(acme, 0)
	if last := es[len(es)-1]; last.Event != "PROMOTION_ACCEPTED" || last.Actor != "user:ada" {
		t.Errorf("last audit entry %s by %s, want PROMOTION_ACCEPTED by user:ada", last.Event, last.Actor)
	}
}
