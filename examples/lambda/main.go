// Lambda is the seed's AWS Lambda example in Go: a function that answers an
// event {"orderId": "..."} by executing the lambda-flow workflow (a prepare
// step, then a notify commit) and returns {"status": "...", "id": "..."}.
//
// The engine and its storage are made once per cold start, before
// lambda.Start, and serve every invocation of the instance. The storage is
// named by FLUX_STORAGE_URL (see package storeurl); the default, memory:,
// forgets everything when the instance goes away, so deploy with a durable
// one such as postgres://…?pool_max_conns=2 (see storeurl about pools).
//
// The run's ID is derived from the order ID, so Lambda's retries of an
// invocation, and duplicate deliveries of the event, never run the notify
// commit twice: a retry of a run that ended returns it as it ended, and a
// retry of a run cut off by the function's timeout continues it. The
// engine runs no background workers: a frozen instance cannot be counted on
// to work between invocations, so an interrupted run is continued by the
// next invocation for its order.
//
// Build it for the provided.al2023 runtime (the binary must be named
// bootstrap):
//
//	GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -o bootstrap ./examples/lambda
//
// Run it locally under the Lambda runtime interface emulator, from the
// module root:
//
//	go build -o /tmp/bootstrap ./examples/lambda
//	FLUX_STORAGE_URL=sqlite:/tmp/flux.db go tool aws-lambda-rie \
//	    --runtime-interface-emulator-address 127.0.0.1:9000 /tmp/bootstrap
//	curl -d '{"orderId":"o-1"}' http://127.0.0.1:9000/2015-03-31/functions/function/invocations
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/storeurl"
)

// Event is the invocation's payload.
type Event struct {
	OrderID string `json:"orderId"`
}

// Response is the invocation's answer: the run's status and ID.
type Response struct {
	Status flux.Status `json:"status"`
	ID     string      `json:"id"`
}

// Data is what the workflow's nodes record.
type Data struct {
	Ready    bool `json:"ready"`
	Notified bool `json:"notified"`
}

// Notifier tells the world an order is ready; key is the same on every
// attempt for the run, for the receiving API to drop duplicates.
type Notifier func(ctx context.Context, orderID, key string) error

// newWorkflow returns the seed's lambda-flow workflow, whose notify commit
// calls notify.
func newWorkflow(notify Notifier) *flux.Workflow[Event, Data] {
	return flux.New[Event, Data]("lambda-flow").
		Validate(func(ev Event) error {
			if ev.OrderID == "" {
				return errors.New(`orderId is empty; send {"orderId": "..."}`)
			}
			return nil
		}).
		Step("prepare", func(c *flux.Ctx[Event, Data]) error {
			c.Data.Ready = true
			return nil
		}).
		Commit("notify", func(c *flux.Ctx[Event, Data]) error {
			if err := notify(c, c.Input.OrderID, c.IdempotencyKey()); err != nil {
				return err
			}
			c.Data.Notified = true
			return nil
		})
}

// runID returns the ID of the run of an order: the same for every delivery
// of its event.
func runID(orderID string) string { return "lambda-flow:" + orderID }

// app is what a cold start makes: the storage, the engine and the workflow.
type app struct {
	store  flux.Storage
	engine *flux.Engine
	flow   *flux.Workflow[Event, Data]
}

// newApp opens the storage named by storageURL ("" means memory:) and
// starts an engine on it.
func newApp(ctx context.Context, storageURL string, log *slog.Logger, notify Notifier) (*app, error) {
	if storageURL == "" {
		storageURL = "memory:"
	}
	store, err := storeurl.Open(ctx, storageURL)
	if err != nil {
		return nil, err
	}
	engine, err := flux.NewEngine(flux.Config{Storage: store, Logger: log, Workers: -1})
	if err != nil {
		store.Close()
		return nil, err
	}
	return &app{store: store, engine: engine, flow: newWorkflow(notify)}, nil
}

// handle is the Lambda handler. A run that ended, completed or not, is
// answered with its status; an error is returned only when there is no
// run to report (bad input, storage down) or the run was cut off, so that
// Lambda's retry continues it.
func (a *app) handle(ctx context.Context, ev Event) (Response, error) {
	res, err := flux.Execute(ctx, a.engine, a.flow, ev, flux.RunID(runID(ev.OrderID)))
	if res == nil {
		return Response{}, err
	}
	if err != nil && !res.Status.Final() {
		return Response{}, fmt.Errorf("run %s is %s: %w", res.ID, res.Status, err)
	}
	return Response{Status: res.Status, ID: res.ID}, nil
}

// close stops the engine, then closes the storage.
func (a *app) close() {
	a.engine.Close()
	a.store.Close()
}

// logNotify is the example's notifier: it logs the order.
func logNotify(log *slog.Logger) Notifier {
	return func(ctx context.Context, orderID, key string) error {
		log.InfoContext(ctx, "order ready", "order_id", orderID, "idempotency_key", key)
		return nil
	}
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	a, err := newApp(context.Background(), os.Getenv("FLUX_STORAGE_URL"), log, logNotify(log))
	if err != nil {
		log.Error("cold start failed", "err", err)
		os.Exit(1)
	}
	lambda.StartWithOptions(a.handle, lambda.WithEnableSIGTERM(a.close))
}
