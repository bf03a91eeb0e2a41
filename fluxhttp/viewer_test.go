package fluxhttp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/fluxhttp"
)

// The viewer tests drive Debian's headless Chromium with chromedp, as the
// browser tests of internal/viewer do. They share one browser, a tab each.

const chromiumPath = "/usr/bin/chromium"

var browser struct {
	once sync.Once
	ctx  context.Context
	stop func()
	err  error
}

func startBrowser() {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1360, 900))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	browser.ctx = bctx
	browser.stop = func() { bcancel(); acancel() }
	browser.err = chromedp.Do(bctx) // starts the browser
}

func stopBrowser() {
	if browser.stop != nil {
		browser.stop()
	}
}

// viewerTab is a browser tab that accepts every confirmation dialog,
// recording its message, and records the page's script exceptions.
type viewerTab struct {
	t       *testing.T
	ctx     context.Context
	mu      sync.Mutex
	dialogs []string
	errs    []string
}

// newViewerTab opens a tab, or skips t without Chromium (fails it when the
// environment variable CI is set).
func newViewerTab(t *testing.T) *viewerTab {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing, and CI is set: the viewer's browser tests must run", chromiumPath)
		}
		t.Skipf("%s is missing: install Debian's chromium (apt-get install chromium) to run the browser tests", chromiumPath)
	}
	browser.once.Do(startBrowser)
	if browser.err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, browser.err)
	}
	ctx, cancel := chromedp.NewContext(browser.ctx)
	b := &viewerTab{t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		cancel()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, e := range b.errs {
			t.Errorf("the page reported: %s", e)
		}
	})
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	exceptions := chromedp.Events(ctx, cdpruntime.ExceptionThrown)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, string(ev.Type)+": "+ev.Message)
			b.mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			msg := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
			b.mu.Lock()
			b.errs = append(b.errs, msg)
			b.mu.Unlock()
		}
	}()
	return b
}

func (b *viewerTab) nav(u string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(u)); err != nil {
		b.t.Fatalf("opening %s: %v", u, err)
	}
}

// waitFor polls expr in the page until it is true, for at most d.
func (b *viewerTab) waitFor(what, expr string, d time.Duration) {
	b.t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(25*time.Millisecond)))
	if err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 1500) : ""`))
		b.t.Fatalf("waiting %s until %s: %v\npage text:\n%s", d, what, err, text)
	}
}

func (b *viewerTab) eval(expr string) int {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// flakyServer serves a handler with the viewer at /flux/ over a workflow
// whose step "flaky" fails until fixed is set, and returns the server's
// URL, the engine, and the ID of a failed run.
func flakyServer(t *testing.T, fixed *atomic.Bool, authorize func(*http.Request) error) (string, *flux.Engine, string) {
	t.Helper()
	e, err := flux.NewEngine(flux.Config{
		DefaultStepOptions: []flux.StepOption{flux.Retries(0), flux.NoBackoff()},
		Logger:             quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	type data struct {
		Prepared, Done bool
	}
	flow := flux.New[greetIn, data]("flaky").
		Step("prepare", func(c *flux.Ctx[greetIn, data]) error {
			c.Data.Prepared = true
			return nil
		}).
		Step("flaky", func(c *flux.Ctx[greetIn, data]) error {
			if !fixed.Load() {
				return flux.Permanent(errors.New("the service is down"))
			}
			return nil
		}).
		Step("finish", func(c *flux.Ctx[greetIn, data]) error {
			c.Data.Done = true
			return nil
		})
	h, err := fluxhttp.New(fluxhttp.Config{Engine: e, Prefix: "/flux/", Authorize: authorize, Viewer: true, Logger: quiet},
		fluxhttp.Workflow(flow))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		_ = h.Close() // ends the viewer's event streams first
		ts.Close()
	})
	id, err := flux.Start(t.Context(), e, flow, greetIn{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flux.Wait(t.Context(), e, flow, id); err == nil {
		t.Fatal("the flaky run did not fail")
	}
	if run, err := e.Get(t.Context(), id); err != nil || run.Status != flux.StatusFailed {
		t.Fatalf("the run before the test: %v, %v; want it failed", run, err)
	}
	return ts.URL, e, id
}

// TestViewerRetryFromStep: the viewer mounted at {prefix}ui/ shows a failed
// run with a "retry from" button per step; clicking the failed step's and
// confirming replays the run through POST runs/{id}/retry, and the page and
// storage both see it completed.
func TestViewerRetryFromStep(t *testing.T) {
	var fixed atomic.Bool
	base, e, id := flakyServer(t, &fixed, allow)
	b := newViewerTab(t)
	b.nav(base + "/flux/ui/#/run/" + url.PathEscape(id))
	b.waitFor("the failed run shows with its retry button",
		`!!document.querySelector('.run-view[data-status="failed"] button[data-action="retry"][data-step="flaky"]')`, 10*time.Second)
	if n := b.eval(`document.querySelectorAll('button[data-action="resume"]').length`); n != 1 {
		t.Errorf("%d resume buttons on a failed run, want 1", n)
	}
	if n := b.eval(`document.querySelectorAll('button[data-action="cancel"]').length`); n != 0 {
		t.Errorf("%d cancel buttons on a failed run, want none", n)
	}
	fixed.Store(true)
	// Clicked from the page, not through a DOM node ID: a live update may
	// render the run again between finding the button and clicking it.
	// The click runs after the evaluation returns, as it opens a confirm.
	b.waitFor("the retry button is clicked", `(() => {
		const el = document.querySelector('button[data-action="retry"][data-step="flaky"]');
		if (!el) return false;
		setTimeout(() => el.click(), 0);
		return true;
	})()`, 10*time.Second)
	b.waitFor("the page shows the run completed", `(() => {
		const v = document.querySelector('.run-view');
		return !!v && v.dataset.status === "completed" && v.querySelector('.run-head .chip').dataset.status === "completed";
	})()`, 15*time.Second)
	b.mu.Lock()
	dialogs := append([]string(nil), b.dialogs...)
	b.mu.Unlock()
	if len(dialogs) != 1 || !strings.HasPrefix(dialogs[0], "confirm: ") || !strings.Contains(dialogs[0], "flaky") {
		t.Errorf("dialogs: %q, want one confirmation naming the step", dialogs)
	}
	run, err := e.Get(t.Context(), id)
	if err != nil || run.Status != flux.StatusCompleted {
		t.Fatalf("the stored run: %v, %v; want it completed", run, err)
	}
}

// TestViewerHidesActions: when Authorize refuses the page's request, or is
// not set, the run page has no action buttons.
func TestViewerHidesActions(t *testing.T) {
	for name, authorize := range map[string]func(*http.Request) error{
		"refusing": func(*http.Request) error { return errors.New("not you") },
		"unset":    nil,
	} {
		t.Run(name, func(t *testing.T) {
			var fixed atomic.Bool
			base, _, id := flakyServer(t, &fixed, authorize)
			b := newViewerTab(t)
			b.nav(base + "/flux/ui/#/run/" + url.PathEscape(id))
			b.waitFor("the failed run shows", `!!document.querySelector('.run-view[data-status="failed"] .timeline')`, 10*time.Second)
			if n := b.eval(`document.querySelectorAll('[data-action], #actions').length`); n != 0 {
				t.Errorf("%d action elements on the page, want none", n)
			}
		})
	}
}

// TestViewerRoutes: {prefix}ui redirects to {prefix}ui/, the page and the
// viewer's API are below it, AuthorizeRead guards them, and without
// Config.Viewer nothing is there.
func TestViewerRoutes(t *testing.T) {
	for _, viewer := range []bool{false, true} {
		reads := true
		b := setup(t, func(c *fluxhttp.Config) {
			c.Viewer = viewer
			c.Prefix = "/flux/"
			c.AuthorizeRead = func(*http.Request) error {
				if !reads {
					return errors.New("no reading")
				}
				return nil
			}
		})
		t.Cleanup(func() { _ = b.handler.Close() })
		if !viewer {
			do(t, b.handler, "GET", "/flux/ui/", "").problem(t, 404, "not-found")
			continue
		}
		if res := do(t, b.handler, "GET", "/flux/ui", "").expect(t, http.StatusFound); res.Header().Get("Location") != "/flux/ui/" {
			t.Errorf("GET /flux/ui redirects to %q, want /flux/ui/", res.Header().Get("Location"))
		}
		if res := do(t, b.handler, "GET", "/flux/ui/", "").expect(t, 200); !strings.Contains(res.Body.String(), `src="./assets/app.js"`) {
			t.Errorf("GET /flux/ui/ is not the viewer's page:\n%s", res.Body)
		}
		do(t, b.handler, "GET", "/flux/ui/assets/app.js", "").expect(t, 200)
		if res := do(t, b.handler, "GET", "/flux/ui/api/actions", "").expect(t, 200); res.body["enabled"] != true || res.body["base"] != "../" {
			t.Errorf("GET /flux/ui/api/actions: %v, want enabled with base ../", res.body)
		}
		do(t, b.handler, "GET", "/flux/ui/api/runs", "").expect(t, 200)
		do(t, b.handler, "GET", "/flux/runs", "").expect(t, 200) // the API is still there
		reads = false
		do(t, b.handler, "GET", "/flux/ui/", "").problem(t, 403, "forbidden")
	}
}
