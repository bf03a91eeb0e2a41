package storagetest

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/flux-go/flux"
)

// backgroundEngine returns an engine over s that executes started runs
// with workers workers, closed when the test ends.
func backgroundEngine(t *testing.T, s flux.Storage, id string, workers int, hooks flux.Hooks) *flux.Engine {
	t.Helper()
	e, err := flux.NewEngine(flux.Config{Storage: s, ID: id, Hooks: hooks, Logger: slog.New(slog.DiscardHandler),
		LeaseDuration: time.Hour, RecoveryInterval: time.Hour, Workers: workers, PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

var backgroundTests = []testCase{
	{"StartedRunsComplete", func(t *testing.T, h Harness) {
		c := &calls{}
		w := order(c, never)
		e := backgroundEngine(t, h.Store, "bg", 4, flux.Hooks{})
		var ids []string
		for i := range 20 {
			id, err := flux.Start(ctx(t), e, w, In{N: i})
			if err != nil {
				t.Fatalf("Start %d: %v", i, err)
			}
			ids = append(ids, id)
		}
		for _, id := range ids {
			res, err := flux.Wait(ctx(t), e, w, id)
			if err != nil {
				t.Fatalf("Wait %s: %v", id, err)
			}
			if res.Status != flux.StatusCompleted || res.ID != id {
				t.Fatalf("Wait %s: %s %s, want it completed", id, res.ID, res.Status)
			}
			wantTrail(t, "started run "+id, res.Data.Trail, "validate", "charge", "ship", "notify")
			if n := c.get(id, "ship"); n != 1 {
				t.Fatalf("run %s shipped %d times, want once", id, n)
			}
		}
	}},
	{"StartIsIdempotent", func(t *testing.T, h Harness) {
		c := &calls{}
		w := order(c, never)
		e := backgroundEngine(t, h.Store, "bg", 4, flux.Hooks{})
		for range 3 {
			id, err := flux.Start(ctx(t), e, w, In{N: 1}, flux.RunID("start-once"))
			if err != nil || id != "start-once" {
				t.Fatalf("Start with an ID: %q, %v", id, err)
			}
		}
		if _, err := flux.Wait(ctx(t), e, w, "start-once"); err != nil {
			t.Fatal(err)
		}
		if id, err := flux.Start(ctx(t), e, w, In{N: 1}, flux.RunID("start-once")); err != nil || id != "start-once" {
			t.Fatalf("Start of a completed run's ID: %q, %v", id, err)
		}
		for _, node := range []string{"validate", "ship"} {
			if n := c.get("start-once", node); n != 1 {
				t.Fatalf("%s ran %d times for three Starts of one ID, want once", node, n)
			}
		}
		if p := mustList(t, h.Store, flux.Filter{Search: "start-once"}); len(p.Runs) != 1 {
			t.Fatalf("%d runs stored for one ID", len(p.Runs))
		}
		other := flux.New[In, Data]("other").Step("x", c.mark())
		if _, err := flux.Start(ctx(t), e, other, In{}, flux.RunID("start-once")); !errors.Is(err, flux.ErrWrongWorkflow) {
			t.Fatalf("Start of another workflow with a taken ID: %v, want ErrWrongWorkflow", err)
		}
		if _, err := flux.Wait(ctx(t), e, other, "start-once"); !errors.Is(err, flux.ErrWrongWorkflow) {
			t.Fatalf("Wait as another workflow: %v, want ErrWrongWorkflow", err)
		}
		if _, err := flux.Wait(ctx(t), e, w, "no-such-run"); !errors.Is(err, flux.ErrRunNotFound) {
			t.Fatalf("Wait of an unknown run: %v, want ErrRunNotFound", err)
		}
		short, cancel := context.WithCancel(ctx(t))
		cancel()
		if _, err := flux.Start(short, e, w, In{N: 2}, flux.RunID("never-stored")); err == nil {
			t.Fatal("Start with a cancelled context stored a run")
		}
	}},
	{"AProducerEngineStartsAWorkerEngineExecutes", func(t *testing.T, h Harness) {
		c := &calls{}
		w := order(c, never)
		producer := backgroundEngine(t, h.Store, "producer", -1, flux.Hooks{})
		id, err := flux.Start(ctx(t), producer, w, In{N: 7})
		if err != nil {
			t.Fatal(err)
		}
		if r := mustGet(t, h.Store, id); r.Status != flux.StatusPending || r.Owner != "" {
			t.Fatalf("a started run is %s, owned by %q; want pending and free", r.Status, r.Owner)
		}
		if n := producer.RecoverNow(); n != 0 {
			t.Fatalf("an engine with no workers took %d runs", n)
		}
		worker := backgroundEngine(t, h.Store, "worker", 2, flux.Hooks{})
		if err := worker.Register(w); err != nil {
			t.Fatal(err)
		}
		// The worker's own loop may take the run as it starts, before
		// RecoverNow looks: either way it is the worker's, once.
		if n := worker.RecoverNow(); n > 1 {
			t.Fatalf("the worker took %d runs, want at most the started one", n)
		}
		res, err := flux.Wait(ctx(t), producer, w, id)
		if err != nil || res.Status != flux.StatusCompleted {
			t.Fatalf("Wait from the producer: %+v, %v", res, err)
		}
		if n := c.get(id, "ship"); n != 1 {
			t.Fatalf("the commit ran %d times, want once", n)
		}
	}},
	{"TheStoreWakesAWorker", func(t *testing.T, h Harness) {
		// The worker never looks on its own (its interval is an hour): only
		// the store's word that a run needs an owner can get it going.
		if _, ok := h.Store.(interface {
			Wakeups() (<-chan struct{}, func())
		}); !ok {
			t.Skip("storagetest: this store does not implement driver.Waker")
		}
		c := &calls{}
		w := order(c, never)
		worker := backgroundEngine(t, h.Store, "worker", 2, flux.Hooks{})
		if err := worker.Register(w); err != nil {
			t.Fatal(err)
		}
		producer := backgroundEngine(t, h.Store, "producer", -1, flux.Hooks{})
		id, err := flux.Start(ctx(t), producer, w, In{N: 3})
		if err != nil {
			t.Fatal(err)
		}
		waitCtx, cancel := context.WithTimeout(ctx(t), 30*time.Second)
		defer cancel()
		if res, err := flux.Wait(waitCtx, producer, w, id); err != nil || res.Status != flux.StatusCompleted {
			t.Fatalf("a run started on an engine without workers: %+v, %v; want it completed by the woken worker", res, err)
		}
	}},
	{"ShutdownStopsBetweenNodes", func(t *testing.T, h Harness) {
		c := &calls{}
		inFirst, release := make(chan string, 8), make(chan struct{})
		w := flux.New[In, Data]("drain").
			Step("first", func(x *ctxT) error {
				c.add(x.RunID(), "first")
				inFirst <- x.RunID()
				<-release
				x.Data.Trail = append(x.Data.Trail, "first")
				return nil
			}).
			Commit("second", c.mark())
		e := backgroundEngine(t, h.Store, "draining", 4, flux.Hooks{})
		var ids []string
		for i := range 3 {
			id, err := flux.Start(ctx(t), e, w, In{N: i})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		for range ids {
			<-inFirst
		}
		shut := make(chan error, 1)
		go func() { shut <- e.Shutdown(ctx(t)) }()
		eventually(t, "Shutdown begins", func() (bool, error) { return e.Draining(), nil })
		// The attempts in flight finish; the runs stop before their commit.
		close(release)
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		for _, id := range ids {
			r := mustGet(t, h.Store, id)
			if r.Owner != "" || r.Status.Final() || r.Steps[0].Status != flux.StatusCompleted || r.Steps[1].Status != flux.StatusPending {
				t.Fatalf("run %s after Shutdown: %s, owner %q, nodes %s/%s; want first completed, second pending, no owner",
					id, r.Status, r.Owner, r.Steps[0].Status, r.Steps[1].Status)
			}
		}
		if _, err := flux.Start(ctx(t), e, w, In{}); !errors.Is(err, flux.ErrClosed) {
			t.Fatalf("Start on a shut engine: %v, want ErrClosed", err)
		}
		// Another engine continues them from the commit.
		next := backgroundEngine(t, h.Store, "next", 4, flux.Hooks{})
		if err := next.Register(w); err != nil {
			t.Fatal(err)
		}
		next.RecoverNow()
		for _, id := range ids {
			res, err := flux.Wait(ctx(t), next, w, id)
			if err != nil {
				t.Fatal(err)
			}
			wantTrail(t, "a run continued after Shutdown", res.Data.Trail, "first", "second")
			if n := c.get(id, "first"); n != 1 {
				t.Fatalf("run %s: first ran %d times, want once", id, n)
			}
		}
	}},
	{"ShutdownGraceEnds", func(t *testing.T, h Harness) {
		started := make(chan struct{}, 1)
		w := flux.New[In, Data]("stuck").Step("wait", func(x *ctxT) error {
			started <- struct{}{}
			<-x.Done()
			return x.Err()
		})
		e := backgroundEngine(t, h.Store, "stuck", 1, flux.Hooks{})
		id, err := flux.Start(ctx(t), e, w, In{})
		if err != nil {
			t.Fatal(err)
		}
		<-started
		grace, cancel := context.WithCancel(ctx(t))
		cancel() // no grace at all: Shutdown closes at once
		if err := e.Shutdown(grace); !errors.Is(err, context.Canceled) {
			t.Fatalf("Shutdown past its grace: %v, want context.Canceled", err)
		}
		r := mustGet(t, h.Store, id)
		if r.Owner != "" || r.Status != flux.StatusRunning {
			t.Fatalf("a run stopped by Shutdown: %s, owner %q; want running and free", r.Status, r.Owner)
		}
		if a := r.Steps[0].Attempts; len(a) != 1 || !a[0].Interrupted {
			t.Fatalf("its attempt: %+v, want one, interrupted", a)
		}
	}},
}
