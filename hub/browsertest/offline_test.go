package browsertest

import (
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsoleHubDown: with the hub stopped, the Prod console says so, its
// signed-in admin still decides on a task that was delivered before, and
// the sign-in page explains that sign-in needs the hub and what still works.
func TestConsoleHubDown(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	var p struct{ ID string }
	w.hub.mustCall(t, http.StatusCreated, "POST", "/api/v1/orgs/"+orgName+"/promotions",
		map[string]string{"apiId": w.apiID, "sourceEnv": "Dev", "targetEnv": "Prod"}, &p)

	b := newBrowser(t)
	prod := b.tab("prod")
	openTask(t, w, prod, "platform admin")

	w.hub.Terminate(stopGrace)
	prod.waitText("#banner", "The hub is unreachable")
	prod.waitJS("the task still listed", `!!document.querySelector('article.task[data-task-id="`+p.ID+`"]')`, 5*time.Second)
	prod.shot("hub-down-tasks")
	prod.do("Accept with the hub down", chromedp.Click(css(`article.task[data-task-id="`+p.ID+`"] button.accept`)))
	prod.waitText("#tasks-msg", "Accepted")
	prod.shot("hub-down-accepted")
	if names := w.prodAPIM.apiNames(t); !contains(names, w.apiName) {
		t.Errorf("Prod's APIM has %v, want %s", names, w.apiName)
	}

	other := b.tab("prod-new")
	other.do("open the console", chromedp.Navigate(w.prodAgnt.url+"/console/tasks"), chromedp.WaitVisible(css("#signin-form")))
	other.waitText("#hub-state", "your session keeps working for tasks")
	other.do("try to sign in",
		chromedp.SendKeys(css("#username"), prodUser),
		chromedp.SendKeys(css("#password"), userPassword),
		chromedp.Click(css("#signin-submit")))
	other.waitText("#signin-msg", "The hub cannot be reached")
	other.waitText("#signin-msg", "keeps working for tasks")
	other.shot("hub-down-sign-in")
}
