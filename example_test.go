package flux_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/flux-go/flux"
)

// SignupInput and SignupData are the input and data of the examples'
// onboarding workflow.
type SignupInput struct {
	Email      string `json:"email"`
	Newsletter bool   `json:"newsletter"`
}

type SignupData struct {
	UserID     string `json:"userId"`
	Welcomed   bool   `json:"welcomed"`
	Subscribed bool   `json:"subscribed"`
}

// onboarding creates a user, then sends a welcome mail and, if asked, a
// newsletter subscription: the two side effects are commits.
var onboarding = flux.New[SignupInput, SignupData]("onboarding").
	Validate(func(in SignupInput) error {
		if !strings.Contains(in.Email, "@") {
			return fmt.Errorf("email %q has no @", in.Email)
		}
		return nil
	}).
	Step("create-user", func(c *flux.Ctx[SignupInput, SignupData]) error {
		c.Data.UserID = "u_" + strings.Split(c.Input.Email, "@")[0]
		return nil
	}).
	Commit("send-welcome", func(c *flux.Ctx[SignupInput, SignupData]) error {
		// A real handler passes c (a context.Context) and
		// c.IdempotencyKey() to the mail API.
		c.Data.Welcomed = true
		return nil
	}).
	Commit("subscribe", func(c *flux.Ctx[SignupInput, SignupData]) error {
		c.Data.Subscribed = true
		return nil
	}, flux.When(func(c *flux.Ctx[SignupInput, SignupData]) bool { return c.Input.Newsletter }))

// exampleEngine returns an engine on in-memory storage that logs nothing.
func exampleEngine(hooks flux.Hooks) *flux.Engine {
	engine, err := flux.NewEngine(flux.Config{Logger: slog.New(slog.DiscardHandler), Hooks: hooks})
	if err != nil {
		panic(err)
	}
	return engine
}

// ExampleNew defines a workflow and prints its shape.
func ExampleNew() {
	d := onboarding.Describe()
	fmt.Println(d.Name)
	for _, n := range d.Nodes {
		fmt.Printf("%-6s %-12s conditional=%v\n", n.Kind, n.Name, n.When)
	}
	// Output:
	// onboarding
	// step   create-user  conditional=false
	// commit send-welcome conditional=false
	// commit subscribe    conditional=true
}

// ExampleExecute runs a workflow to completion and prints each node's
// status and the final data.
func ExampleExecute() {
	engine := exampleEngine(flux.Hooks{})
	defer engine.Close()

	res, err := flux.Execute(context.Background(), engine, onboarding,
		SignupInput{Email: "ada@example.com", Newsletter: true})
	if err != nil {
		fmt.Println("run failed:", err)
		return
	}
	fmt.Println("run:", res.Status)
	for _, s := range res.Steps {
		fmt.Printf("  %s: %s\n", s.Name, s.Status)
	}
	fmt.Printf("data: %+v\n", res.Data)

	// Input rejected by Validate creates no run.
	_, err = flux.Execute(context.Background(), engine, onboarding, SignupInput{Email: "nobody"})
	fmt.Println("invalid input:", errors.Is(err, flux.ErrInvalidInput))
	// Output:
	// run: completed
	//   create-user: completed
	//   send-welcome: completed
	//   subscribe: completed
	// data: {UserID:u_ada Welcomed:true Subscribed:true}
	// invalid input: true
}

// ExampleWhen skips a node whose predicate is false: it is marked skipped,
// which is neither an error nor a retry.
func ExampleWhen() {
	engine := exampleEngine(flux.Hooks{})
	defer engine.Close()

	type In struct{ Amount int }
	type Data struct{ Reviewed, Paid bool }
	payout := flux.New[In, Data]("payout").
		Step("review", func(c *flux.Ctx[In, Data]) error {
			c.Data.Reviewed = true
			return nil
		}, flux.When(func(c *flux.Ctx[In, Data]) bool { return c.Input.Amount > 1000 })).
		Commit("pay", func(c *flux.Ctx[In, Data]) error {
			c.Data.Paid = true
			return nil
		})

	for _, amount := range []int{50, 5000} {
		res, err := flux.Execute(context.Background(), engine, payout, In{Amount: amount})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("amount %d: review %s, pay %s, data %+v\n",
			amount, res.Steps[0].Status, res.Steps[1].Status, res.Data)
	}
	// Output:
	// amount 50: review skipped, pay completed, data {Reviewed:false Paid:true}
	// amount 5000: review completed, pay completed, data {Reviewed:true Paid:true}
}

// ExampleRetries retries a flaky step; a Permanent error is not retried.
func ExampleRetries() {
	engine := exampleEngine(flux.Hooks{})
	defer engine.Close()

	type In struct{ InStock bool }
	type Data struct{ ChargeID string }
	errUnavailable := errors.New("payment service unavailable")
	calls := 0
	order := flux.New[In, Data]("order").
		Step("check-stock", func(c *flux.Ctx[In, Data]) error {
			if !c.Input.InStock {
				return flux.Permanent(errors.New("out of stock"))
			}
			return nil
		}, flux.Retries(5)).
		Step("charge", func(c *flux.Ctx[In, Data]) error {
			calls++
			if calls < 3 { // the first two calls fail
				return errUnavailable
			}
			c.Data.ChargeID = "ch_1"
			return nil
		}, flux.Retries(3), flux.NoBackoff()) // NoBackoff keeps the example fast

	res, err := flux.Execute(context.Background(), engine, order, In{InStock: true})
	fmt.Println("err:", err)
	for _, a := range res.Steps[1].Attempts {
		fmt.Printf("charge attempt %d: error %q\n", a.Number, a.Error)
	}
	fmt.Println("charge id:", res.Data.ChargeID)

	res, err = flux.Execute(context.Background(), engine, order, In{InStock: false})
	var se *flux.StepError
	if errors.As(err, &se) {
		fmt.Printf("%s failed after %d attempt(s): %v\n", se.Step, se.Attempt, se.Err)
	}
	fmt.Println("status:", res.Status)
	// Output:
	// err: <nil>
	// charge attempt 1: error "payment service unavailable"
	// charge attempt 2: error "payment service unavailable"
	// charge attempt 3: error ""
	// charge id: ch_1
	// check-stock failed after 1 attempt(s): out of stock
	// status: failed
}

// ExampleHooks prints every transition of a run as the hooks see it.
func ExampleHooks() {
	step := func(name string) func(flux.StepEvent) {
		return func(e flux.StepEvent) {
			fmt.Printf("%-12s %s attempt %d", name, e.Step, e.Attempt)
			if e.Err != nil {
				fmt.Printf(": %v", e.Err)
			}
			fmt.Println()
		}
	}
	run := func(name string) func(flux.RunEvent) {
		return func(e flux.RunEvent) { fmt.Printf("%-12s %s\n", name, e.Status) }
	}
	engine := exampleEngine(flux.Hooks{
		WorkflowStart:    run("start"),
		WorkflowComplete: run("complete"),
		WorkflowError:    run("error"),
		StepStart:        step("step start"),
		StepComplete:     step("step done"),
		StepSkipped:      step("step skipped"),
		StepRetry:        step("step retry"),
		StepError:        step("step error"),
	})
	defer engine.Close()

	failOnce := true
	flow := flux.New[SignupInput, SignupData]("hooks").
		Step("create-user", func(c *flux.Ctx[SignupInput, SignupData]) error {
			if failOnce {
				failOnce = false
				return errors.New("database busy")
			}
			return nil
		}, flux.NoBackoff()).
		Commit("subscribe", func(c *flux.Ctx[SignupInput, SignupData]) error { return nil },
			flux.When(func(c *flux.Ctx[SignupInput, SignupData]) bool { return c.Input.Newsletter }))

	if _, err := flux.Execute(context.Background(), engine, flow, SignupInput{Email: "ada@example.com"}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// start        running
	// step start   create-user attempt 1
	// step retry   create-user attempt 1: database busy
	// step start   create-user attempt 2
	// step done    create-user attempt 2
	// step skipped subscribe attempt 0
	// complete     completed
}
