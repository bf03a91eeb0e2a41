package flux_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/flux-go/flux"
)

// Completed runs are kept a day, failed ones a week, and the runs of the
// workflow "audit" a year. Prune deletes what is past its retention; the
// engine calls it every minute with the time, this example with one of its
// own.
func ExampleRetention() {
	ctx := context.Background()
	engine, err := flux.NewEngine(flux.Config{
		Retention:         flux.Retention{Completed: 24 * time.Hour, Failed: 7 * 24 * time.Hour},
		WorkflowRetention: map[string]flux.Retention{"audit": {Completed: 365 * 24 * time.Hour}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer engine.Close()
	greet := flux.New[string, struct{}]("greet").Step("hello", func(*flux.Ctx[string, struct{}]) error { return nil })
	audit := flux.New[string, struct{}]("audit").Step("record", func(*flux.Ctx[string, struct{}]) error { return nil })
	for _, w := range []*flux.Workflow[string, struct{}]{greet, audit} {
		if _, err := flux.Execute(ctx, engine, w, "ada"); err != nil {
			fmt.Println(err)
			return
		}
	}
	n, _ := engine.Prune(ctx, time.Now().Add(time.Hour))
	fmt.Println("an hour later:", n, "deleted")
	n, _ = engine.Prune(ctx, time.Now().Add(25*time.Hour))
	fmt.Println("a day later:", n, "deleted")
	page, _ := engine.Storage().List(ctx, flux.Filter{})
	fmt.Println("kept:", page.Runs[0].Workflow)
	// Output:
	// an hour later: 0 deleted
	// a day later: 1 deleted
	// kept: audit
}

// Filter.Search finds runs by the start of their ID, their workflow, or the
// words of their error, over every stored run.
func ExampleFilter_search() {
	ctx := context.Background()
	engine, _ := flux.NewEngine(flux.Config{Logger: slog.New(slog.DiscardHandler)})
	defer engine.Close()
	pay := flux.New[int, struct{}]("pay").Step("charge", func(c *flux.Ctx[int, struct{}]) error {
		if c.Input > 100 {
			return flux.Permanent(fmt.Errorf("card declined for %d EUR", c.Input))
		}
		return nil
	})
	for _, amount := range []int{20, 500, 40} {
		_, _ = flux.Execute(ctx, engine, pay, amount, flux.RunID(fmt.Sprintf("pay-%d", amount)))
	}
	page, _ := engine.Storage().List(ctx, flux.Filter{Search: "DECLINED"})
	for _, r := range page.Runs {
		fmt.Println(r.ID, r.Status)
	}
	// Output:
	// pay-500 failed
}
