package flux_test

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flux-go/flux"
)

type approval struct {
	By string `json:"by"`
}

type review struct {
	Asked     bool
	Approval  *approval
	TimedOut  bool
	Escalated bool
	Shipped   bool
}

// reviewFlow asks, waits for "approved" up to timeout, then ships if
// approved or escalates if not.
func reviewFlow(name string, timeout time.Duration, shipped *atomic.Int32) *flux.Workflow[string, review] {
	return flux.New[string, review](name).
		Step("ask", func(c *flux.Ctx[string, review]) error { c.Data.Asked = true; return nil }).
		WaitSignal("approval", "approved", timeout, func(c *flux.Ctx[string, review], r flux.Received) error {
			if r.TimedOut {
				c.Data.TimedOut = true
				return nil
			}
			c.Data.Approval = new(approval)
			return r.Decode(c.Data.Approval)
		}).
		Commit("ship", func(c *flux.Ctx[string, review]) error {
			shipped.Add(1)
			c.Data.Shipped = true
			return nil
		}, flux.When(func(c *flux.Ctx[string, review]) bool { return c.Data.Approval != nil })).
		Step("escalate", func(c *flux.Ctx[string, review]) error { c.Data.Escalated = true; return nil },
			flux.When(func(c *flux.Ctx[string, review]) bool { return c.Data.TimedOut }))
}

func quietEngine(t *testing.T, cfg flux.Config) *flux.Engine {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e, err := flux.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestSleepThirtyDays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var after atomic.Int32
		w := flux.New[string, review]("cool-off").
			Step("ask", func(c *flux.Ctx[string, review]) error { c.Data.Asked = true; return nil }).
			Sleep("wait-30-days", 30*24*time.Hour).
			Commit("ship", func(c *flux.Ctx[string, review]) error { after.Add(1); c.Data.Shipped = true; return nil })
		// Looks every hour only: the run is woken by the engine's timer
		// at its time, not by a periodic look.
		e := quietEngine(t, flux.Config{RecoveryInterval: time.Hour, LeaseDuration: time.Hour})
		begin := time.Now()
		res, err := flux.Execute(ctx, e, w, "o-1")
		if !errors.Is(err, flux.ErrWaiting) || res.Status != flux.StatusWaiting {
			t.Fatalf("Execute = %v, %v; want the run waiting", res.Status, err)
		}
		run, err := e.Get(ctx, res.ID)
		if err != nil {
			t.Fatal(err)
		}
		wi, ok := flux.Waiting(run)
		if !ok || wi.Node != "wait-30-days" || wi.Kind != flux.KindSleep || !wi.Until.Equal(begin.Add(30*24*time.Hour)) {
			t.Fatalf("Waiting = %+v, %v; want the sleep until %s", wi, ok, begin.Add(30*24*time.Hour))
		}
		time.Sleep(30*24*time.Hour - time.Second)
		synctest.Wait()
		if n := after.Load(); n != 0 {
			t.Fatalf("ship ran %d times a second before the 30 days ended", n)
		}
		got, err := flux.Wait(ctx, e, w, res.ID)
		if err != nil || !got.Data.Shipped || after.Load() != 1 {
			t.Fatalf("after 30 days: %+v, %v, ship ran %d times", got, err, after.Load())
		}
		if waited := time.Since(begin); waited < 30*24*time.Hour || waited > 30*24*time.Hour+2*time.Second {
			t.Fatalf("the run completed after %s, want 30 days (within the engine's look interval)", waited)
		}
		st := got.Steps[1]
		if st.Status != flux.StatusCompleted || len(st.Attempts) != 1 || st.Attempts[0].Duration < 30*24*time.Hour {
			t.Fatalf("sleep node = %+v, want completed with one attempt as long as the sleep", st)
		}
	})
}

func TestSignalReceivedAcrossEngineRestart(t *testing.T) {
	ctx := context.Background()
	store := flux.NewMemoryStorage()
	var shipped atomic.Int32
	w := reviewFlow("review", 48*time.Hour, &shipped)
	e1 := quietEngine(t, flux.Config{Storage: store})
	res, err := flux.Execute(ctx, e1, w, "doc-1")
	if !errors.Is(err, flux.ErrWaiting) {
		t.Fatalf("Execute: %v, want ErrWaiting", err)
	}
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := quietEngine(t, flux.Config{Storage: store})
	if err := e2.Register(w); err != nil {
		t.Fatal(err)
	}
	if err := e2.Signal(ctx, res.ID, "approved", approval{By: "ana"}); err != nil {
		t.Fatal(err)
	}
	got, err := flux.Wait(ctx, e2, w, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Data.Approval == nil || got.Data.Approval.By != "ana" || !got.Data.Shipped || got.Data.Escalated || shipped.Load() != 1 {
		t.Fatalf("data = %+v (shipped %d times), want approved by ana and shipped once", got.Data, shipped.Load())
	}
	run, err := e2.Get(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Signals) != 1 || run.Signals[0].Node != 1 || run.Signals[0].Name != "approved" {
		t.Fatalf("signals = %+v, want the one consumed by node 1", run.Signals)
	}
}

func TestWaitTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var shipped atomic.Int32
		w := reviewFlow("review", time.Hour, &shipped)
		e := quietEngine(t, flux.Config{})
		res, err := flux.Execute(ctx, e, w, "doc-2")
		if !errors.Is(err, flux.ErrWaiting) {
			t.Fatalf("Execute: %v, want ErrWaiting", err)
		}
		got, err := flux.Wait(ctx, e, w, res.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Data.TimedOut || !got.Data.Escalated || got.Data.Shipped || shipped.Load() != 0 {
			t.Fatalf("data = %+v, want timed out and escalated, not shipped", got.Data)
		}
		if got.Steps[2].Status != flux.StatusSkipped || got.Steps[3].Status != flux.StatusCompleted {
			t.Fatalf("ship %s, escalate %s; want skipped, completed", got.Steps[2].Status, got.Steps[3].Status)
		}
		// A signal to the finished run is refused.
		if err := e.Signal(ctx, res.ID, "approved", approval{By: "late"}); !errors.Is(err, flux.ErrRunFinished) {
			t.Fatalf("Signal to a completed run: %v, want ErrRunFinished", err)
		}
	})
}

func TestSignalBeforeTheWaitIsKept(t *testing.T) {
	ctx := context.Background()
	var shipped atomic.Int32
	release := make(chan struct{})
	reached := make(chan struct{})
	w := flux.New[string, review]("early").
		Step("ask", func(c *flux.Ctx[string, review]) error {
			close(reached)
			<-release
			c.Data.Asked = true
			return nil
		}).
		WaitSignal("approval", "approved", 0, func(c *flux.Ctx[string, review], r flux.Received) error {
			c.Data.Approval = new(approval)
			return r.Decode(c.Data.Approval)
		}).
		Commit("ship", func(c *flux.Ctx[string, review]) error { shipped.Add(1); c.Data.Shipped = true; return nil })
	e := quietEngine(t, flux.Config{})
	id, err := flux.Start(ctx, e, w, "doc-3", flux.RunID("doc-3"))
	if err != nil {
		t.Fatal(err)
	}
	<-reached
	if err := e.Signal(ctx, id, "approved", approval{By: "bo"}); err != nil {
		t.Fatal(err)
	}
	close(release)
	got, err := flux.Wait(ctx, e, w, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Data.Approval == nil || got.Data.Approval.By != "bo" || shipped.Load() != 1 {
		t.Fatalf("data = %+v, want the early signal received", got.Data)
	}
}

func TestDuplicateSignalDeliveredOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		type votes struct{ Got []string }
		land := func(c *flux.Ctx[string, votes], r flux.Received) error {
			if r.TimedOut {
				c.Data.Got = append(c.Data.Got, "timeout")
				return nil
			}
			var who string
			if err := r.Decode(&who); err != nil {
				return err
			}
			c.Data.Got = append(c.Data.Got, who)
			return nil
		}
		w := flux.New[string, votes]("votes").
			WaitSignal("first", "vote", time.Hour, land).
			WaitSignal("second", "vote", time.Hour, land)
		e := quietEngine(t, flux.Config{})
		res, err := flux.Execute(ctx, e, w, "x", flux.RunID("votes-1"))
		if !errors.Is(err, flux.ErrWaiting) {
			t.Fatalf("Execute: %v", err)
		}
		for range 2 { // a webhook delivered twice
			if err := e.Signal(ctx, res.ID, "vote", "ana", flux.SignalKey("delivery-17")); err != nil {
				t.Fatal(err)
			}
		}
		got, err := flux.Wait(ctx, e, w, res.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Data.Got) != 2 || got.Data.Got[0] != "ana" || got.Data.Got[1] != "timeout" {
			t.Fatalf("received %v, want [ana timeout]: the duplicate must not reach the second wait", got.Data.Got)
		}
	})
}

func TestSignalUnknownRun(t *testing.T) {
	e := quietEngine(t, flux.Config{})
	if err := e.Signal(context.Background(), "no-such-run", "x", nil); !errors.Is(err, flux.ErrRunNotFound) {
		t.Fatalf("Signal to an unknown run: %v, want ErrRunNotFound", err)
	}
}

func TestWaitEventMatchedByKey(t *testing.T) {
	ctx := context.Background()
	type order struct {
		ID   string
		Paid int
	}
	w := flux.New[string, order]("pay").
		Step("open", func(c *flux.Ctx[string, order]) error { c.Data.ID = c.Input; return nil }).
		WaitEvent("payment", "payment.received", func(c *flux.Ctx[string, order]) string { return c.Data.ID }, 0,
			func(c *flux.Ctx[string, order], r flux.Received) error { return r.Decode(&c.Data.Paid) })
	e := quietEngine(t, flux.Config{})
	a, errA := flux.Execute(ctx, e, w, "o-1")
	b, errB := flux.Execute(ctx, e, w, "o-2")
	if !errors.Is(errA, flux.ErrWaiting) || !errors.Is(errB, flux.ErrWaiting) {
		t.Fatalf("Execute: %v, %v", errA, errB)
	}
	n, err := flux.Send(ctx, e, "payment.received", "o-2", 250)
	if err != nil || n != 1 {
		t.Fatalf("Send = %d, %v; want delivered to one run", n, err)
	}
	got, err := flux.Wait(ctx, e, w, b.ID)
	if err != nil || got.Data.Paid != 250 {
		t.Fatalf("o-2: %+v, %v; want paid 250", got, err)
	}
	run, err := e.Get(ctx, a.ID)
	if err != nil || run.Status != flux.StatusWaiting {
		t.Fatalf("o-1: %v, %v; want still waiting", run.Status, err)
	}
	if n, err := flux.Send(ctx, e, "payment.received", "o-3", 1); err != nil || n != 0 {
		t.Fatalf("Send to no waiting run = %d, %v; want 0, nil", n, err)
	}
}

// Waiting runs hold no goroutine: a thousand of them leave the goroutine
// count where it was.
func TestWaitingRunsHoldNoGoroutines(t *testing.T) {
	ctx := context.Background()
	var shipped atomic.Int32
	w := reviewFlow("many", 0, &shipped)
	e := quietEngine(t, flux.Config{})
	if err := e.Register(w); err != nil {
		t.Fatal(err)
	}
	if _, err := flux.Execute(ctx, e, w, "warm-up"); !errors.Is(err, flux.ErrWaiting) {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for range 1000 {
		if _, err := flux.Execute(ctx, e, w, "doc"); !errors.Is(err, flux.ErrWaiting) {
			t.Fatal(err)
		}
	}
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Fatalf("goroutines %d before 1000 waiting runs, %d after: waiting runs must hold none", before, after)
	}
	waiting, cursor := 0, ""
	for {
		page, err := e.List(ctx, flux.Filter{Status: []flux.Status{flux.StatusWaiting}, Limit: 1000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		waiting += len(page.Runs)
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if waiting != 1001 {
		t.Fatalf("List waiting = %d runs; want 1001", waiting)
	}
}

// A run that stops to wait fires WorkflowWaiting, never WorkflowError; a
// saga fires WorkflowError once, when its undos ran.
func TestWaitingAndCompensatingHooks(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]int{}
	count := func(name string) func(flux.RunEvent) {
		return func(flux.RunEvent) { mu.Lock(); seen[name]++; mu.Unlock() }
	}
	e := quietEngine(t, flux.Config{Hooks: flux.Hooks{WorkflowError: count("error"), WorkflowWaiting: count("waiting")}})
	var shipped atomic.Int32
	if _, err := flux.Execute(ctx, e, reviewFlow("hooked", time.Hour, &shipped), "d"); !errors.Is(err, flux.ErrWaiting) {
		t.Fatal(err)
	}
	mu.Lock()
	if seen["waiting"] != 1 || seen["error"] != 0 {
		t.Fatalf("hooks after a run started waiting: %v, want waiting 1, error 0", seen)
	}
	mu.Unlock()
	if _, err := flux.Execute(ctx, e, tripFlow(new(effects), nil), "x"); err == nil {
		t.Fatal("the saga completed")
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["error"] != 1 {
		t.Fatalf("WorkflowError fired %d times for one failed saga, want 1", seen["error"])
	}
}

// The deadline wins: a signal sent after a wait's timeout is not received,
// even when no engine woke the run in time.
func TestSignalAfterTheTimeoutIsNotReceived(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := flux.NewMemoryStorage()
		var shipped atomic.Int32
		w := reviewFlow("late", time.Hour, &shipped)
		e1 := quietEngine(t, flux.Config{Storage: store})
		res, err := flux.Execute(ctx, e1, w, "d")
		if !errors.Is(err, flux.ErrWaiting) {
			t.Fatal(err)
		}
		if err := e1.Close(); err != nil { // no engine runs past the timeout
			t.Fatal(err)
		}
		time.Sleep(2 * time.Hour)
		e2 := quietEngine(t, flux.Config{Storage: store})
		if err := e2.Signal(ctx, res.ID, "approved", approval{By: "late"}, flux.SignalKey("k")); err != nil {
			t.Fatal(err)
		}
		if err := e2.Register(w); err != nil {
			t.Fatal(err)
		}
		got, err := flux.Wait(ctx, e2, w, res.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Data.TimedOut || got.Data.Approval != nil || shipped.Load() != 0 {
			t.Fatalf("data %+v: the late signal was received", got.Data)
		}
		// A duplicate of a signal the finished run got is accepted.
		if err := e2.Signal(ctx, res.ID, "approved", approval{By: "late"}, flux.SignalKey("k")); err != nil {
			t.Fatalf("duplicate signal to the finished run: %v, want nil", err)
		}
		if err := e2.Signal(ctx, res.ID, "approved", approval{By: "late"}, flux.SignalKey("other")); !errors.Is(err, flux.ErrRunFinished) {
			t.Fatalf("new signal to the finished run: %v, want ErrRunFinished", err)
		}
	})
}
