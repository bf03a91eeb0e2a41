// Trace-viewer writes a trace for the flux dev web viewer: it runs the
// branching event-routing workflow (one event down each route) and a
// workflow whose charge step fails twice before it succeeds, with the NDJSON
// file sink as the engine's trace, then tells you the command that opens the
// viewer on it.
//
// Run it from the module root, then open the viewer:
//
//	go run ./examples/trace-viewer
//	go run ./cmd/flux dev --trace ./.flux/trace.ndjson --port 4280
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/tracefile"
)

// RouteInput is the input of the branching workflow.
type RouteInput struct {
	Kind string `json:"kind"` // "auto", "manual" or "risk"
}

// RouteData is what the branching workflow records.
type RouteData struct {
	Route    string `json:"route"`
	Result   string `json:"result,omitempty"`
	TicketID string `json:"ticketId,omitempty"`
	AuditID  string `json:"auditId,omitempty"`
	Notified bool   `json:"notified"`
}

func routeIs(route string) flux.StepOption {
	return flux.When(func(c *flux.Ctx[RouteInput, RouteData]) bool { return c.Data.Route == route })
}

var routing = flux.New[RouteInput, RouteData]("event-routing").
	Step("classify", func(c *flux.Ctx[RouteInput, RouteData]) error {
		c.Data.Route = c.Input.Kind
		return nil
	}).
	Step("auto-handle", func(c *flux.Ctx[RouteInput, RouteData]) error {
		c.Data.Result = "auto-ok"
		return nil
	}, routeIs("auto")).
	Step("manual-review", func(c *flux.Ctx[RouteInput, RouteData]) error {
		c.Data.TicketID = "T-1"
		return nil
	}, routeIs("manual")).
	Step("risk-audit", func(c *flux.Ctx[RouteInput, RouteData]) error {
		c.Data.AuditID = "A-1"
		return nil
	}, routeIs("risk")).
	Commit("notify", func(c *flux.Ctx[RouteInput, RouteData]) error {
		c.Data.Notified = true
		return nil
	})

// OrderInput is the input of the retrying workflow.
type OrderInput struct {
	OrderID string `json:"orderId"`
}

// OrderData is what the retrying workflow records.
type OrderData struct {
	PaymentID string `json:"paymentId,omitempty"`
}

var errGatewayTimeout = errors.New("payment gateway timeout")

// newOrderFlow returns a workflow whose charge step fails failures times.
func newOrderFlow(failures int) *flux.Workflow[OrderInput, OrderData] {
	calls := 0
	return flux.New[OrderInput, OrderData]("order-fulfillment").
		Step("validate", func(c *flux.Ctx[OrderInput, OrderData]) error { return nil }).
		Step("charge", func(c *flux.Ctx[OrderInput, OrderData]) error {
			calls++
			if calls <= failures {
				return errGatewayTimeout
			}
			c.Data.PaymentID = "P-" + c.Input.OrderID
			return nil
		}, flux.Retries(3), flux.Backoff(20*time.Millisecond, 100*time.Millisecond)).
		Commit("notify", func(c *flux.Ctx[OrderInput, OrderData]) error { return nil })
}

func main() {
	path := flag.String("trace", "./.flux/trace.ndjson", "trace file to write (it is reset)")
	flag.Parse()
	if err := run(context.Background(), *path, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run writes the trace of four runs to path.
func run(ctx context.Context, path string, out io.Writer) error {
	sink, err := tracefile.New(path, tracefile.Reset(true))
	if err != nil {
		return err
	}
	engine, err := flux.NewEngine(flux.Config{Trace: sink, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	for _, kind := range []string{"auto", "manual", "risk"} {
		res, err := flux.Execute(ctx, engine, routing, RouteInput{Kind: kind})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "event-routing %-6s → %s\n", kind, res.ID)
	}
	res, err := flux.Execute(ctx, engine, newOrderFlow(2), OrderInput{OrderID: "ORD-001"})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "order-fulfillment    → %s (charge took %d attempts)\n", res.ID, len(res.Steps[1].Attempts))
	if err := engine.Close(); err != nil {
		return err
	}
	if err := sink.Close(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\ntrace written to %s; open it with\n\n  go run ./cmd/flux dev --trace %s --port 4280\n", path, path)
	return nil
}
