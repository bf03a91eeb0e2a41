package flux_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/flux-go/flux"
)

// A run waits for a person's decision, holding no goroutine; a signal
// continues it, here or in any process sharing the storage.
func ExampleWorkflow_WaitSignal() {
	ctx := context.Background()
	engine, _ := flux.NewEngine(flux.Config{Logger: slog.New(slog.DiscardHandler)})
	defer engine.Close()
	type expense struct {
		Approved bool
		By       string
		Paid     bool
	}
	flow := flux.New[int, expense]("expense").
		WaitSignal("manager", "decision", 48*time.Hour, func(c *flux.Ctx[int, expense], r flux.Received) error {
			if r.TimedOut {
				return nil // not approved
			}
			return r.Decode(c.Data)
		}).
		Commit("pay", func(c *flux.Ctx[int, expense]) error {
			c.Data.Paid = true
			return nil
		}, flux.When(func(c *flux.Ctx[int, expense]) bool { return c.Data.Approved }))

	res, err := flux.Execute(ctx, engine, flow, 120)
	run, _ := engine.Get(ctx, res.ID)
	wait, _ := flux.Waiting(run)
	fmt.Println(res.Status, errors.Is(err, flux.ErrWaiting), wait.Node, wait.Signal)

	_ = engine.Signal(ctx, res.ID, "decision", map[string]any{"Approved": true, "By": "ana"}, flux.SignalKey("click-1"))
	done, err := flux.Wait(ctx, engine, flow, res.ID)
	fmt.Println(done.Status, done.Data.By, done.Data.Paid, err)
	// Output:
	// waiting true manager decision
	// completed ana true <nil>
}

// A saga: when a commit fails for good, the undos of the commits that
// completed run, latest first, and the run fails.
func ExampleUndo() {
	ctx := context.Background()
	engine, _ := flux.NewEngine(flux.Config{Logger: slog.New(slog.DiscardHandler)})
	defer engine.Close()
	say := func(s string) flux.Handler[string, struct{}] {
		return func(*flux.Ctx[string, struct{}]) error { fmt.Println(s); return nil }
	}
	trip := flux.New[string, struct{}]("trip").
		Commit("flight", say("book flight"), flux.Undo(say("cancel flight"))).
		Commit("hotel", say("book hotel"), flux.Undo(say("cancel hotel"))).
		Commit("car", func(*flux.Ctx[string, struct{}]) error {
			return flux.Permanent(errors.New("no car available"))
		})
	res, err := flux.Execute(ctx, engine, trip, "lisbon")
	fmt.Println(res.Status, err != nil)
	// Output:
	// book flight
	// book hotel
	// cancel hotel
	// cancel flight
	// failed true
}

// Runs of one customer execute one at a time; others wait, pending, in
// order.
func ExampleWorkflow_ConcurrencyKey() {
	ctx := context.Background()
	engine, _ := flux.NewEngine(flux.Config{Logger: slog.New(slog.DiscardHandler)})
	defer engine.Close()
	type job struct{ Customer string }
	sync := flux.New[job, struct{}]("sync-account").
		ConcurrencyKey(1, func(j job) string { return j.Customer }).
		Step("sync", func(*flux.Ctx[job, struct{}]) error { return nil })
	var ids []string
	for _, c := range []string{"acme", "acme", "globex"} {
		id, _ := flux.Start(ctx, engine, sync, job{Customer: c})
		ids = append(ids, id)
	}
	for _, id := range ids {
		res, err := flux.Wait(ctx, engine, sync, id)
		fmt.Println(res.Status, err)
	}
	// Output:
	// completed <nil>
	// completed <nil>
	// completed <nil>
}
