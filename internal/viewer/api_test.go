package viewer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
)

// serve starts a viewer of src on a test server.
func serve(t testing.TB, src Source) *httptest.Server {
	t.Helper()
	v := New(src, Options{})
	ts := httptest.NewServer(v)
	t.Cleanup(func() {
		v.Close()
		ts.Close()
	})
	return ts
}

func get(t testing.TB, ts *httptest.Server, path string, v any) *http.Response {
	t.Helper()
	res, err := ts.Client().Get(ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if v != nil {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: decoding the JSON: %v", path, err)
		}
	}
	return res
}

func TestAPI(t *testing.T) {
	t.Parallel()
	src := openTrace(t, seedTrace(t), TraceOptions{})
	ready(t, src)
	ts := serve(t, src)

	var p Page
	res := get(t, ts, "/api/runs?status=failed,completed&limit=2", &p)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("runs: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if len(p.Runs) != 2 || p.Total != 4 || p.Next == "" || p.Runs[0].ID != seedImage {
		t.Errorf("first page: %d runs of %d, next %q, first %v", len(p.Runs), p.Total, p.Next, ids(&p))
	}
	var p2 Page
	get(t, ts, "/api/runs?status=failed&status=completed&limit=2&cursor="+p.Next, &p2)
	if got := ids(&p2); len(got) != 2 || got[0] != seedAuto || p2.Next != "" {
		t.Errorf("second page = %v next %q, want the two routing runs and no next", got, p2.Next)
	}
	var wf Page
	get(t, ts, "/api/runs?workflow=order-fulfillment", &wf)
	if got := ids(&wf); len(got) != 1 || got[0] != seedOrder {
		t.Errorf("workflow filter = %v", got)
	}
	var search Page
	get(t, ts, "/api/runs?q=too+LARGE", &search)
	if got := ids(&search); len(got) != 1 || got[0] != seedImage {
		t.Errorf("search = %v", got)
	}

	var d RunDetail
	res = get(t, ts, "/api/run?id="+seedOrder, &d)
	if res.StatusCode != 200 || d.ID != seedOrder || len(d.Nodes) != 4 || len(d.Events) != 12 {
		t.Errorf("run: %d, %s with %d nodes and %d events", res.StatusCode, d.ID, len(d.Nodes), len(d.Events))
	}
	var e struct{ Error string }
	if res := get(t, ts, "/api/run?id=nope", &e); res.StatusCode != 404 || !strings.Contains(e.Error, "not in") {
		t.Errorf("unknown run: %d %q", res.StatusCode, e.Error)
	}
	if res := get(t, ts, "/api/run", &e); res.StatusCode != 400 {
		t.Errorf("no id: %d", res.StatusCode)
	}
	if res := get(t, ts, "/api/runs?cursor=x", &e); res.StatusCode != 400 || !strings.Contains(e.Error, "cursor") {
		t.Errorf("bad cursor: %d %q", res.StatusCode, e.Error)
	}
	if res := get(t, ts, "/api/runs?limit=ten", &e); res.StatusCode != 400 {
		t.Errorf("bad limit: %d", res.StatusCode)
	}
	var st State
	if get(t, ts, "/api/state", &st); st.Kind != "trace" || st.Runs != 4 || !st.Ready {
		t.Errorf("state = %+v", st)
	}
}

func TestStaticAndHeaders(t *testing.T) {
	t.Parallel()
	src := openTrace(t, seedTrace(t), TraceOptions{})
	ts := serve(t, src)
	for path, ctype := range map[string]string{"/": "text/html", "/assets/app.js": "text/javascript", "/assets/app.css": "text/css", "/assets/favicon.svg": "image/svg+xml"} {
		res := get(t, ts, path, nil)
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), ctype) {
			t.Errorf("%s: %d %s, want 200 %s", path, res.StatusCode, res.Header.Get("Content-Type"), ctype)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
	if res := get(t, ts, "/nope", nil); res.StatusCode != 404 {
		t.Errorf("unknown path: %d", res.StatusCode)
	}
	// DNS rebinding: a page on another origin resolving to 127.0.0.1.
	req, _ := http.NewRequest("GET", ts.URL+"/api/runs", nil)
	req.Host = "evil.example:80"
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d, want 421", res.StatusCode)
	}
	for _, h := range []string{"localhost:4280", "127.0.0.1", "[::1]:80", "LOCALHOST"} {
		if !loopbackHost(h) {
			t.Errorf("loopbackHost(%q) = false", h)
		}
	}
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data string
}

func readEvents(r io.Reader) <-chan sseEvent {
	out := make(chan sseEvent, 16)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(r)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			case line == "" && ev.name != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	return out
}

func TestEventsStream(t *testing.T) {
	t.Parallel()
	lines := seedLines(t)
	path := copyFile(t, seedTrace(t))
	writeLines := func(ls []string) {
		appendFile(t, path, strings.Join(ls, ""))
	}
	// Start with the first run only.
	if err := truncate(path, lines[:12]); err != nil {
		t.Fatal(err)
	}
	src := openTrace(t, path, TraceOptions{})
	ready(t, src)
	ts := serve(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/events", nil)
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := readEvents(res.Body)
	timeout := time.After(20 * time.Second)
	next := func() sseEvent {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the event stream ended")
			}
			return ev
		case <-timeout:
			t.Fatal("timed out waiting for an event")
		}
		return sseEvent{}
	}
	if ev := next(); ev.name != "hello" || !strings.Contains(ev.data, `"kind":"trace"`) {
		t.Fatalf("first event %+v, want hello with the state", ev)
	}
	writeLines(lines[12:24])
	for {
		ev := next()
		var data eventData
		if err := json.Unmarshal([]byte(ev.data), &data); err != nil {
			t.Fatalf("event %q: %v", ev.data, err)
		}
		if ev.name == "change" && len(data.Runs) == 1 && data.Runs[0] == seedAuto {
			if data.State.Runs != 2 {
				t.Errorf("the change's state has %d runs, want 2", data.State.Runs)
			}
			break
		}
	}
	// Closing the server ends the stream.
	cancel()
	for range events {
	}
}

func truncate(path string, lines []string) error {
	return writeFile(path, strings.Join(lines, ""))
}

func TestStorageAPI(t *testing.T) {
	t.Parallel()
	store := flux.NewMemoryStorage()
	ids := runSamples(t, newEngine(t, flux.Config{Storage: store}))
	ts := serve(t, NewStorageSource(store, "memory", StorageOptions{}))
	var p Page
	get(t, ts, "/api/runs", &p)
	if len(p.Runs) != 5 || p.Total != -1 {
		t.Errorf("%d runs, total %d; want 5 and unknown total", len(p.Runs), p.Total)
	}
	var d RunDetail
	get(t, ts, "/api/run?id="+ids["order"], &d)
	if len(d.Raw) == 0 || len(d.Nodes) != 3 {
		t.Errorf("stored run: raw %d bytes, %d nodes", len(d.Raw), len(d.Nodes))
	}
}

// trailData is the data of nodeDataFlow.
type trailData struct {
	Trail []string `json:"trail"`
}

// nodeDataFlow leaves different data at each node.
var nodeDataFlow = flux.New[struct{}, trailData]("trail").
	Step("a", func(c *flux.Ctx[struct{}, trailData]) error { c.Data.Trail = append(c.Data.Trail, "a"); return nil }).
	Step("b", func(c *flux.Ctx[struct{}, trailData]) error { c.Data.Trail = append(c.Data.Trail, "b"); return nil }).
	Step("c", func(c *flux.Ctx[struct{}, trailData]) error { c.Data.Trail = append(c.Data.Trail, "c"); return nil })

// TestNodeDataAPI: /api/node-data gives the data a run had after a node,
// over a store; bad requests and sources without it say so.
func TestNodeDataAPI(t *testing.T) {
	t.Parallel()
	store := flux.NewMemoryStorage()
	run, err := flux.Execute(context.Background(), newEngine(t, flux.Config{Storage: store}), nodeDataFlow, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	ts := serve(t, NewStorageSource(store, "memory", StorageOptions{}))
	var d RunDetail
	get(t, ts, "/api/run?id="+run.ID, &d)
	if !d.NodeData {
		t.Error("a storage source's run detail does not offer node data")
	}
	for i, want := range []string{`{"trail":["a"]}`, `{"trail":["a","b"]}`, `{"trail":["a","b","c"]}`} {
		var got struct{ Data json.RawMessage }
		if res := get(t, ts, fmt.Sprintf("/api/node-data?id=%s&index=%d", run.ID, i), &got); res.StatusCode != 200 || string(got.Data) != want {
			t.Errorf("data after node %d: %d %s, want %s", i, res.StatusCode, got.Data, want)
		}
	}
	var e struct{ Error string }
	for path, code := range map[string]int{
		"/api/node-data?id=" + run.ID + "&index=3":   400,
		"/api/node-data?id=" + run.ID + "&index=one": 400,
		"/api/node-data?index=0":                     400,
		"/api/node-data?id=nope&index=0":             404,
	} {
		if res := get(t, ts, path, &e); res.StatusCode != code || e.Error == "" {
			t.Errorf("GET %s: %d %q, want %d with an error", path, res.StatusCode, e.Error, code)
		}
	}
	// A trace does not keep each node's data.
	path := filepath.Join(t.TempDir(), "t.ndjson")
	if err := writeFile(path, ""); err != nil {
		t.Fatal(err)
	}
	tr := serve(t, openTrace(t, path, TraceOptions{}))
	if res := get(t, tr, "/api/node-data?id=x&index=0", &e); res.StatusCode != 404 || !strings.Contains(e.Error, "does not keep") {
		t.Errorf("node data of a trace: %d %q", res.StatusCode, e.Error)
	}
}
