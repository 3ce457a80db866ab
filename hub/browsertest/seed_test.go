package browsertest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// requestPromotion walks the Dev console from sign-in to a sent promotion
// request: APIs → the API → General → Promote → Environment: Prod →
// Promote. It checks the dialog's wording, the new request's status and
// that Prod is then disabled with a reason.
func requestPromotion(t *testing.T, w *world, dev *tab) {
	t.Helper()
	dev.signInAgent(w.devAgent.url, devUser)
	dev.waitJS("the API in Dev's list", `!!document.querySelector('#apis a[href="/console/apis/`+w.apiID+`"]')`, 20*time.Second)
	dev.shot("apis")

	dev.do("open the API", chromedp.Click(css(`#apis a[href="/console/apis/`+w.apiID+`"]`)))
	dev.waitJS("the API page", `document.querySelector("#api-title").innerText.includes(`+jsString(w.apiName)+`) && !document.querySelector("#promote-open").disabled`, 20*time.Second)
	dev.do("open General", chromedp.Click(css("#nav-general")), chromedp.WaitVisible(css("#general")))
	dev.shot("api-general")

	dev.do("open the Promote dialog", chromedp.Click(css("#promote-open")), chromedp.WaitVisible(css("#promote-dialog")))
	dev.waitJS("Prod in the Environment dropdown", `!!document.querySelector('#promote-env option[data-name="Prod"]')`, 20*time.Second)
	dialog := dev.evalString("the dialog text", `document.querySelector("#promote-dialog").innerText`)
	for _, want := range []string{"Promote the API", "Environment", "Members and groups are not promoted"} {
		if !strings.Contains(dialog, want) {
			t.Errorf("the Promote dialog does not say %q:\n%s", want, dialog)
		}
	}
	if opts := dev.evalString("the dropdown", `[...document.querySelectorAll("#promote-env option")].map(o => o.textContent).join("|")`); strings.Contains(opts, "Dev") {
		t.Errorf("the Environment dropdown offers the source environment: %s", opts)
	}
	dev.do("choose Environment: Prod", chromedp.SetValue(css("#promote-env"), w.envs["Prod"]))
	dev.shot("promote-dialog-prod")
	dev.do("Promote", chromedp.Click(css("#promote-submit")))
	dev.waitText("#promote-msg", "Promotion requested")
	dev.waitJS("the request waiting for Prod", `document.querySelector("#promote-status").innerText.includes("TO BE VALIDATED")`, 20*time.Second)
	dev.waitJS("Prod disabled with a reason",
		`(() => { const o = document.querySelector('#promote-env option[data-name="Prod"]'); return o.disabled && o.textContent.includes("unavailable") && o.textContent.includes("already"); })()`, 20*time.Second)
	reason := dev.evalString("the reason", `document.querySelector("#promote-reasons").innerText`)
	if !strings.Contains(reason, "Prod") || !strings.Contains(reason, "waiting") {
		t.Errorf("the reason Prod is disabled reads %q", reason)
	}
	dev.shot("promote-requested-prod-disabled")
	dev.do("close the dialog", chromedp.Click(css("#promote-cancel")))
}

// openTask signs in to the Prod console, opens Tasks and waits for the
// request from Dev, made by requester.
func openTask(t *testing.T, w *world, prod *tab, requester string) string {
	t.Helper()
	prod.signInAgent(w.prodAgnt.url, prodUser)
	prod.do("open Tasks", chromedp.Click(css(`.topnav a[href="/console/tasks"]`)))
	prod.waitJS("the request in Tasks", `!!document.querySelector("article.task")`, 20*time.Second)
	prod.waitJS("the plan", `!!document.querySelector("article.task .plan-action")`, 20*time.Second)
	card := prod.evalString("the task", `document.querySelector("article.task").innerText`)
	for _, want := range []string{w.apiName, "1.0.0", "From Dev", "Requested by", requester, "creates a new API"} {
		if !strings.Contains(card, want) {
			t.Errorf("the task does not show %q:\n%s", want, card)
		}
	}
	return prod.evalString("the task id", `document.querySelector("article.task").dataset.taskId`)
}

// TestSeedPromoteAccept walks the seed's steps: sign in to the Dev console
// → APIs → the API → General → Promote → Environment: Prod → Promote; the
// dropdown then disables Prod with a reason; sign in to the Prod console →
// Tasks → the request is there → Accept → it leaves the list → the API is
// in Prod's APIs list. The Dev console's Promotions page shows it accepted.
func TestSeedPromoteAccept(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	b := newBrowser(t)
	dev, prod := b.tab("dev"), b.tab("prod")

	requestPromotion(t, w, dev)
	id := openTask(t, w, prod, devUser)
	prod.shot("tasks-request")
	prod.do("Accept", chromedp.Click(css(`article.task[data-task-id="`+id+`"] button.accept`)))
	prod.waitJS("the task leaving the list", `!document.querySelector('article.task[data-task-id="`+id+`"]')`, 5*time.Second)
	prod.waitText("#tasks-msg", "Accepted")
	prod.shot("task-accepted")

	prod.do("open APIs", chromedp.Click(css(`.topnav a[href="/console/apis"]`)))
	prod.waitJS("the API in Prod's list", `[...document.querySelectorAll("#apis a")].some(a => a.textContent === `+jsString(w.apiName)+`)`, 20*time.Second)
	prod.shot("apis")
	if names := w.prodAPIM.apiNames(t); !contains(names, w.apiName) {
		t.Errorf("Prod's APIM has %v, want %s", names, w.apiName)
	}

	dev.do("open Dev's Promotions", chromedp.Click(css(`.topnav a[href="/console/promotions"]`)))
	dev.waitJS("the request accepted, live", `document.querySelector('#outgoing tr[data-promotion-id="`+id+`"]').innerText.includes("ACCEPTED")`, 20*time.Second)
	dev.shot("promotions-accepted")
	prod.do("open Prod's Promotions", chromedp.Click(css(`.topnav a[href="/console/promotions"]`)))
	prod.waitJS("the incoming request accepted", `document.querySelector('#incoming tr[data-promotion-id="`+id+`"]').innerText.includes("ACCEPTED")`, 20*time.Second)
	prod.shot("promotions-incoming")

	// A new version in Dev, promoted again: the task now updates Prod's API
	// and shows what changes.
	w.devAPIM.updateAPI(t, w.apiID, func(api map[string]any) {
		api["apiVersion"] = "1.1.0"
		api["description"] = "Now with a changelog"
	})
	dev.do("back to the API", chromedp.Navigate(w.devAgent.url+"/console/apis/"+w.apiID))
	dev.waitJS("the API page", `!document.querySelector("#promote-open").disabled`, 20*time.Second)
	dev.do("open the Promote dialog", chromedp.Click(css("#promote-open")))
	dev.waitJS("Prod offered again", `(() => { const o = document.querySelector('#promote-env option[data-name="Prod"]'); return !!o && !o.disabled; })()`, 20*time.Second)
	dev.do("promote 1.1.0 to Prod", chromedp.SetValue(css("#promote-env"), w.envs["Prod"]), chromedp.Click(css("#promote-submit")))
	dev.waitText("#promote-msg", "Promotion requested")

	prod.do("open Tasks", chromedp.Click(css(`.topnav a[href="/console/tasks"]`)))
	prod.waitJS("the update with its diff", `!!document.querySelector("article.task[data-action=update] table.diff")`, 20*time.Second)
	diff := prod.evalString("the diff", `document.querySelector("article.task table.diff").innerText`)
	for _, want := range []string{"api.apiVersion", `"1.0.0"`, `"1.1.0"`, "api.description", "Now with a changelog"} {
		if !strings.Contains(diff, want) {
			t.Errorf("the diff does not show %q:\n%s", want, diff)
		}
	}
	if strings.Contains(diff, "members") || strings.Contains(diff, "groups") {
		t.Errorf("the diff shows members or groups:\n%s", diff)
	}
	prod.shot("tasks-update-diff")
	prod.do("Accept the update", chromedp.Click(css("article.task button.accept")))
	prod.waitText("#tasks-msg", "was updated in Prod")
	prod.shot("task-update-accepted")
	if names := w.prodAPIM.apiNames(t); len(names) != 1 {
		t.Errorf("Prod's APIM has %v after the update, want one API", names)
	}
}

// TestSeedPromoteReject is the reject path: Prod's admin rejects with a
// reason; the task leaves the list, Prod gets no API, and Dev sees the
// rejection and its reason live. Prod is then offered again in the dialog.
func TestSeedPromoteReject(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	b := newBrowser(t)
	dev, prod := b.tab("dev"), b.tab("prod")

	requestPromotion(t, w, dev)
	dev.do("open Dev's Promotions", chromedp.Click(css(`.topnav a[href="/console/promotions"]`)))
	id := openTask(t, w, prod, devUser)
	prod.do("Reject", chromedp.Click(css(`article.task[data-task-id="`+id+`"] button.reject-open`)),
		chromedp.WaitVisible(css(`#reason-`+id)),
		chromedp.SendKeys(css(`#reason-`+id), "Not before the security review"))
	prod.shot("reject-reason")
	prod.do("Reject the request", chromedp.Click(css(`article.task[data-task-id="`+id+`"] .reject-form button[type="submit"]`)))
	prod.waitJS("the task leaving the list", `!document.querySelector('article.task[data-task-id="`+id+`"]')`, 5*time.Second)
	prod.waitText("#tasks-msg", "Rejected")
	prod.waitText("#tasks", "No promotion request is waiting")
	prod.shot("task-rejected")

	prod.do("open APIs", chromedp.Click(css(`.topnav a[href="/console/apis"]`)))
	prod.waitText("#apis", "This environment has no API yet")
	prod.shot("apis-empty")
	if names := w.prodAPIM.apiNames(t); len(names) != 0 {
		t.Errorf("Prod's APIM has %v after a reject, want none", names)
	}

	dev.waitJS("the rejection and its reason, live",
		`(() => { const r = document.querySelector('#outgoing tr[data-promotion-id="`+id+`"]'); return !!r && r.innerText.includes("REJECTED") && r.innerText.includes("security review"); })()`, 20*time.Second)
	dev.shot("promotions-rejected")

	var p struct{ Status, Reason string }
	w.hub.mustCall(t, http.StatusOK, "GET", "/api/v1/orgs/"+orgName+"/promotions/"+id, nil, &p)
	if p.Status != "REJECTED" || !strings.Contains(p.Reason, "security review") {
		t.Errorf("hub promotion = %+v, want REJECTED with the reason", p)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
