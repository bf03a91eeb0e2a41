package fluxhttp_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/fluxhttp"
)

func TestMountUnderStripPrefix(t *testing.T) {
	t.Parallel()
	b := setup(t)
	mux := http.NewServeMux()
	mux.Handle("/flux/", http.StripPrefix("/flux", b.handler))
	r := do(t, mux, "GET", "/flux/workflows", "").expect(t, http.StatusOK)
	if got := fmt.Sprint(r.body["workflows"]); got != "[block greet pay]" {
		t.Fatalf("workflows %s", got)
	}
	r = do(t, mux, "POST", "/flux/workflows/greet/runs", `{"name":"ann"}`).expect(t, http.StatusAccepted)
	if loc := r.Header().Get("Location"); loc != "/flux/runs/"+r.str("id") {
		t.Fatalf("Location %q for run %q", loc, r.str("id"))
	}
	r = do(t, mux, "GET", r.Header().Get("Location")+"?wait=10s", "").expect(t, http.StatusOK)
	if r.str("status") != "completed" || r.str("data", "greeting") != "hello ann" {
		t.Fatalf("run %v", r.body)
	}
}

func TestMountWithPrefix(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *fluxhttp.Config) { c.Prefix = "/flux/" })
	mux := http.NewServeMux()
	mux.Handle("/flux/", b.handler)
	r := do(t, mux, "POST", "/flux/workflows/greet/runs?wait=10s", `{"name":"bo"}`).expect(t, http.StatusOK)
	if r.str("status") != "completed" || r.str("data", "greeting") != "hello bo" {
		t.Fatalf("run %v", r.body)
	}
	do(t, mux, "GET", "/flux/runs/"+r.str("id"), "").expect(t, http.StatusOK)
	do(t, b.handler, "GET", "/other/workflows", "").problem(t, http.StatusNotFound, "not-found")
}

func TestMutationsNeedAuthorize(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *fluxhttp.Config) { c.Authorize = nil })
	for _, target := range []string{"/workflows/greet/runs", "/runs/x/retry?step=hello", "/runs/x/resume", "/runs/x/cancel"} {
		r := do(t, b.handler, "POST", target, `{"name":"a"}`).problem(t, http.StatusForbidden, "forbidden")
		if !strings.Contains(r.str("detail"), "Authorize") {
			t.Fatalf("%s: detail %q does not say to set Authorize", target, r.str("detail"))
		}
	}
	// Reads stay open.
	do(t, b.handler, "GET", "/workflows", "").expect(t, http.StatusOK)
}

func TestAuthorizeRefuses(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *fluxhttp.Config) {
		c.Authorize = func(r *http.Request) error {
			switch r.Header.Get("Authorization") {
			case "Bearer good":
				return nil
			case "":
				return &fluxhttp.Problem{Type: "urn:flux:problem:unauthenticated", Title: "Unauthenticated", Status: 401, Detail: "send a token"}
			}
			return errors.New("token not allowed to start runs")
		}
	})
	r := do(t, b.handler, "POST", "/workflows/greet/runs", `{"name":"a"}`).expect(t, http.StatusUnauthorized)
	if r.str("detail") != "send a token" {
		t.Fatalf("problem %v", r.body)
	}
	r = do(t, b.handler, "POST", "/workflows/greet/runs", `{"name":"a"}`, "Authorization", "Bearer bad").problem(t, http.StatusForbidden, "forbidden")
	if r.str("detail") != "token not allowed to start runs" {
		t.Fatalf("problem %v", r.body)
	}
	do(t, b.handler, "POST", "/workflows/greet/runs", `{"name":"a"}`, "Authorization", "Bearer good").expect(t, http.StatusAccepted)
}

func TestAuthorizeRead(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *fluxhttp.Config) {
		c.AuthorizeRead = func(r *http.Request) error {
			if r.Header.Get("X-Reader") == "" {
				return errors.New("readers only")
			}
			return nil
		}
	})
	for _, target := range []string{"/workflows", "/runs", "/runs/x", "/openapi.json"} {
		do(t, b.handler, "GET", target, "").problem(t, http.StatusForbidden, "forbidden")
	}
	do(t, b.handler, "GET", "/workflows", "", "X-Reader", "1").expect(t, http.StatusOK)
}

func TestStartAccepted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := do(t, b.handler, "POST", "/workflows/greet/runs", `{"name":"cy"}`).expect(t, http.StatusAccepted)
	if r.str("id") == "" || r.str("workflow") != "greet" || r.Header().Get("Location") != "/runs/"+r.str("id") {
		t.Fatalf("202 %v, Location %q", r.body, r.Header().Get("Location"))
	}
	r = do(t, b.handler, "GET", "/runs/"+r.str("id")+"?wait=10s", "").expect(t, http.StatusOK)
	steps, _ := r.body["steps"].([]any)
	if r.str("status") != "completed" || len(steps) != 1 || r.str("createdAt") == "" || r.str("finishedAt") == "" {
		t.Fatalf("run %v", r.body)
	}
	step := steps[0].(map[string]any)
	if step["name"] != "hello" || step["status"] != "completed" || len(step["attempts"].([]any)) != 1 {
		t.Fatalf("step %v", step)
	}
}

func TestStartWait(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := do(t, b.handler, "POST", "/workflows/greet/runs?wait=10s", `{"name":"di"}`).expect(t, http.StatusOK)
	if r.str("status") != "completed" || r.str("data", "greeting") != "hello di" {
		t.Fatalf("run %v", r.body)
	}
	// A failed run ended too: 200 with its error.
	b.failNotify.Store(true)
	r = do(t, b.handler, "POST", "/workflows/pay/runs?wait=10s", `{"name":"x"}`).expect(t, http.StatusOK)
	if r.str("status") != "failed" || !strings.Contains(r.str("error"), "mail server down") {
		t.Fatalf("run %v", r.body)
	}
}

func TestStartWaitTimesOut(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := do(t, b.handler, "POST", "/workflows/block/runs?wait=20ms", `{"name":"ed"}`).expect(t, http.StatusAccepted)
	id := r.str("id")
	if r.Header().Get("Location") != "/runs/"+id {
		t.Fatalf("Location %q", r.Header().Get("Location"))
	}
	if got := <-b.started; got != id {
		t.Fatalf("started %s, want %s", got, id)
	}
	r = do(t, b.handler, "GET", "/runs/"+id, "").expect(t, http.StatusOK)
	if r.str("status") != "running" {
		t.Fatalf("status %q, want running", r.str("status"))
	}
	close(b.release)
	r = do(t, b.handler, "GET", "/runs/"+id+"?wait=10s", "").expect(t, http.StatusOK)
	if r.str("status") != "completed" || r.str("data", "greeting") != "released" {
		t.Fatalf("run %v", r.body)
	}
}

func TestIdempotentStart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	key := "order/42"
	r1 := do(t, b.handler, "POST", "/workflows/greet/runs?wait=10s", `{"name":"fay"}`, "Idempotency-Key", key).expect(t, http.StatusOK)
	r2 := do(t, b.handler, "POST", "/workflows/greet/runs", `{"name":"other"}`, "Idempotency-Key", key).expect(t, http.StatusAccepted)
	if r1.str("id") != key || r2.str("id") != key || r2.str("status") != "completed" {
		t.Fatalf("first %v, second %v", r1.body, r2.body)
	}
	if loc := r2.Header().Get("Location"); loc != "/runs/"+url.PathEscape(key) {
		t.Fatalf("Location %q", loc)
	}
	r := do(t, b.handler, "GET", r2.Header().Get("Location"), "").expect(t, http.StatusOK)
	if r.str("data", "greeting") != "hello fay" {
		t.Fatalf("the second start changed the run: %v", r.body)
	}
	r = do(t, b.handler, "GET", "/runs?workflow=greet", "").expect(t, http.StatusOK)
	if n := len(r.body["runs"].([]any)); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
	// The key of a run of another workflow.
	do(t, b.handler, "POST", "/workflows/pay/runs", `{"name":"x"}`, "Idempotency-Key", key).problem(t, http.StatusConflict, "wrong-workflow")
}

func TestStartBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name, target, body string
		code               int
		typ, field         string
	}{
		{"syntax", "/workflows/greet/runs", `{"name":`, 400, "bad-json", ""},
		{"not JSON", "/workflows/greet/runs", `hello`, 400, "bad-json", ""},
		{"empty", "/workflows/greet/runs", ``, 400, "bad-json", ""},
		{"trailing", "/workflows/greet/runs", `{"name":"a"} {}`, 400, "bad-json", ""},
		{"wrong type", "/workflows/greet/runs", `{"name":"a","count":"two"}`, 400, "invalid-input", "count"},
		{"wrong element", "/workflows/greet/runs", `{"name":"a","tags":["x",3]}`, 400, "invalid-input", "tags"},
		{"unknown field", "/workflows/greet/runs", `{"name":"a","cuont":2}`, 400, "invalid-input", "cuont"},
		{"not an object", "/workflows/greet/runs", `[1]`, 400, "invalid-input", ""},
		{"validate", "/workflows/greet/runs", `{"name":""}`, 400, "invalid-input", ""},
		{"unknown workflow", "/workflows/nope/runs", `{}`, 404, "workflow-not-found", ""},
		{"bad wait", "/workflows/greet/runs?wait=soon", `{"name":"a"}`, 400, "bad-request", ""},
		{"over MaxPayloadBytes", "/workflows/greet/runs", `{"name":"` + strings.Repeat("a", 2000) + `"}`, 413, "payload-too-large", ""},
		{"over MaxBodyBytes", "/workflows/greet/runs", `{"name":"` + strings.Repeat("a", 5000) + `"}`, 413, "payload-too-large", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, b.handler, "POST", tc.target, tc.body).problem(t, tc.code, tc.typ)
			if r.str("field") != tc.field || r.str("detail") == "" {
				t.Fatalf("problem %v, want field %q", r.body, tc.field)
			}
		})
	}
	r := do(t, b.handler, "POST", "/workflows/greet/runs", `{"name":`).expect(t, 400)
	if r.body["offset"] != float64(8) {
		t.Fatalf("offset %v, want 8", r.body["offset"])
	}
	r = do(t, b.handler, "POST", "/workflows/greet/runs", `{"name":""}`).expect(t, 400)
	if !strings.Contains(r.str("detail"), "name is required") {
		t.Fatalf("detail %q", r.str("detail"))
	}
	r = do(t, b.handler, "GET", "/runs", "").expect(t, http.StatusOK)
	if n := len(r.body["runs"].([]any)); n != 0 {
		t.Fatalf("bad input stored %d runs", n)
	}
}

func TestAllowUnknownFields(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *fluxhttp.Config) { c.AllowUnknownFields = true })
	do(t, b.handler, "POST", "/workflows/greet/runs", `{"name":"a","extra":1}`).expect(t, http.StatusAccepted)
}

func TestGetRunNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	do(t, b.handler, "GET", "/runs/nope", "").problem(t, http.StatusNotFound, "run-not-found")
	do(t, b.handler, "GET", "/runs/nope?wait=x", "").problem(t, http.StatusBadRequest, "bad-request")
	do(t, b.handler, "GET", "/nope", "").problem(t, http.StatusNotFound, "not-found")
	do(t, b.handler, "GET", "/runs/a/b/c", "").problem(t, http.StatusNotFound, "not-found")
}

func TestListRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ids []string
	for i := range 3 {
		r := do(t, b.handler, "POST", "/workflows/greet/runs?wait=10s", fmt.Sprintf(`{"name":"n%d"}`, i)).expect(t, http.StatusOK)
		ids = append(ids, r.str("id"))
	}
	b.failNotify.Store(true)
	failed := do(t, b.handler, "POST", "/workflows/pay/runs?wait=10s", `{"name":"p"}`).expect(t, http.StatusOK).str("id")

	r := do(t, b.handler, "GET", "/runs?status=failed", "").expect(t, http.StatusOK)
	if runs := r.body["runs"].([]any); len(runs) != 1 || runs[0].(map[string]any)["id"] != failed {
		t.Fatalf("failed runs %v", runs)
	}
	r = do(t, b.handler, "GET", "/runs?search=mail+server", "").expect(t, http.StatusOK)
	if runs := r.body["runs"].([]any); len(runs) != 1 {
		t.Fatalf("search found %v", runs)
	}
	r = do(t, b.handler, "GET", "/runs?status=completed,failed&workflow=greet", "").expect(t, http.StatusOK)
	if runs := r.body["runs"].([]any); len(runs) != 3 {
		t.Fatalf("completed greet runs %v", runs)
	}
	future := url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))
	r = do(t, b.handler, "GET", "/runs?since="+future, "").expect(t, http.StatusOK)
	if runs := r.body["runs"].([]any); len(runs) != 0 {
		t.Fatalf("since the future: %v", runs)
	}
	r = do(t, b.handler, "GET", "/runs?until="+future+"&workflow=greet", "").expect(t, http.StatusOK)
	if runs := r.body["runs"].([]any); len(runs) != 3 {
		t.Fatalf("until the future: %v", runs)
	}
	// Pages of one, following the cursor.
	seen := map[string]bool{}
	cursor := ""
	for range 4 {
		r = do(t, b.handler, "GET", "/runs?workflow=greet&limit=1&cursor="+url.QueryEscape(cursor), "").expect(t, http.StatusOK)
		for _, run := range r.body["runs"].([]any) {
			seen[run.(map[string]any)["id"].(string)] = true
		}
		if cursor = r.str("next"); cursor == "" {
			break
		}
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("paging missed run %s: saw %v", id, seen)
		}
	}
	for _, q := range []string{"status=done", "since=yesterday", "limit=0", "limit=x", "cursor=!!"} {
		do(t, b.handler, "GET", "/runs?"+q, "").problem(t, http.StatusBadRequest, "bad-request")
	}
}

func TestRetryFromStep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.failNotify.Store(true)
	id := do(t, b.handler, "POST", "/workflows/pay/runs?wait=10s", `{"name":"p"}`).expect(t, http.StatusOK).str("id")

	do(t, b.handler, "POST", "/runs/"+id+"/retry?step=charge", "").problem(t, http.StatusConflict, "committed")
	do(t, b.handler, "POST", "/runs/"+id+"/retry?step=nope", "").problem(t, http.StatusNotFound, "step-not-found")
	do(t, b.handler, "POST", "/runs/"+id+"/retry", "").problem(t, http.StatusBadRequest, "bad-request")
	do(t, b.handler, "POST", "/runs/"+id+"/retry?step=notify&force=maybe", "").problem(t, http.StatusBadRequest, "bad-request")
	do(t, b.handler, "POST", "/runs/nope/retry?step=notify", "").problem(t, http.StatusNotFound, "run-not-found")

	b.failNotify.Store(false)
	r := do(t, b.handler, "POST", "/runs/"+id+"/retry?step=notify&wait=10s", "").expect(t, http.StatusOK)
	if r.str("status") != "completed" || r.body["data"].(map[string]any)["notified"] != true ||
		r.body["data"].(map[string]any)["charged"] != float64(1) {
		t.Fatalf("run %v", r.body)
	}
	// Force replays the commit.
	r = do(t, b.handler, "POST", "/runs/"+id+"/retry?step=charge&force=true&wait=10s", "").expect(t, http.StatusOK)
	// The data before charge is restored, so it is charged once in it, but
	// the commit ran a second time.
	charge := r.body["steps"].([]any)[1].(map[string]any)
	if r.str("status") != "completed" || charge["name"] != "charge" || len(charge["attempts"].([]any)) != 2 {
		t.Fatalf("run %v", r.body)
	}
}

func TestRetryAccepted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := do(t, b.handler, "POST", "/workflows/block/runs", `{"name":"q"}`).expect(t, http.StatusAccepted).str("id")
	<-b.started
	do(t, b.handler, "POST", "/runs/"+id+"/cancel", "").expect(t, http.StatusOK)
	// Without wait the answer comes once the engine took the run again.
	r := do(t, b.handler, "POST", "/runs/"+id+"/retry?step=wait", "").expect(t, http.StatusAccepted)
	if r.Header().Get("Location") != "/runs/"+id || r.str("id") != id {
		t.Fatalf("202 %v, Location %q", r.body, r.Header().Get("Location"))
	}
	<-b.started
	// A second replay while it executes here.
	do(t, b.handler, "POST", "/runs/"+id+"/resume", "").problem(t, http.StatusConflict, "run-active")
	close(b.release)
	r = do(t, b.handler, "GET", "/runs/"+id+"?wait=10s", "").expect(t, http.StatusOK)
	if r.str("status") != "completed" {
		t.Fatalf("run %v", r.body)
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.failNotify.Store(true)
	id := do(t, b.handler, "POST", "/workflows/pay/runs?wait=10s", `{"name":"p"}`).expect(t, http.StatusOK).str("id")
	b.failNotify.Store(false)
	r := do(t, b.handler, "POST", "/runs/"+id+"/resume?wait=10s", "").expect(t, http.StatusOK)
	if r.str("status") != "completed" || r.body["data"].(map[string]any)["charged"] != float64(1) {
		t.Fatalf("run %v", r.body)
	}
	// A completed run is returned as it is.
	r = do(t, b.handler, "POST", "/runs/"+id+"/resume", "").expect(t, http.StatusOK)
	if r.str("status") != "completed" {
		t.Fatalf("run %v", r.body)
	}
	do(t, b.handler, "POST", "/runs/nope/resume", "").problem(t, http.StatusNotFound, "run-not-found")
}

func TestCancel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := do(t, b.handler, "POST", "/workflows/block/runs", `{"name":"q"}`).expect(t, http.StatusAccepted).str("id")
	<-b.started
	r := do(t, b.handler, "POST", "/runs/"+id+"/cancel", "").expect(t, http.StatusOK)
	if r.str("run", "status") != "cancelled" || r.body["elsewhere"] != false || r.str("owner") != b.engine.Owner() ||
		!strings.Contains(r.str("detail"), "cancelled here") {
		t.Fatalf("cancel %v", r.body)
	}
	r = do(t, b.handler, "POST", "/runs/"+id+"/cancel", "").expect(t, http.StatusOK)
	if !strings.Contains(r.str("detail"), "already cancelled") {
		t.Fatalf("second cancel %v", r.body)
	}
	done := do(t, b.handler, "POST", "/workflows/greet/runs?wait=10s", `{"name":"a"}`).expect(t, http.StatusOK).str("id")
	do(t, b.handler, "POST", "/runs/"+done+"/cancel", "").problem(t, http.StatusConflict, "run-finished")
	do(t, b.handler, "POST", "/runs/nope/cancel", "").problem(t, http.StatusNotFound, "run-not-found")
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := do(t, b.handler, "DELETE", "/runs/x", "").problem(t, http.StatusMethodNotAllowed, "method-not-allowed")
	if r.Header().Get("Allow") != "GET" {
		t.Fatalf("Allow %q", r.Header().Get("Allow"))
	}
	r = do(t, b.handler, "GET", "/workflows/greet/runs", "").problem(t, http.StatusMethodNotAllowed, "method-not-allowed")
	if r.Header().Get("Allow") != "POST" {
		t.Fatalf("Allow %q", r.Header().Get("Allow"))
	}
	do(t, b.handler, "HEAD", "/workflows", "").expect(t, http.StatusOK)
}

func TestCORS(t *testing.T) {
	t.Parallel()
	closed := setup(t)
	r := do(t, closed.handler, "GET", "/workflows", "", "Origin", "https://app.example").expect(t, http.StatusOK)
	if len(r.Header().Values("Access-Control-Allow-Origin")) != 0 {
		t.Fatalf("CORS header without AllowOrigins: %v", r.Header())
	}
	do(t, closed.handler, "OPTIONS", "/workflows", "", "Origin", "https://app.example",
		"Access-Control-Request-Method", "GET").problem(t, http.StatusMethodNotAllowed, "method-not-allowed")

	open := setup(t, func(c *fluxhttp.Config) { c.AllowOrigins = []string{"https://app.example"} })
	r = do(t, open.handler, "GET", "/workflows", "", "Origin", "https://app.example").expect(t, http.StatusOK)
	if r.Header().Get("Access-Control-Allow-Origin") != "https://app.example" || r.Header().Get("Vary") != "Origin" {
		t.Fatalf("headers %v", r.Header())
	}
	r = do(t, open.handler, "OPTIONS", "/workflows/greet/runs", "", "Origin", "https://app.example",
		"Access-Control-Request-Method", "POST").expect(t, http.StatusNoContent)
	if r.Header().Get("Access-Control-Allow-Methods") != "GET, POST" ||
		!strings.Contains(r.Header().Get("Access-Control-Allow-Headers"), "Idempotency-Key") {
		t.Fatalf("preflight headers %v", r.Header())
	}
	r = do(t, open.handler, "GET", "/workflows", "", "Origin", "https://evil.example").expect(t, http.StatusOK)
	if len(r.Header().Values("Access-Control-Allow-Origin")) != 0 {
		t.Fatalf("CORS header for another origin: %v", r.Header())
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	do(t, b.handler, "GET", "/metrics", "").problem(t, http.StatusNotFound, "not-found")
	m := setup(t, func(c *fluxhttp.Config) {
		c.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "flux_runs 1") })
	})
	r := do(t, m.handler, "GET", "/metrics", "").expect(t, http.StatusOK)
	if r.Body.String() != "flux_runs 1\n" {
		t.Fatalf("metrics %q", r.Body)
	}
}

// failingStore is a storage whose reads fail with an error Flux does not
// classify.
type failingStore struct{ flux.Storage }

func (failingStore) Get(context.Context, string) (*flux.Run, error) {
	return nil, errors.New("disk on fire at /secret/path")
}

func TestStorageDown(t *testing.T) {
	t.Parallel()
	store := flux.NewMemoryStorage()
	e, err := flux.NewEngine(flux.Config{Storage: failingStore{store}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	h, err := fluxhttp.New(fluxhttp.Config{Engine: e, Authorize: allow, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, h, "GET", "/runs/x", "").problem(t, http.StatusServiceUnavailable, "unavailable")
	if strings.Contains(r.Body.String(), "secret") {
		t.Fatalf("the storage error leaked: %s", r.Body)
	}
	// A closed store.
	b := setup(t)
	_ = b.engine.Close()
	do(t, b.handler, "POST", "/workflows/greet/runs", `{"name":"a"}`).problem(t, http.StatusServiceUnavailable, "unavailable")
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	if _, err := fluxhttp.New(fluxhttp.Config{}); err == nil {
		t.Fatal("New without an engine succeeded")
	}
	e, err := flux.NewEngine(flux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	w := flux.New[greetIn, greetData]("w").Step("s", func(*flux.Ctx[greetIn, greetData]) error { return nil })
	if _, err := fluxhttp.New(fluxhttp.Config{Engine: e}, fluxhttp.Workflow(w), fluxhttp.Workflow(w)); err == nil {
		t.Fatal("New with a workflow twice succeeded")
	}
	bad := flux.New[greetIn, greetData]("bad")
	if _, err := fluxhttp.New(fluxhttp.Config{Engine: e}, fluxhttp.Workflow(bad)); !errors.Is(err, flux.ErrInvalidDefinition) {
		t.Fatalf("New with an invalid workflow: %v", err)
	}
}

func TestServer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := httptest.NewServer(b.handler)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/runs/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
