package browsertest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"ferry.dev/hub/internal/testbed"
)

// TestHubConsole signs in to the hub console, checks that the organization
// map shows both installations online, creates a link token, follows a
// promotion's timeline and exports the audit trail.
func TestHubConsole(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// A promotion requested at the hub, so that there is a timeline.
	var p struct{ ID string }
	w.hub.mustCall(t, http.StatusCreated, "POST", "/api/v1/orgs/"+orgName+"/promotions",
		map[string]string{"apiId": w.apiID, "sourceEnv": "Dev", "targetEnv": "Prod"}, &p)

	b := newBrowser(t)
	hc := b.tab("hub")
	hc.do("open the hub console", chromedp.Navigate(w.hub.url+"/console/"), chromedp.WaitVisible(css("#token-form")))
	hc.shot("sign-in")
	hc.do("sign in with a wrong token", chromedp.SendKeys(css("#token"), "ferry_pat_not-a-token"), chromedp.Click(css("#token-submit")))
	hc.waitText("#signin-msg", "does not accept this token")
	hc.shot("sign-in-refused")
	hc.do("sign in with a password",
		chromedp.SendKeys(css("#organization"), orgName),
		chromedp.SendKeys(css("#username"), orgAdmin),
		chromedp.SendKeys(css("#password"), userPassword),
		chromedp.Click(css("#password-submit")))
	hc.waitText("#who", "Carol")

	// The map: the organization, Dev and Prod, one installation each, online.
	hc.waitJS("both installations online on the map", `document.querySelectorAll('.map-env li.installation[data-status="online"]').length === 2`, 20*time.Second)
	for _, env := range []string{"Dev", "Prod"} {
		got := hc.evalString("installation of "+env, `document.querySelector('.map-env[data-env="`+env+`"] li.installation').innerText`)
		if !strings.Contains(got, "online") {
			t.Errorf("map: %s's installation reads %q, want it online", env, got)
		}
	}
	hc.shot("map-both-online")

	// Environments: a link token and the agent command line to copy.
	hc.do("open Environments", chromedp.Click(css(`.topnav a[href="/console/environments"]`)),
		chromedp.WaitVisible(css(`button.link-token[data-env="Prod"]`)))
	hc.do("create a link token for Prod", chromedp.Click(css(`button.link-token[data-env="Prod"]`)))
	hc.waitText("#agent-command", "ferry-agent --hub")
	hc.waitText("#agent-command", "--link-token")
	hc.shot("link-token")

	// Installations with version and last seen.
	hc.do("open Installations", chromedp.Click(css(`.topnav a[href="/console/installations"]`)))
	hc.waitJS("two online installations listed", `document.querySelectorAll('#installations tr[data-status="online"]').length === 2`, 20*time.Second)
	hc.shot("installations")

	// Promotions, filtered, then one promotion's timeline.
	hc.do("open Promotions", chromedp.Click(css(`.topnav a[href="/console/promotions"]`)))
	hc.waitJS("the promotion listed", `!!document.querySelector('#promotions tr[data-promotion-id="`+p.ID+`"]')`, 20*time.Second)
	hc.do("filter by target Prod", chromedp.SetValue(css("#f-target"), w.envs["Prod"]), chromedp.Click(css(`#promo-filters button[type="submit"]`)))
	hc.waitJS("the filtered list", `location.search.includes("targetEnv=") && !!document.querySelector('#promotions tr[data-promotion-id="`+p.ID+`"]')`, 20*time.Second)
	hc.shot("promotions")
	hc.do("open the promotion", chromedp.Click(css(`#promotions tr[data-promotion-id="`+p.ID+`"] a`)))
	hc.waitJS("the timeline shows the request and its delivery",
		`!!document.querySelector('.timeline li[data-event="PROMOTION_CREATED"]') && !!document.querySelector('.timeline li[data-event="PROMOTION_DELIVERED"]')`, 20*time.Second)
	hc.shot("promotion-timeline")

	// Audit trail: filter, CSV export, chain verification.
	hc.do("open Audit", chromedp.Click(css(`.topnav a[href="/console/audit"]`)))
	hc.waitJS("audit rows", `document.querySelectorAll('#audit tbody tr').length >= 2`, 20*time.Second)
	hc.do("filter by event", chromedp.SetValue(css("#a-event"), "PROMOTION_CREATED"), chromedp.Click(css(`#audit-filters button[type="submit"]`)))
	hc.waitJS("only PROMOTION_CREATED rows", `[...document.querySelectorAll('#audit tbody tr')].every(r => r.innerText.includes("PROMOTION_CREATED")) && document.querySelectorAll('#audit tbody tr').length === 1`, 20*time.Second)
	hc.do("export CSV", chromedp.Click(css("#export")))
	hc.waitJS("the CSV", `(document.body.dataset.lastCsv || "").startsWith("seq,time,event,actor")`, 10*time.Second)
	csv := hc.evalString("the CSV", `document.body.dataset.lastCsv`)
	if lines := strings.Split(strings.TrimSpace(csv), "\r\n"); len(lines) != 2 || !strings.Contains(lines[1], "PROMOTION_CREATED") || !strings.Contains(lines[1], p.ID) {
		t.Errorf("CSV export = %q, want the header and one PROMOTION_CREATED row of %s", csv, p.ID)
	}
	hc.do("verify the chain", chromedp.Click(css("#verify")))
	hc.waitText("#audit-msg", "intact")
	hc.shot("audit")

	// Users and roles, then a personal access token created and revoked.
	hc.do("open Users", chromedp.Click(css(`.topnav a[href="/console/users"]`)))
	hc.waitJS("the users and their roles", `["alice", "bob", "carol"].every(u => !!document.querySelector('#users tr[data-user="' + u + '"]')) && document.querySelector('#users tr[data-user="bob"]').innerText.includes("ADMIN on Prod")`, 20*time.Second)
	hc.shot("users")
	hc.do("open Tokens", chromedp.Click(css(`.topnav a[href="/console/tokens"]`)), chromedp.WaitVisible(css("#token-form")))
	hc.waitJS("the user list", `document.querySelectorAll("#t-user option").length === 3`, 20*time.Second)
	hc.do("create a token for alice",
		chromedp.SetValue(css("#t-user"), hc.evalString("alice's id", `[...document.querySelectorAll("#t-user option")].find(o => o.textContent === "alice").value`)),
		chromedp.SendKeys(css("#t-name"), "CI pipeline"),
		chromedp.SendKeys(css("#t-days"), "30"),
		chromedp.Click(css(`#token-form button[type="submit"]`)))
	hc.waitJS("the new token, shown once", `document.querySelector("#token-secret").innerText.length > 20 && !!document.querySelector('#tokens tr[data-token-id]')`, 20*time.Second)
	secret := hc.evalString("the secret", `document.querySelector("#token-secret").innerText`)
	if st, _ := testbed.DoJSON(t, "GET", w.hub.url+"/api/v1/orgs/"+orgName+"/promotions", secret, nil, nil); st != http.StatusOK {
		t.Errorf("the new token does not work at the hub: %d", st)
	}
	hc.shot("token-created")
	_, _ = hc.eval(`window.confirm = () => true`)
	hc.do("revoke it", chromedp.Click(css(`#tokens tr[data-token-id] button.danger`)))
	hc.waitText("#tokens", "REVOKED")
	hc.shot("token-revoked")
	if st, _ := testbed.DoJSON(t, "GET", w.hub.url+"/api/v1/orgs/"+orgName+"/promotions", secret, nil, nil); st != http.StatusUnauthorized {
		t.Errorf("the revoked token still works at the hub: %d", st)
	}

	// A credential rotated from the console: the agent takes the new one
	// over its link (the hub says it was notified), stays online, and the
	// trail says who rotated it.
	hc.do("open Installations for a rotation", chromedp.Click(css(`.topnav a[href="/console/installations"]`)))
	hc.waitJS("two installations with a Rotate button", `document.querySelectorAll('#installations tr[data-installation-id] button.rotate').length === 2`, 20*time.Second)
	devID := installationOf(hc, "Dev")
	// Its connection history: the agent's link opened (and is open).
	hc.do("show Dev's connection history", chromedp.Click(css(`#installations tr[data-installation-id="`+devID+`"] button.history`)))
	hc.waitJS("Dev's history lists its link", `!document.querySelector("#inst-history").hidden && document.querySelector("#inst-history").dataset.installationId === "`+devID+`" && !!document.querySelector('#inst-history-list tr[data-event="CONNECTED"]')`, 20*time.Second)
	hc.shot("connection-history")
	_, _ = hc.eval(`window.confirm = () => true`)
	hc.do("rotate Dev's credential", chromedp.Click(css(`#installations tr[data-installation-id="`+devID+`"] button.rotate`)))
	hc.waitJS("the rotation confirmed by the agent", `document.querySelector("#inst-msg").classList.contains("msg-ok") && document.querySelector("#inst-msg").innerText.includes("rotated")`, 20*time.Second)
	hc.shot("credential-rotated")
	auditedOnce(t, w, "CREDENTIAL_ROTATED", devID, orgAdmin)
	var insts struct {
		Items []struct {
			ID, Status        string
			CredentialPending bool
		}
	}
	w.hub.mustCall(t, http.StatusOK, "GET", "/api/v1/orgs/"+orgName+"/installations", nil, &insts)
	for _, i := range insts.Items {
		if i.ID == devID && (i.Status != "online" || i.CredentialPending) {
			t.Errorf("Dev's installation after the rotation: %+v, want online with the new credential confirmed", i)
		}
	}

	// An installation revoked from the console: its row goes, its agent
	// is disconnected and stops, and the trail says who did it.
	hc.do("open Installations again", chromedp.Click(css(`.topnav a[href="/console/installations"]`)))
	hc.waitJS("two installations with a Revoke button", `document.querySelectorAll('#installations tr[data-installation-id] button.revoke').length === 2`, 20*time.Second)
	prodID := installationOf(hc, "Prod")
	_, _ = hc.eval(`window.confirm = () => true`)
	hc.do("revoke Prod's installation", chromedp.Click(css(`#installations tr[data-installation-id="`+prodID+`"] button.revoke`)))
	hc.waitText("#inst-msg", "revoked")
	hc.waitJS("Prod's installation gone", `!document.querySelector('#installations tr[data-installation-id="`+prodID+`"]') && document.querySelectorAll('#installations tr[data-installation-id]').length === 1`, 20*time.Second)
	hc.shot("installation-revoked")
	select {
	case <-w.prodAgnt.Done():
	case <-time.After(20 * time.Second):
		t.Error("Prod's agent still runs 20 s after its installation was revoked")
	}
	auditedOnce(t, w, "INSTALLATION_REVOKED", prodID, orgAdmin)
}

// installationOf returns the id of the installation the Installations page
// lists for environment env.
func installationOf(hc *tab, env string) string {
	return hc.evalString(env+"'s installation", `[...document.querySelectorAll('#installations tr[data-installation-id]')].find(r => r.children[1].innerText.includes("`+env+`")).dataset.installationId`)
}

// auditedOnce checks that the organization's trail has exactly one entry
// of event, naming subject in its detail, by actor.
func auditedOnce(t *testing.T, w *world, event, subject, actor string) {
	t.Helper()
	var trail struct {
		Items []struct{ Event, Actor, Detail string }
	}
	w.hub.mustCall(t, http.StatusOK, "GET", "/api/v1/orgs/"+orgName+"/audit?event="+event, nil, &trail)
	if len(trail.Items) != 1 || !strings.Contains(trail.Items[0].Detail, subject) || !strings.Contains(trail.Items[0].Actor, actor) {
		t.Errorf("audit: %+v, want one %s of %s by %s", trail.Items, event, subject, actor)
	}
}
