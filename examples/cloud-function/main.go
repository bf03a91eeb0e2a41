// Cloud-function is the seed's order workflow behind one HTTP function, in
// the shape Google Cloud Functions (Go, functions framework) and Azure
// Functions custom handlers run: POST {"orderId": "..."} executes the
// order-flow workflow (a prepare step, then a notify commit) and answers
// 200 {"status": "...", "id": "..."}. Bad input is answered 400 with an RFC
// 9457 problem (application/problem+json).
//
// The engine and its storage are made at the first request of an instance
// (its cold start) and serve all later ones. The storage is named by
// FLUX_STORAGE_URL (see package storeurl); the default, memory:, forgets
// everything when the instance goes away, so deploy with a durable one
// such as postgres://…?pool_max_conns=2 (see storeurl about pools).
//
// The run's ID is derived from the order ID, so a client's retry, or a
// duplicate request, never runs the notify commit twice: a run that ended
// is answered as it ended (200, with status completed, failed or
// cancelled), and a run cut off by the function's timeout is answered 503
// and continued by the next request for its order.
//
// Run it locally from the module root:
//
//	FLUX_STORAGE_URL=sqlite:./data/workflows.db PORT=8080 go run ./examples/cloud-function
//	curl -d '{"orderId":"o-1"}' http://127.0.0.1:8080/
//
// On Google Cloud Functions, copy OrderFlow and what it uses into the
// function's package and register it in an init function with
// functions.HTTP("OrderFlow", OrderFlow) from
// github.com/GoogleCloudPlatform/functions-framework-go/functions. On
// Azure Functions, deploy this main as a custom handler: host.json sets
// "customHandler": {"description": {"defaultExecutablePath": "handler"},
// "enableForwardingHttpRequest": true} and an HTTP-triggered function named
// OrderFlow forwards its requests here; main listens on
// FUNCTIONS_CUSTOMHANDLER_PORT, the port Azure gives it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/storeurl"
)

// Order is the request's body.
type Order struct {
	OrderID string `json:"orderId"`
}

// Response is the answer: the run's status and ID.
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

// maxBody bounds a request's body.
const maxBody = 64 << 10

// newWorkflow returns the order-flow workflow, whose notify commit calls
// notify.
func newWorkflow(notify Notifier) *flux.Workflow[Order, Data] {
	return flux.New[Order, Data]("order-flow").
		Validate(func(o Order) error {
			if o.OrderID == "" {
				return errors.New(`orderId is empty; send {"orderId": "..."}`)
			}
			return nil
		}).
		Step("prepare", func(c *flux.Ctx[Order, Data]) error {
			c.Data.Ready = true
			return nil
		}).
		Commit("notify", func(c *flux.Ctx[Order, Data]) error {
			if err := notify(c, c.Input.OrderID, c.IdempotencyKey()); err != nil {
				return err
			}
			c.Data.Notified = true
			return nil
		})
}

// runID returns the ID of the run of an order: the same for every request
// for it.
func runID(orderID string) string { return "order-flow:" + orderID }

// app is what a cold start makes: the storage, the engine and the workflow.
type app struct {
	store  flux.Storage
	engine *flux.Engine
	flow   *flux.Workflow[Order, Data]
	log    *slog.Logger
}

// newApp opens the storage named by storageURL ("" means memory:) and
// starts an engine on it. The engine runs no background workers: an
// instance may be frozen between requests, so an interrupted run is
// continued by the next request for its order.
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
	return &app{store: store, engine: engine, flow: newWorkflow(notify), log: log}, nil
}

// close stops the engine, then closes the storage.
func (a *app) close() {
	a.engine.Close()
	a.store.Close()
}

// ServeHTTP executes the run of the order in the request's body.
func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeProblem(w, http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed",
			fmt.Sprintf(`%s is not allowed; POST {"orderId": "..."}`, r.Method))
		return
	}
	var o Order
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeProblem(w, http.StatusRequestEntityTooLarge, "payload-too-large", "Payload too large",
				fmt.Sprintf("the body is larger than %d bytes", maxBody))
			return
		}
		writeProblem(w, http.StatusBadRequest, "bad-json", "Malformed JSON",
			fmt.Sprintf(`the body is not {"orderId": "..."}: %v`, err))
		return
	}
	if dec.More() {
		writeProblem(w, http.StatusBadRequest, "bad-json", "Malformed JSON", "the body holds more than one JSON value")
		return
	}
	res, err := flux.Execute(r.Context(), a.engine, a.flow, o, flux.RunID(runID(o.OrderID)))
	switch {
	case errors.Is(err, flux.ErrInvalidInput):
		writeProblem(w, http.StatusBadRequest, "invalid-input", "Invalid input", err.Error())
	case res == nil || (err != nil && !res.Status.Final()):
		// No run to report, or one cut off: a retry continues it.
		a.log.ErrorContext(r.Context(), "order not done", "order_id", o.OrderID, "err", err)
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, "unavailable", "Unavailable",
			fmt.Sprintf("the run of order %q did not finish; retry the request to continue it", o.OrderID))
	default:
		writeJSON(w, http.StatusOK, "application/json", Response{Status: res.Status, ID: res.ID})
	}
}

// Problem is an RFC 9457 problem detail, the body of an error response
// (application/problem+json), with the fields and type URNs that Flux's
// HTTP API uses.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// writeProblem writes the problem of kind typ ("bad-json" is the type
// urn:flux:problem:bad-json).
func writeProblem(w http.ResponseWriter, status int, typ, title, detail string) {
	writeJSON(w, status, "application/problem+json", Problem{
		Type: "urn:flux:problem:" + typ, Title: title, Status: status, Detail: detail,
	})
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// logger is the log of the function's instance.
var logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))

// instance is the app of this instance, made at its first request.
var instance = sync.OnceValues(func() (*app, error) {
	return newApp(context.Background(), os.Getenv("FLUX_STORAGE_URL"), logger, logNotify(logger))
})

// OrderFlow is the HTTP function: POST {"orderId": "..."} executes the
// order's run and answers {"status": "...", "id": "..."}.
func OrderFlow(w http.ResponseWriter, r *http.Request) {
	a, err := instance()
	if err != nil {
		logger.ErrorContext(r.Context(), "cold start failed", "err", err)
		writeProblem(w, http.StatusServiceUnavailable, "unavailable", "Unavailable", "the function cannot open its storage")
		return
	}
	a.ServeHTTP(w, r)
}

// logNotify is the example's notifier: it logs the order.
func logNotify(log *slog.Logger) Notifier {
	return func(ctx context.Context, orderID, key string) error {
		log.InfoContext(ctx, "order ready", "order_id", orderID, "idempotency_key", key)
		return nil
	}
}

// listenAddr returns the address to serve on: Azure's
// FUNCTIONS_CUSTOMHANDLER_PORT, else PORT (Cloud Run, the functions
// framework), else 8080.
func listenAddr(getenv func(string) string) string {
	for _, k := range []string{"FUNCTIONS_CUSTOMHANDLER_PORT", "PORT"} {
		if p := getenv(k); p != "" {
			return ":" + p
		}
	}
	return ":8080"
}

func main() {
	a, err := instance()
	if err != nil {
		logger.Error("cold start failed", "err", err)
		os.Exit(1)
	}
	// The platforms stop an instance with SIGTERM.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Every path: Azure forwards /api/OrderFlow, the others /.
	srv := &http.Server{Addr: listenAddr(os.Getenv), Handler: http.HandlerFunc(OrderFlow), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		// Requests in flight get a few seconds; runs they leave
		// interrupted are continued by the retries of their orders.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	logger.Info("listening", "addr", srv.Addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		logger.Error("serve", "err", err)
		os.Exit(1)
	}
	a.close()
}
