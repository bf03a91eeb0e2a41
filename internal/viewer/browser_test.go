package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/sqlite"
	"github.com/flux-go/flux/tracefile"
)

// The browser tests drive Debian's headless Chromium with chromedp. They
// share one browser, a tab each.

const chromiumPath = "/usr/bin/chromium"

var updateDocs = flag.Bool("viewer.docs", false, "also write the run page screenshot to docs/viewer.png")

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

// tab is a browser tab that records what would show a broken page: script
// exceptions, console errors (CSP violations among them) and dialogs.
type tab struct {
	t       *testing.T
	ctx     context.Context
	mu      sync.Mutex
	errs    []string
	dialogs atomic.Int32
}

func newTab(t *testing.T) *tab {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("%s is missing: install Debian's chromium (apt-get install chromium) to run the browser tests", chromiumPath)
	}
	browser.once.Do(startBrowser)
	if browser.err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, browser.err)
	}
	ctx, cancel := chromedp.NewContext(browser.ctx)
	b := &tab{t: t, ctx: ctx}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	exceptions := chromedp.Events(ctx, cdpruntime.ExceptionThrown)
	console := chromedp.Events(ctx, cdpruntime.ConsoleAPICalled)
	logs := chromedp.Events(ctx, cdplog.EntryAdded)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	wg.Add(4)
	go func() {
		defer wg.Done()
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			b.fail("exception: " + ev.ExceptionDetails.Text + " " + describeException(ev.ExceptionDetails))
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range console {
			if err != nil {
				return
			}
			if ev.Type == cdpruntime.ConsoleAPICalledTypeError || ev.Type == cdpruntime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.fail("console." + string(ev.Type) + ": " + strings.Join(parts, " "))
			}
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range logs {
			if err != nil {
				return
			}
			if ev.Entry.Level == cdplog.EntryLevelError && !strings.Contains(ev.Entry.Text, "favicon") {
				b.fail("log " + string(ev.Entry.Source) + ": " + ev.Entry.Text)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.dialogs.Add(1)
			b.fail("a dialog opened: " + string(ev.Type) + " " + ev.Message)
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, e := range b.errs {
			t.Errorf("the page reported: %s", e)
		}
	})
	return b
}

func describeException(d *cdpruntime.ExceptionDetails) string {
	if d.Exception != nil {
		return d.Exception.Description
	}
	return fmt.Sprintf("at %d:%d", d.LineNumber, d.ColumnNumber)
}

func (b *tab) fail(msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errs = append(b.errs, msg)
}

func (b *tab) nav(u string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(u)); err != nil {
		b.t.Fatalf("opening %s: %v", u, err)
	}
}

// waitFor polls expr in the page until it is true, for at most d.
func (b *tab) waitFor(what, expr string, d time.Duration) {
	b.t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(25*time.Millisecond)))
	if err != nil {
		text := evalJS[string](b, `document.body ? document.body.innerText.slice(0, 1500) : ""`)
		b.t.Fatalf("waiting %s until %s: %v\npage text:\n%s", d, what, err, text)
	}
}

func evalJS[T any](b *tab, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// sampleTrace runs the sample workflows with the tracefile sink and serves
// the trace.
func sampleTrace(t *testing.T) (path string, ids map[string]string, base string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), ".flux", "trace.ndjson")
	sink, err := tracefile.New(path, tracefile.Reset(true))
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, flux.Config{Trace: sink})
	ids = runSamples(t, e)
	e.Close()
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	src, err := OpenTrace(path, TraceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return path, ids, serve(t, src).URL
}

func runURL(base, id string) string { return base + "/#/run/" + url.PathEscape(id) }

const graphStatuses = `Object.fromEntries([...document.querySelectorAll('svg.graph .node')].map(n => [n.dataset.name, n.dataset.status]))`

func TestBrowserEventRouting(t *testing.T) {
	t.Parallel()
	_, ids, base := sampleTrace(t)
	b := newTab(t)
	for kind, taken := range map[string]string{"route-manual": "manual-review", "route-auto": "auto-handle", "route-risk": "risk-audit"} {
		b.nav(runURL(base, ids[kind]))
		b.waitFor("the graph of "+kind+" shows", `document.querySelector('.run-view[data-run="`+ids[kind]+`"]') !== null && document.querySelectorAll('svg.graph .node').length === 5`, 10*time.Second)
		got := evalJS[map[string]string](b, graphStatuses)
		for _, route := range []string{"auto-handle", "manual-review", "risk-audit"} {
			want := "skipped"
			if route == taken {
				want = "completed"
			}
			if got[route] != want {
				t.Errorf("%s: node %s is %q, want %q (graph %v)", kind, route, got[route], want, got)
			}
		}
		if got["classify"] != "completed" || got["notify"] != "completed" {
			t.Errorf("%s: classify %q, notify %q; want completed", kind, got["classify"], got["notify"])
		}
		// Skipped nodes are greyed; the branch that ran is on the highlighted path.
		opacity := evalJS[map[string]string](b, `Object.fromEntries([...document.querySelectorAll('svg.graph .node')].map(n => [n.dataset.name, getComputedStyle(n).opacity]))`)
		if opacity[taken] != "1" {
			t.Errorf("%s: the taken branch %s has opacity %s", kind, taken, opacity[taken])
		}
		for route, o := range opacity {
			if got[route] == "skipped" && o == "1" {
				t.Errorf("%s: skipped %s is not greyed (opacity %s)", kind, route, o)
			}
		}
		if n := evalJS[int](b, `document.querySelectorAll('svg.graph .edge.taken').length`); n != 2 {
			t.Errorf("%s: %d highlighted edges, want 2 (classify → %s → notify)", kind, n, taken)
		}
		if c := evalJS[string](b, `[...document.querySelectorAll('svg.graph .node.commit')].map(n => n.dataset.name).join()`); c != "notify" {
			t.Errorf("%s: commit nodes %q, want notify", kind, c)
		}
		if n := evalJS[int](b, `document.querySelectorAll('.tl-row.skipped').length`); n != 2 {
			t.Errorf("%s: %d skipped rows in the timeline, want 2", kind, n)
		}
	}
}

func TestBrowserRetriedStep(t *testing.T) {
	t.Parallel()
	_, ids, base := sampleTrace(t)
	b := newTab(t)
	b.nav(runURL(base, ids["order"]))
	b.waitFor("the timeline shows", `document.querySelectorAll('.tl-row[data-name="charge"]').length > 0`, 10*time.Second)
	got := evalJS[[]string](b, `[...document.querySelectorAll('.tl-row[data-name="charge"]')].map(r => r.dataset.attempt + ':' + r.dataset.status)`)
	if want := []string{"1:failed", "2:failed", "3:completed"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("charge's timeline rows = %v, want %v", got, want)
	}
	errs := evalJS[[]string](b, `[...document.querySelectorAll('.attempt-error[data-name="charge"] .msg')].map(e => e.textContent)`)
	if len(errs) != 2 || errs[0] != "payment gateway timeout" || errs[1] != "payment gateway timeout" {
		t.Errorf("failed attempts shown: %q, want charge's two errors", errs)
	}
	if w := evalJS[float64](b, `Math.min(...[...document.querySelectorAll('.tl-row[data-name="charge"] .tl-bar')].map(e => e.getBoundingClientRect().width))`); w < 1 {
		t.Errorf("an attempt's bar is %v px wide", w)
	}
	if sub := evalJS[string](b, `document.querySelector('svg.graph .node[data-name="charge"] .sub').textContent`); !strings.Contains(sub, "3 attempts") {
		t.Errorf("the charge node says %q, want its 3 attempts", sub)
	}
}

func TestBrowserLiveUpdates(t *testing.T) {
	t.Parallel()
	path, _, base := sampleTrace(t)
	b := newTab(t)
	b.nav(base + "/")
	b.waitFor("the list shows the 5 runs", `document.querySelectorAll('table.runs tbody tr').length === 5`, 10*time.Second)
	evalJS[bool](b, `window.__sameDocument = true`)

	// Another run, appended to the file by a new sink.
	sink, err := tracefile.New(path)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, flux.Config{Trace: sink})
	var in routeIn
	in.Payload.Kind = "risk"
	if _, err := flux.Execute(context.Background(), e, routingFlow, in, flux.RunID("live-1")); err != nil {
		t.Fatal(err)
	}
	if err := sink.Flush(); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the appended run shows in the open list", `document.querySelector('tr[data-run="live-1"]') !== null && window.__sameDocument === true`, 2*time.Second)

	// A run page follows its run.
	release := make(chan struct{})
	started := make(chan struct{})
	slow := flux.New[routeIn, routeData]("slow").
		Step("wait", func(c *flux.Ctx[routeIn, routeData]) error {
			close(started)
			select {
			case <-release:
				return nil
			case <-c.Done():
				return c.Err()
			}
		}).
		Commit("done", func(c *flux.Ctx[routeIn, routeData]) error { return nil })
	done := make(chan error, 1)
	go func() {
		_, err := flux.Execute(context.Background(), e, slow, in, flux.RunID("live-2"))
		done <- err
	}()
	<-started
	if err := sink.Flush(); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the running run shows in the list", `document.querySelector('tr[data-run="live-2"] a') !== null`, 2*time.Second)
	evalJS[bool](b, `document.querySelector('tr[data-run="live-2"] a').click(), true`)
	b.waitFor("the running run shows", `document.querySelector('.run-view[data-status="running"] svg.graph .node[data-name="wait"][data-status="running"]') !== null`, 10*time.Second)
	evalJS[bool](b, `window.__sameDocument = true`)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := sink.Flush(); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the open run page shows the run completed", `document.querySelector('.run-view[data-status="completed"] svg.graph .node[data-name="done"][data-status="completed"]') !== null && window.__sameDocument === true`, 2*time.Second)
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBrowserHostileStrings(t *testing.T) {
	t.Parallel()
	path, ids, base := sampleTrace(t)
	// A run ID, a malformed line and a step name made of markup.
	evilID := `"><img src=x onerror=alert(3)>`
	appendFile(t, path, `{"type":"workflow:start","timestamp":1795610935529,"workflowId":"`+strings.ReplaceAll(evilID, `"`, `\"`)+`","workflowName":"<svg onload=alert(5)>","status":"running","input":{"<i>k</i>":"<img src=x onerror=alert(6)>"}}`+"\n"+
		`{"type":"step:error","timestamp":1795610935530,"workflowId":"`+strings.ReplaceAll(evilID, `"`, `\"`)+`","workflowName":"<svg onload=alert(5)>","stepName":"<img src=x onerror=alert(1)>","stepIndex":0,"commit":false,"error":"<iframe src=javascript:alert(7)>","stack":"<script>alert(8)</script>"}`+"\n"+
		`<img src=x onerror=alert(4)>`+"\n")
	b := newTab(t)
	b.nav(base + "/")
	b.waitFor("the list shows", `document.querySelectorAll('table.runs tbody tr').length === 6`, 10*time.Second)
	wfs := evalJS[[]string](b, `[...document.querySelectorAll('table.runs td.wf')].map(e => e.textContent)`)
	if !contains(wfs, hostile) || !contains(wfs, "<svg onload=alert(5)>") {
		t.Errorf("workflow cells %q: want the hostile names as text", wfs)
	}
	b.waitFor("the malformed line is reported", `!document.getElementById('problems-btn').hidden`, 5*time.Second)
	evalJS[bool](b, `document.getElementById('problems-btn').click(), true`)
	b.waitFor("the problems panel lists the line", `document.querySelector('#problems li') !== null`, 5*time.Second)
	if li := evalJS[string](b, `document.querySelector('#problems li').textContent`); !strings.Contains(li, "line ") {
		t.Errorf("problem shown as %q, want its line number", li)
	}
	checkInert := func(where string) {
		t.Helper()
		made := evalJS[[]string](b, `[...document.querySelectorAll('*')].filter(e =>
			[...e.attributes].some(a => a.name.startsWith('on')) || ['IFRAME', 'I', 'OBJECT', 'EMBED'].includes(e.tagName) ||
			(e.tagName === 'IMG' && e.getAttribute('src') !== './assets/favicon.svg') ||
			(e.tagName.toLowerCase() === 'svg' && !e.classList.contains('graph'))).map(e => e.outerHTML.slice(0, 80))`)
		if len(made) != 0 {
			t.Errorf("%s: elements made from trace strings: %q", where, made)
		}
		if n := evalJS[int](b, `document.scripts.length`); n != 1 {
			t.Errorf("%s: %d scripts on the page, want app.js only", where, n)
		}
	}
	checkInert("runs list")

	b.nav(runURL(base, ids["hostile"]))
	b.waitFor("the hostile run shows", `document.querySelector('.run-view h1') !== null`, 10*time.Second)
	if h1 := evalJS[string](b, `document.querySelector('.run-view h1').textContent`); h1 != hostile {
		t.Errorf("title %q, want %q as text", h1, hostile)
	}
	names := evalJS[[]string](b, `[...document.querySelectorAll('svg.graph .node')].map(n => n.dataset.name + '|' + n.querySelector('title').textContent)`)
	if len(names) != 2 || !strings.HasPrefix(names[0], hostile+"|"+hostile) {
		t.Errorf("graph nodes %q, want the hostile step name as text", names)
	}
	if label := evalJS[string](b, `document.querySelector('.tl-row .tl-label').textContent`); !strings.HasPrefix(label, hostile) {
		t.Errorf("timeline label %q", label)
	}
	if msg := evalJS[string](b, `document.querySelector('.attempt-error .msg').textContent`); msg != `<b onmouseover=alert(2)>boom</b>` {
		t.Errorf("error shown as %q", msg)
	}
	if in := evalJS[string](b, `document.querySelector('pre.json[data-key="io-input"]').textContent`); !strings.Contains(in, `"<img src=x onerror=alert(1)>"`) {
		t.Errorf("input shown as %q", in)
	}
	checkInert("hostile run page")

	b.nav(runURL(base, evilID))
	jsID, _ := json.Marshal(evilID)
	b.waitFor("the run with the hostile ID shows", `document.querySelector('.run-view') !== null && document.querySelector('.run-view').dataset.run === `+string(jsID), 10*time.Second)
	if id := evalJS[string](b, `document.querySelector('.run-view .run-id').textContent`); id != evilID {
		t.Errorf("run ID shown as %q, want %q", id, evilID)
	}
	if st := evalJS[string](b, `document.querySelector('.run-error .msg').textContent + '|' + document.querySelector('.run-view h1').textContent`); st != "<iframe src=javascript:alert(7)>|<svg onload=alert(5)>" {
		t.Errorf("error and workflow shown as %q", st)
	}
	checkInert("hostile ID run page")
	if n := b.dialogs.Load(); n != 0 {
		t.Errorf("%d dialogs opened", n)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestBrowserSeedTrace(t *testing.T) {
	t.Parallel()
	path := copyFile(t, seedTrace(t))
	appendFile(t, path, "{\"type\":\"step:start\",\"timestamp\":\n") // line 40: malformed
	src := openTrace(t, path, TraceOptions{})
	base := serve(t, src).URL
	b := newTab(t)
	b.nav(base + "/")
	b.waitFor("the four runs show", `document.querySelectorAll('table.runs tbody tr').length === 4`, 10*time.Second)
	rows := evalJS[map[string]string](b, `Object.fromEntries([...document.querySelectorAll('table.runs tbody tr')].map(r => [r.dataset.run, r.dataset.status]))`)
	want := map[string]string{seedManual: "completed", seedAuto: "completed", seedOrder: "completed", seedImage: "failed"}
	for id, st := range want {
		if rows[id] != st {
			t.Errorf("run %s shows %q, want %q", id, rows[id], st)
		}
	}
	if first := evalJS[string](b, `document.querySelector('table.runs tbody tr').dataset.run`); first != seedImage {
		t.Errorf("first row %s, want the newest run (image-processing)", first)
	}
	b.waitFor("the malformed line is counted", `document.getElementById('problems-btn').textContent.includes('1 malformed line')`, 5*time.Second)

	// The status filter, as a deep link.
	evalJS[bool](b, `document.querySelector('.status-filter button[data-status="failed"]').click(), true`)
	b.waitFor("the failed filter applies", `location.hash.includes('status=failed') && document.querySelectorAll('table.runs tbody tr').length === 1`, 5*time.Second)
	b.nav(base + "/#/?workflow=order-fulfillment")
	b.waitFor("the workflow deep link applies", `document.querySelectorAll('table.runs tbody tr').length === 1 && document.querySelector('table.runs tbody tr').dataset.run === '`+seedOrder+`' && document.getElementById('wf-filter').value === 'order-fulfillment'`, 5*time.Second)
	b.nav(base + "/#/?q=too%20large")
	b.waitFor("the search deep link applies", `document.querySelectorAll('table.runs tbody tr').length === 1 && document.getElementById('search').value === 'too large'`, 5*time.Second)

	// The routes.
	for id, taken := range map[string]string{seedManual: "manual-review", seedAuto: "auto-handle"} {
		b.nav(runURL(base, id))
		b.waitFor("the routing graph shows", `document.querySelector('.run-view[data-run="`+id+`"] svg.graph .node') !== null`, 10*time.Second)
		got := evalJS[map[string]string](b, graphStatuses)
		for _, route := range []string{"auto-handle", "manual-review", "risk-audit"} {
			w := "skipped"
			if route == taken {
				w = "completed"
			}
			if got[route] != w {
				t.Errorf("seed run %s: %s is %q, want %q", id, route, got[route], w)
			}
		}
	}
	// The charge step's three attempts.
	b.nav(runURL(base, seedOrder))
	b.waitFor("the order timeline shows", `document.querySelectorAll('.tl-row[data-name="charge"]').length === 3`, 10*time.Second)
	got := evalJS[[]string](b, `[...document.querySelectorAll('.tl-row[data-name="charge"]')].map(r => r.dataset.status)`)
	if strings.Join(got, " ") != "failed failed completed" {
		t.Errorf("charge attempts %v", got)
	}
	if n := evalJS[int](b, `document.querySelectorAll('.tl-bar.estimated').length`); n != 2 {
		t.Errorf("%d bars marked estimated, want the 2 attempts whose start the seed did not trace", n)
	}
	if raw := evalJS[int](b, `document.querySelectorAll('table.events tr').length`); raw != 12 {
		t.Errorf("%d raw event lines, want 12", raw)
	}
	// The failed image run.
	b.nav(runURL(base, seedImage))
	b.waitFor("the failed run shows", `document.querySelector('.run-view[data-status="failed"] .run-error') !== null`, 10*time.Second)
	if msg := evalJS[string](b, `document.querySelector('.run-error .msg').textContent`); msg != "File too large" {
		t.Errorf("error %q", msg)
	}
	if st := evalJS[string](b, `document.querySelector('svg.graph .node[data-name="validate"]').dataset.status`); st != "failed" {
		t.Errorf("validate %q, want failed", st)
	}
}

// TestBrowserScreenshot saves a screenshot of a run page as a test
// artifact: artifacts/viewer-run.png (and docs/viewer.png with -viewer.docs).
func TestBrowserScreenshot(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "trace.ndjson")
	id := writeShowcase(t, path)
	src := openTrace(t, path, TraceOptions{Name: "./.flux/trace.ndjson"})
	base := serve(t, src).URL
	b := newTab(t)
	b.nav(runURL(base, id))
	b.waitFor("the run page shows", `document.querySelectorAll('.tl-row').length === 10`, 10*time.Second)
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("the screenshot is not a PNG (%d bytes)", len(png))
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	save := func(p string, png []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("saved %s", p)
	}
	save(filepath.Join(root, "artifacts", "viewer-run.png"), png)
	if *updateDocs {
		save(filepath.Join(root, "docs", "viewer.png"), png)
	}
	b.nav(base + "/")
	b.waitFor("the runs list shows", `document.querySelectorAll('table.runs tbody tr').length === 15`, 10*time.Second)
	png, err = chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	save(filepath.Join(root, "artifacts", "viewer-list.png"), png)
}

// writeShowcase writes a trace whose newest run shows every part of the
// run page: a branch taken among three, a step retried twice, commits.
func writeShowcase(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, err := genTrace(f, 12, 1); err != nil {
		t.Fatal(err)
	}
	const id = "01a2f3c4-order-7f1e"
	const wf = "order-routing"
	ts := int64(1795610935000)
	ip := func(i int) *int { return &i }
	fp := func(v float64) *float64 { return &v }
	var buf []byte
	emit := func(at int64, r tracefile.Record) {
		r.Timestamp, r.WorkflowID, r.WorkflowName = ts+at, id, wf
		buf = append(r.AppendJSON(buf[:0]), '\n')
		f.Write(buf)
	}
	step := func(at int64, typ string, name string, i, attempt int, commit bool, dur float64, errMsg string) {
		r := tracefile.Record{Type: typ, StepName: name, StepIndex: ip(i), Commit: commit, Attempt: attempt, Retries: ip(max(attempt-1, 0)), MaxRetries: ip(3), Error: errMsg}
		switch typ {
		case "step:start":
			r.Status = "running"
		case "step:retry":
			r.Status, r.Duration, r.Retries = "running", fp(dur), ip(attempt)
		case "step:skipped":
			r.Status, r.Attempt = "skipped", 0
		default:
			r.Status, r.Duration = "completed", fp(dur)
		}
		emit(at, r)
	}
	in, _ := json.Marshal(map[string]any{"orderId": "ORD-2041", "customer": "c_1942", "amountCents": 12900, "items": []map[string]any{{"sku": "KB-01", "qty": 1}, {"sku": "MS-07", "qty": 2}}})
	emit(0, tracefile.Record{Type: "workflow:start", Status: "running", Input: in})
	step(1, "step:start", "validate", 0, 1, false, 0, "")
	step(13, "step:complete", "validate", 0, 1, false, 12, "")
	step(14, "step:start", "classify", 1, 1, false, 0, "")
	step(22, "step:complete", "classify", 1, 1, false, 8, "")
	step(23, "step:skipped", "auto-approve", 2, 0, false, 0, "")
	step(24, "step:start", "manual-review", 3, 1, false, 0, "")
	step(212, "step:complete", "manual-review", 3, 1, false, 188, "")
	step(213, "step:skipped", "fraud-check", 4, 0, false, 0, "")
	step(214, "step:start", "charge", 5, 1, false, 0, "")
	step(514, "step:retry", "charge", 5, 1, false, 300, "payment gateway timeout")
	step(1515, "step:start", "charge", 5, 2, false, 0, "")
	step(1815, "step:retry", "charge", 5, 2, false, 300, "payment gateway timeout")
	step(3816, "step:start", "charge", 5, 3, false, 0, "")
	step(3958, "step:complete", "charge", 5, 3, false, 142, "")
	step(3959, "step:start", "reserve", 6, 1, true, 0, "")
	step(4020, "step:complete", "reserve", 6, 1, true, 61, "")
	step(4021, "step:start", "notify", 7, 1, true, 0, "")
	step(4057, "step:complete", "notify", 7, 1, true, 36, "")
	data, _ := json.Marshal(map[string]any{"route": "manual", "ticketId": "T-5521", "paymentId": "pay_8f2c", "reservationIds": []string{"R-1", "R-2"}})
	emit(4058, tracefile.Record{Type: "workflow:complete", Status: "completed", Duration: fp(4058), Data: data})
	// Other workflows' runs taught the viewer which nodes are branches.
	for k, route := range []string{"auto-approve", "fraud-check"} {
		rid := fmt.Sprintf("01a2f3c4-order-%04x", k)
		r := func(typ, name string, i int, status string) tracefile.Record {
			return tracefile.Record{Type: typ, WorkflowID: rid, WorkflowName: wf, StepName: name, StepIndex: ip(i), Status: status, Timestamp: ts - 10000 + int64(k)}
		}
		recs := []tracefile.Record{{Type: "workflow:start", WorkflowID: rid, WorkflowName: wf, Status: "running", Timestamp: ts - 10000 + int64(k)}}
		for i, name := range []string{"auto-approve", "manual-review", "fraud-check"} {
			if name != route {
				recs = append(recs, r("step:skipped", name, i+2, "skipped"))
			}
		}
		recs = append(recs, tracefile.Record{Type: "workflow:cancelled", WorkflowID: rid, WorkflowName: wf, Status: "cancelled", Timestamp: ts - 9000 + int64(k)})
		for _, rec := range recs {
			buf = append(rec.AppendJSON(buf[:0]), '\n')
			f.Write(buf)
		}
	}
	return id
}

func TestBrowserPaginationAndSearch(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "trace.ndjson")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	_, want, err := genTrace(f, 120, 9)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	src := openTrace(t, path, TraceOptions{})
	ready(t, src)
	var pages [][]string
	q := Query{Limit: 50}
	for {
		p, err := src.Runs(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, ids(p))
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	if len(pages) != 3 {
		t.Fatalf("%d pages of 50, want 3", len(pages))
	}
	base := serve(t, src).URL
	b := newTab(t)
	b.nav(base + "/")
	firstRow := `document.querySelector('table.runs tbody tr').dataset.run`
	onPage := func(i int) string {
		return fmt.Sprintf(`document.querySelectorAll('table.runs tbody tr').length === %d && %s === %q`, len(pages[i]), firstRow, pages[i][0])
	}
	b.waitFor("page 1 shows", onPage(0)+` && document.getElementById('newer').disabled`, 10*time.Second)
	evalJS[bool](b, `document.getElementById('older').click(), true`)
	b.waitFor("page 2 shows", onPage(1)+` && location.hash.includes('cursor=')`, 5*time.Second)
	evalJS[bool](b, `document.getElementById('older').click(), true`)
	b.waitFor("page 3 shows", onPage(2)+` && document.getElementById('older').disabled`, 5*time.Second)
	evalJS[bool](b, `document.getElementById('newer').click(), true`)
	b.waitFor("page 2 shows again", onPage(1), 5*time.Second)
	// A deep link to page 3 opens on it.
	hash := evalJS[string](b, `location.hash`)
	b.nav(base + "/#/")
	b.waitFor("page 1 shows", onPage(0), 5*time.Second)
	b.nav(base + "/" + hash)
	b.waitFor("the deep link opens page 2", onPage(1), 5*time.Second)

	failed := 0
	for _, s := range want {
		if s == flux.StatusFailed {
			failed++
		}
	}
	b.nav(base + "/#/")
	b.waitFor("page 1 shows", onPage(0), 5*time.Second)
	if err := chromedp.Do(b.ctx, chromedp.SendKeys(chromedp.ID("search"), "memory")); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the search applies", fmt.Sprintf(`location.hash.includes('q=memory') && document.querySelectorAll('table.runs tbody tr').length === %d && [...document.querySelectorAll('table.runs tbody tr')].every(r => r.dataset.status === 'failed')`, failed), 5*time.Second)
	evalJS[bool](b, `(() => { const s = document.getElementById('wf-filter'); s.value = 'image-processing'; s.dispatchEvent(new Event('change')); return true })()`)
	b.waitFor("the workflow filter combines with the search", fmt.Sprintf(`location.hash.includes('workflow=image-processing') && location.hash.includes('q=memory') && document.querySelectorAll('table.runs tbody tr').length === %d`, failed), 5*time.Second)
	evalJS[bool](b, `document.querySelector('.status-filter button[data-status="completed"]').click(), true`)
	b.waitFor("no image run completed", `location.hash.includes('status=completed') && document.querySelector('.empty') !== null`, 5*time.Second)
}

// TestBrowserSearchFindsOldRuns: over a store, the search box finds a run
// that is not among the newest 10,000: the store answers the search.
func TestBrowserSearchFindsOldRuns(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := newEngine(t, flux.Config{Storage: store})
	type in struct{ N int }
	w := flux.New[in, struct{}]("bulk").Step("post", func(c *flux.Ctx[in, struct{}]) error {
		if c.Input.N == 0 {
			return flux.Permanent(errors.New("ledger mismatch xyzzy"))
		}
		return nil
	})
	old, err := flux.Execute(context.Background(), e, w, in{N: 0})
	if err == nil {
		t.Fatal("the oldest run did not fail")
	}
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= 10_050 {
				if _, err := flux.Execute(context.Background(), e, w, in{N: 1}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	base := serve(t, NewStorageSource(store, "runs.db", StorageOptions{})).URL
	b := newTab(t)
	b.nav(base + "/")
	b.waitFor("the newest runs show", `document.querySelectorAll('table.runs tbody tr').length > 0`, 30*time.Second)
	// Typed as the page sees typing (an input event), into the search box
	// of the moment: the list may be drawn again while a browser types.
	evalJS[bool](b, `(() => { const s = document.getElementById('search'); s.value = 'xyzzy'; s.dispatchEvent(new Event('input')); return true })()`)
	b.waitFor("the search finds the oldest run", fmt.Sprintf(`document.querySelectorAll('table.runs tbody tr').length === 1 && document.querySelector('table.runs tbody tr').dataset.run === %q`, old.ID), 30*time.Second)
	b.nav(base + "/#/?q=" + url.QueryEscape(old.ID[:30]))
	b.waitFor("a prefix of its ID finds it too", fmt.Sprintf(`document.querySelectorAll('table.runs tbody tr').length === 1 && document.querySelector('table.runs tbody tr').dataset.run === %q`, old.ID), 30*time.Second)
}

// TestBrowserNodeData: over a store, a run's page shows the data the run
// had after the node picked.
func TestBrowserNodeData(t *testing.T) {
	t.Parallel()
	store := flux.NewMemoryStorage()
	run, err := flux.Execute(context.Background(), newEngine(t, flux.Config{Storage: store}), nodeDataFlow, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	base := serve(t, NewStorageSource(store, "memory", StorageOptions{})).URL
	b := newTab(t)
	b.nav(runURL(base, run.ID))
	b.waitFor("the node menu shows", `document.querySelectorAll('#node-data-pick option').length === 4`, 30*time.Second)
	evalJS[bool](b, `(() => { const s = document.getElementById('node-data-pick'); s.value = '1'; s.dispatchEvent(new Event('change')); return true })()`)
	b.waitFor("the data after b shows", `(() => { const p = document.querySelector('.node-data pre'); return p !== null && p.textContent.includes('"b"') && !p.textContent.includes('"c"') })()`, 30*time.Second)
	evalJS[bool](b, `(() => { const s = document.getElementById('node-data-pick'); s.value = '2'; s.dispatchEvent(new Event('change')); return true })()`)
	b.waitFor("the data after c shows", `(() => { const p = document.querySelector('.node-data pre'); return p !== null && p.textContent.includes('"c"') })()`, 30*time.Second)
}

// TestBrowserWaitingRun: over a store, a waiting run shows in the list and
// its page says what it waits for, until when, and lists its signals; a
// compensated run is marked so.
func TestBrowserWaitingRun(t *testing.T) {
	t.Parallel()
	store := flux.NewMemoryStorage()
	e := newEngine(t, flux.Config{Storage: store, Workers: -1})
	run := waitingRun(t, e, "approval-1")
	if _, err := flux.Execute(context.Background(), e, tripFlow(false, nil), "lisbon", flux.RunID("trip-undone")); err == nil {
		t.Fatal("the trip did not fail")
	}
	base := serve(t, NewStorageSource(store, "memory", StorageOptions{})).URL
	b := newTab(t)

	b.nav(base + "/")
	b.waitFor("the waiting run shows in the list", `document.querySelector('tr[data-run="approval-1"][data-status="waiting"] td.wait') !== null`, 30*time.Second)
	if txt := evalJS[string](b, `document.querySelector('tr[data-run="approval-1"] td.wait').textContent`); !strings.HasPrefix(txt, "waiting at sign-off for signal sign until ") {
		t.Errorf("the waiting row says %q", txt)
	}
	colors := evalJS[map[string]string](b, `Object.fromEntries([...document.querySelectorAll('table.runs .chip')].map(c => [c.dataset.status, getComputedStyle(c).backgroundColor]))`)
	if colors["waiting"] != "rgb(237, 233, 254)" || colors["waiting"] == colors["failed"] {
		t.Errorf("chip colours %v: want waiting in its own (#ede9fe)", colors)
	}
	evalJS[bool](b, `document.querySelector('.status-filter button[data-status="waiting"]').click(), true`)
	b.waitFor("the waiting filter applies", `location.hash.includes('status=waiting') && document.querySelectorAll('table.runs tbody tr').length === 1 && document.querySelector('table.runs tbody tr').dataset.run === 'approval-1'`, 10*time.Second)

	b.nav(runURL(base, "approval-1"))
	b.waitFor("the wait banner shows", `document.querySelector('.run-view[data-status="waiting"] #wait-banner') !== null && document.querySelectorAll('table.signals tbody tr').length === 2`, 30*time.Second)
	banner := evalJS[string](b, `document.getElementById('wait-banner').textContent`)
	wantBanner := regexp.MustCompile(`^Waiting at sign-off for signal sign until (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \(in (1d 23h|2d 0h)\)\.`)
	m := wantBanner.FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("the banner says %q", banner)
	}
	// The time shown is the wait's timeout, in the page's time zone.
	if shown := evalJS[string](b, fmt.Sprintf(`(() => { const d = new Date(%d); const p = (n, w) => String(n).padStart(w || 2, '0');
		return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) + '.' + p(d.getMilliseconds(), 3) })()`,
		run.WakeAt.UnixMilli())); m[1] != shown {
		t.Errorf("the banner's time %s, want the timeout %s", m[1], shown)
	}
	sigs := evalJS[[][]string](b, `[...document.querySelectorAll('table.signals tbody tr')].map(r => [...r.cells].map(c => c.textContent))`)
	if len(sigs) != 2 || len(sigs[0]) != 6 {
		t.Fatalf("signals table %q", sigs)
	}
	if r := sigs[0]; r[0] != "#1" || r[1] != "approve" || r[2] != "click-1" || r[4] != `{"by":"ana"}` || r[5] != "review" {
		t.Errorf("the consumed signal's row: %q", r)
	}
	if r := sigs[1]; r[0] != "#2" || r[1] != "comment" || r[2] != "—" || r[5] != "in inbox" ||
		!strings.HasPrefix(r[4], `{"text":"éé`) || !strings.HasSuffix(r[4], "…") || len([]rune(r[4])) != 120 {
		t.Errorf("the inbox signal's row: %q", r)
	}
	nodes := evalJS[map[string]string](b, `Object.fromEntries([...document.querySelectorAll('svg.graph .node')].map(n => [n.dataset.name, n.dataset.status + ' ' + n.querySelector('.kind').textContent]))`)
	if nodes["sign-off"] != "waiting WAIT" || nodes["review"] != "completed WAIT" || nodes["cool-off"] != "completed SLEEP" || nodes["prepare"] != "completed STEP" {
		t.Errorf("graph nodes %v", nodes)
	}
	if sub := evalJS[string](b, `document.querySelector('svg.graph .node[data-name="sign-off"] .sub').textContent`); sub != "waiting · 48 h 0 m" {
		t.Errorf("the waiting node says %q, want its 48h wait", sub)
	}
	if st := evalJS[string](b, `[...document.querySelectorAll('.tl-row[data-name="sign-off"]')].map(r => r.dataset.status).join()`); st != "waiting" {
		t.Errorf("sign-off's timeline rows %q, want one waiting", st)
	}

	b.nav(runURL(base, "trip-undone"))
	b.waitFor("the compensated run shows", `document.querySelector('.run-view[data-run="trip-undone"] #compensation') !== null`, 30*time.Second)
	if c := evalJS[string](b, `document.getElementById('compensation').textContent`); c != "compensated" {
		t.Errorf("compensation chip %q", c)
	}
	undos := evalJS[[]string](b, `[...document.querySelectorAll('svg.graph .node.k-undo')].map(n => n.querySelector('.kind').textContent + ' ' + n.querySelector('.sub').textContent)`)
	if strings.Join(undos, "|") != "UNDO undoes hotel|UNDO undoes flight" {
		t.Errorf("undo nodes %q", undos)
	}
	if n := evalJS[int](b, `document.querySelectorAll('.tl-row.mark[data-type="workflow:compensating"] .tl-mark').length`); n != 1 {
		t.Errorf("%d compensation marks on the timeline, want 1", n)
	}
}

// TestBrowserSchedules: the schedules view lists a store's schedules with
// their next tick; over a trace it says schedules need a database.
func TestBrowserSchedules(t *testing.T) {
	t.Parallel()
	store := flux.NewMemoryStorage()
	e := newEngine(t, flux.Config{Storage: store, Workers: -1})
	addSchedules(t, e, time.Now())
	base := serve(t, NewStorageSource(store, "memory", StorageOptions{})).URL
	b := newTab(t)
	b.nav(base + "/")
	b.waitFor("the runs list shows", `document.querySelector('.list-view') !== null`, 30*time.Second)
	evalJS[bool](b, `document.getElementById('tab-schedules').click(), true`)
	b.waitFor("the schedules show", `document.querySelector('tr[data-schedule="nightly"]') !== null && document.getElementById('tab-schedules').classList.contains('active')`, 30*time.Second)
	rows := evalJS[map[string][]string](b, `Object.fromEntries([...document.querySelectorAll('table.schedules tbody tr')].map(r => [r.dataset.schedule, [...r.cells].map(c => c.textContent)]))`)
	if len(rows) != 2 {
		t.Fatalf("schedule rows %q, want hourly and nightly", rows)
	}
	n := rows["nightly"]
	if len(n) != 8 || n[0] != "nightly" || n[1] != "nightly-report" || n[2] != "0 2 * * *" || n[3] != "Europe/Paris" || n[4] != "latest" || n[5] != "active" {
		t.Errorf("nightly's row %q", n)
	} else if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \(in (\d+d \d+h|\d+h \d+m|\d+m \d+s|\d+s)\)$`).MatchString(n[7]) {
		t.Errorf("nightly's next tick %q, want a time and how far it is", n[7])
	}
	if h := rows["hourly"]; len(h) != 8 || h[3] != "UTC" || h[5] != "paused" || h[7] != "— (paused)" || h[6] == "—" {
		t.Errorf("the paused schedule's row %q", h)
	}
	evalJS[bool](b, `document.querySelector('tr[data-schedule="nightly"] td.wf a').click(), true`)
	b.waitFor("the workflow link opens its runs", `location.hash.includes('workflow=nightly-report') && document.getElementById('tab-runs').classList.contains('active')`, 10*time.Second)

	_, _, traceBase := sampleTrace(t)
	b.nav(traceBase + "/#/schedules")
	b.waitFor("a trace has no schedules", `document.getElementById('schedules-note') !== null`, 30*time.Second)
	if note := evalJS[string](b, `document.getElementById('schedules-note').textContent`); !strings.HasPrefix(note, "Schedules need a database") {
		t.Errorf("over a trace the schedules view says %q", note)
	}
}
