// Order-fulfillment is the seed's order workflow: check the stock, charge the
// order with Retries(3) and Timeout(30s), then reserve the items and mail a
// confirmation as commits.
//
// The workflow and its fake inventory, payment gateway and mailer live in
// internal/orderdemo, which `flux demo` runs too. Here the gateway fails
// twice — it accepts the charge but the response is lost — so charge takes
// three attempts; because every attempt passes the same IdempotencyKey, the
// customer is charged once.
//
// Run it from the module root:
//
//	go run ./examples/order-fulfillment
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/orderdemo"
)

// gatewayFailures is how many times the fake payment gateway fails.
const gatewayFailures = 2

func main() {
	if _, _, err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run places the sample order and returns the run's result and the fakes it
// ran against.
func run(ctx context.Context, out io.Writer) (*flux.Result[orderdemo.Data], *orderdemo.Services, error) {
	svc := orderdemo.NewServices(gatewayFailures)
	engine, err := flux.NewEngine(flux.Config{
		Logger: slog.New(slog.DiscardHandler), // the hook below tells the story
		Hooks: flux.Hooks{
			StepRetry: func(ev flux.StepEvent) {
				fmt.Fprintf(out, "%s: attempt %d failed: %v; retrying in %s\n",
					ev.Step, ev.Attempt, ev.Err, ev.Delay.Round(time.Millisecond))
			},
		},
	})
	if err != nil {
		return nil, nil, err
	}
	defer engine.Close()

	res, err := flux.Execute(ctx, engine, orderdemo.Workflow(svc), orderdemo.SampleOrder())
	if err != nil {
		return res, svc, err
	}
	fmt.Fprintf(out, "run %s %s in %s\n", res.ID, res.Status, res.Duration.Round(time.Millisecond))
	for _, s := range res.Steps {
		fmt.Fprintf(out, "  %-8s %-6s %s after %d attempt(s)\n", s.Name, s.Kind, s.Status, len(s.Attempts))
	}
	p := res.Data.Payment
	fmt.Fprintf(out, "payment %s of %d cents: %d gateway calls, %d charge(s)\n",
		p.ID, p.AmountCents, svc.Payments.Calls(), len(svc.Payments.Charges()))
	fmt.Fprintf(out, "reserved %v; mailed %d confirmation(s)\n", res.Data.ReservationIDs, len(svc.Mail.Sent()))
	return res, svc, nil
}
