package fluxhttp_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/fluxhttp"
	"github.com/flux-go/flux/sqlite"
)

// TestCancelElsewhere cancels, through engine B's handler, a run that
// engine A executes: both share one SQLite file. The answer names A as
// the owner, and A notices (its lease is gone) and stops the run.
func TestCancelElsewhere(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "flux.db")
	started, stopped := make(chan string, 1), make(chan error, 1)
	flow := flux.New[greetIn, greetData]("block").
		Step("wait", func(c *flux.Ctx[greetIn, greetData]) error {
			started <- c.RunID()
			<-c.Done()
			stopped <- context.Cause(c)
			return c.Err()
		}, flux.Timeout(time.Minute))
	open := func(workers int) *flux.Engine {
		store, err := sqlite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		e, err := flux.NewEngine(flux.Config{Storage: store, Workers: workers, Logger: quiet,
			LeaseDuration: 300 * time.Millisecond, DefaultStepOptions: []flux.StepOption{flux.Retries(0)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = e.Close()
			_ = store.Close()
		})
		return e
	}
	a := open(0)
	b := open(-1) // B executes nothing: the run stays A's
	h, err := fluxhttp.New(fluxhttp.Config{Engine: b, Authorize: allow, Logger: quiet}, fluxhttp.Workflow(flow))
	if err != nil {
		t.Fatal(err)
	}
	id, err := flux.Start(t.Context(), a, flow, greetIn{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if got := <-started; got != id {
		t.Fatalf("started %s, want %s", got, id)
	}
	r := do(t, h, "POST", "/runs/"+id+"/cancel", "").expect(t, http.StatusOK)
	if r.str("run", "status") != "cancelled" || r.body["elsewhere"] != true || r.str("owner") != a.Owner() ||
		!strings.Contains(r.str("detail"), "next checkpoint") {
		t.Fatalf("cancel %v", r.body)
	}
	select {
	case cause := <-stopped:
		if !errors.Is(cause, flux.ErrLeaseLost) {
			t.Fatalf("A stopped the attempt with %v, want ErrLeaseLost", cause)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("engine A did not notice the cancel")
	}
	res, err := flux.Wait(t.Context(), a, flow, id)
	if !errors.Is(err, flux.ErrCancelled) || res.Status != flux.StatusCancelled {
		t.Fatalf("A sees %v, %v", res, err)
	}
	r = do(t, h, "GET", "/runs/"+id, "").expect(t, http.StatusOK)
	if r.str("status") != "cancelled" {
		t.Fatalf("run %v", r.body)
	}
}
