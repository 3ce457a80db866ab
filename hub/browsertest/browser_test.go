package browsertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium returns the browser to drive.
func chromium(t *testing.T) string {
	t.Helper()
	p := os.Getenv("FERRY_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("Chromium not found at %s (%v): run scripts/ensure-chromium.sh, or set FERRY_CHROMIUM", p, err)
	}
	return p
}

// outDir is where screenshots go: $FERRY_TEST_OUT or <repo>/out/browser.
func outDir(t *testing.T) string {
	t.Helper()
	d := os.Getenv("FERRY_TEST_OUT")
	if d == "" {
		abs, err := filepath.Abs(filepath.Join("..", "..", "out", "browser"))
		if err != nil {
			t.Fatal(err)
		}
		d = abs
	}
	d = filepath.Join(d, t.Name())
	if err := os.RemoveAll(d); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// browser is one headless Chromium for a test; each tab is its own browser
// context (its own cookies and storage), as different people would be.
type browser struct {
	t     *testing.T
	alloc context.Context
	root  context.Context
	dir   string
	mu    sync.Mutex
	step  int
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancelRoot := chromedp.NewContext(alloc, chromedp.WithErrorf(func(f string, a ...any) { t.Logf("chromedp: "+f, a...) }))
	if err := chromedp.Do(root); err != nil { // starts the browser
		cancelRoot()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() {
		cancelRoot()
		cancelAlloc()
	})
	return &browser{t: t, alloc: alloc, root: root, dir: outDir(t)}
}

// tab is a page in its own browser context.
type tab struct {
	b    *browser
	name string
	ctx  context.Context
}

func (b *browser) tab(name string) *tab {
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open tab %s: %v", name, err)
	}
	return &tab{b: b, name: name, ctx: ctx}
}

// do runs actions with a timeout; on failure it saves a screenshot and
// fails the test.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.fail(what, err)
	}
}

func (tb *tab) fail(what string, err error) {
	tb.b.t.Helper()
	tb.shot("FAILED-" + what)
	body, _ := tb.eval(`document.body ? document.body.innerText.slice(0, 3000) : ""`)
	loc, _ := tb.eval(`location.href`)
	tb.b.t.Fatalf("[%s] %s: %v\nat %v\npage text:\n%v", tb.name, what, err, loc, body)
}

// eval evaluates a JavaScript expression.
func (tb *tab) eval(expr string) (any, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[any](expr))
}

// evalString evaluates an expression to a string and fails on error.
func (tb *tab) evalString(what, expr string) string {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		tb.fail(what, err)
	}
	return s
}

// waitJS waits until a JavaScript expression is truthy. It evaluates the
// expression every 100 ms, so that it survives page navigations.
func (tb *tab) waitJS(what, expr string, timeout time.Duration) {
	tb.b.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		v, err := tb.eval("!!(" + expr + ")")
		if b, _ := v.(bool); err == nil && b {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	if last == nil {
		last = fmt.Errorf("still false after %v", timeout)
	}
	tb.fail("wait for "+what, last)
}

// waitText waits until the element matching css contains text.
func (tb *tab) waitText(css, text string) {
	tb.b.t.Helper()
	tb.waitJS(fmt.Sprintf("%q in %s", text, css), fmt.Sprintf(`(() => { const n = document.querySelector(%q); return !!n && n.innerText.includes(%q); })()`, css, text), 20*time.Second)
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// shot saves a full-page PNG screenshot as the test's next step.
func (tb *tab) shot(step string) string {
	tb.b.mu.Lock()
	tb.b.step++
	n := tb.b.step
	tb.b.mu.Unlock()
	ctx, cancel := context.WithTimeout(tb.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.b.t.Logf("screenshot %s: %v", step, err)
		return ""
	}
	name := fmt.Sprintf("%02d-%s-%s.png", n, tb.name, strings.Trim(unsafeName.ReplaceAllString(step, "-"), "-"))
	p := filepath.Join(tb.b.dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.b.t.Errorf("save screenshot: %v", err)
	}
	return p
}

// css is a CSS selector.
func css(s string) chromedp.CSS { return chromedp.CSS(s) }

// signInAgent signs in to an environment console.
func (tb *tab) signInAgent(url, user string) {
	tb.b.t.Helper()
	tb.do("open the sign-in page",
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(css("#signin-form")))
	tb.shot("sign-in")
	tb.do("sign in as "+user,
		chromedp.SendKeys(css("#username"), user),
		chromedp.SendKeys(css("#password"), userPassword),
		chromedp.SetValue(css("#organization"), orgName),
		chromedp.Click(css("#signin-submit")))
	tb.waitJS("the APIs page after sign-in", `document.body.dataset.page === "apis" && document.querySelector("#apis table, #apis .empty") !== null`, 20*time.Second)
}
