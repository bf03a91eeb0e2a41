// Http-service is an application that serves Flux next to its own routes:
// the engine boots from one storage URL, fluxhttp's JSON API is mounted
// under /flux/ (its OpenAPI document at /flux/openapi.json, the web viewer
// at /flux/ui/), and the
// application's own POST /orders starts the order flow in the background.
// SIGTERM or Ctrl-C shuts it down gracefully: the server stops taking
// requests, running attempts finish, the rest stays resumable; a second
// signal stops at once.
//
//	go run ./examples/http-service                                # sqlite:./data/workflows.db on 127.0.0.1:8080
//	go run ./examples/http-service --storage memory: --addr :9090
//	curl -d '{"orderId":"o-1"}' http://127.0.0.1:8080/orders
//	curl 'http://127.0.0.1:8080/flux/runs/order-o-1?wait=5s'
//
// Mutations through /flux/ (start, retry, resume, cancel) need
// "Authorization: Bearer $FLUX_API_TOKEN" when FLUX_API_TOKEN is set, and
// come only from the loopback interface when it is not.
package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/fluxhttp"
	"github.com/flux-go/flux/storeurl"
)

// Order is the order flow's input.
type Order struct {
	OrderID string `json:"orderId"`
	UserID  string `json:"userId,omitempty"`
}

// Data is what the order flow's nodes record.
type Data struct {
	Reserved bool `json:"reserved"`
	Notified bool `json:"notified"`
}

// OrderFlow reserves the order's items and notifies the customer.
func OrderFlow() *flux.Workflow[Order, Data] {
	return flux.New[Order, Data]("order-flow").
		Validate(func(o Order) error {
			if o.OrderID == "" {
				return errors.New("orderId is empty")
			}
			return nil
		}).
		Step("reserve", func(c *flux.Ctx[Order, Data]) error { c.Data.Reserved = true; return nil }).
		Commit("notify", func(c *flux.Ctx[Order, Data]) error { c.Data.Notified = true; return nil })
}

// config is the command line.
type config struct {
	addr    string
	storage string
	token   string
	grace   time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on")
	flag.StringVar(&c.storage, "storage", "sqlite:./data/workflows.db", "storage URL: memory:, sqlite:PATH or postgres://...")
	flag.DurationVar(&c.grace, "grace", 30*time.Second, "how long running attempts may finish on shutdown")
	flag.Parse()
	c.token = os.Getenv("FLUX_API_TOKEN")
	if c.storage == "sqlite:./data/workflows.db" {
		if err := os.MkdirAll("data", 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { // a second signal stops at once
		<-ctx.Done()
		stop()
	}()
	if err := serve(ctx, c, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "http-service:", err)
		os.Exit(1)
	}
}

// serve runs the service until ctx ends, then shuts it down. ready, if not
// nil, receives the address it listens on.
func serve(ctx context.Context, c config, out io.Writer, ready chan<- string) error {
	store, err := storeurl.Open(ctx, c.storage)
	if err != nil {
		return err
	}
	defer store.Close()
	engine, err := flux.NewEngine(flux.Config{Storage: store, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	defer engine.Close()
	flow := OrderFlow()
	if err := engine.Register(flow); err != nil {
		return err
	}
	api, err := fluxhttp.New(fluxhttp.Config{Engine: engine, Prefix: "/flux/", Authorize: authorize(c.token), Viewer: true}, fluxhttp.Workflow(flow))
	if err != nil {
		return err
	}
	defer api.Close()

	mux := http.NewServeMux()
	mux.Handle("/flux/", api)
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var o Order
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&o); err != nil {
			http.Error(w, "the body must be an order: "+err.Error(), http.StatusBadRequest)
			return
		}
		id, err := flux.Start(r.Context(), engine, flow, o, flux.RunID("order-"+o.OrderID))
		switch {
		case errors.Is(err, flux.ErrInvalidInput):
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		case err != nil:
			http.Error(w, "storing the run failed; try again", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/flux/runs/"+id)
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]string{"id": id})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if engine.Draining() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "listening on http://%s (API under /flux/, OpenAPI at /flux/openapi.json, viewer at /flux/ui/)\n", ln.Addr())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// Graceful: stop taking requests, then let the runs' attempts finish.
	sctx, cancel := context.WithTimeout(context.Background(), c.grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := engine.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	fmt.Fprintln(out, "stopped")
	return nil
}

// authorize allows mutations with the bearer token, or, without a token,
// from the loopback interface only.
func authorize(token string) func(*http.Request) error {
	return func(r *http.Request) error {
		if token != "" {
			if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) == 1 {
				return nil
			}
			return errors.New("send Authorization: Bearer $FLUX_API_TOKEN")
		}
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsLoopback() {
			return nil
		}
		return errors.New("set FLUX_API_TOKEN to allow changes from other hosts")
	}
}
