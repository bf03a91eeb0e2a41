package flux_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/flux-go/flux"
)

// ExampleRetryStep repairs a failed run: the card was declined, the customer
// updated it, and the run is replayed from the charge. The declined attempt
// stays in the record; the commit that shipped the order is never replayed
// without flux.Force.
func ExampleRetryStep() {
	engine := exampleEngine(flux.Hooks{})
	defer engine.Close()

	type In struct{ OrderID string }
	type Data struct {
		ChargeID string
		Shipped  bool
	}
	declined := true
	order := flux.New[In, Data]("replayed-order").
		Step("charge", func(c *flux.Ctx[In, Data]) error {
			if declined {
				return flux.Permanent(errors.New("card declined"))
			}
			c.Data.ChargeID = "ch_1"
			return nil
		}).
		Commit("ship", func(c *flux.Ctx[In, Data]) error {
			c.Data.Shipped = true
			return nil
		})
	ctx := context.Background()

	res, err := flux.Execute(ctx, engine, order, In{OrderID: "o_1"})
	var se *flux.StepError
	if errors.As(err, &se) {
		fmt.Printf("first run %s: %s failed: %v\n", res.Status, se.Step, se.Err)
	}

	declined = false // the customer updated the card
	res, err = flux.RetryStep(ctx, engine, order, res.ID, "charge")
	fmt.Println("retried:", res.Status, res.Data.ChargeID, res.Data.Shipped, err)
	for _, a := range res.Steps[0].Attempts {
		fmt.Printf("charge attempt %d: %q\n", a.Number, a.Error)
	}

	_, err = flux.RetryStep(ctx, engine, order, res.ID, "charge")
	fmt.Println("replaying it again:", errors.Is(err, flux.ErrCommitted))
	// Output:
	// first run failed: charge failed: card declined
	// retried: completed ch_1 true <nil>
	// charge attempt 1: "card declined"
	// charge attempt 2: ""
	// replaying it again: true
}

// ExampleResume continues a run that was interrupted (here the caller gave
// up; a crash or Engine.Close leave runs the same way): it goes on after its
// last finished node, which does not run again.
func ExampleResume() {
	engine := exampleEngine(flux.Hooks{})
	defer engine.Close()

	type Data struct{ Trail []string }
	ctx, giveUp := context.WithCancel(context.Background())
	calls := map[string]int{}
	step := func(c *flux.Ctx[struct{}, Data]) error {
		calls[c.Step()]++
		if c.Step() == "store" && calls["store"] == 1 {
			giveUp() // the caller gives up while store runs
			<-c.Done()
			return c.Err()
		}
		c.Data.Trail = append(c.Data.Trail, c.Step())
		return nil
	}
	imports := flux.New[struct{}, Data]("import").Step("fetch", step).Step("store", step).Commit("notify", step)

	res, err := flux.Execute(ctx, engine, imports, struct{}{})
	fmt.Println("interrupted:", errors.Is(err, context.Canceled))
	run, _ := engine.Get(context.Background(), res.ID)
	fmt.Println("stored:", run.Status, run.Steps[0].Status, run.Steps[1].Status)

	res, err = flux.Resume(context.Background(), engine, imports, res.ID)
	fmt.Println("resumed:", res.Status, res.Data.Trail, err)
	fmt.Println("fetch ran", calls["fetch"], "time; store", calls["store"], "times")
	// Output:
	// interrupted: true
	// stored: running completed pending
	// resumed: completed [fetch store notify] <nil>
	// fetch ran 1 time; store 2 times
}
