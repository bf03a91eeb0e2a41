package fluxhttp_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/fluxhttp"
)

// Example mounts the handler under /flux/ and starts and waits for a run
// from another service with a Client.
func Example() {
	type In struct {
		Name string `json:"name"`
	}
	type Data struct {
		Greeting string `json:"greeting"`
	}
	greet := flux.New[In, Data]("greet").
		Step("hello", func(c *flux.Ctx[In, Data]) error {
			c.Data.Greeting = "hello " + c.Input.Name
			return nil
		})
	engine, err := flux.NewEngine(flux.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()
	h, err := fluxhttp.New(fluxhttp.Config{
		Engine: engine,
		Authorize: func(r *http.Request) error {
			if r.Header.Get("Authorization") != "Bearer s3cret" {
				return fmt.Errorf("bad token")
			}
			return nil
		},
	}, fluxhttp.Workflow(greet))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/flux/", http.StripPrefix("/flux", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	c := &fluxhttp.Client{BaseURL: srv.URL + "/flux/", Header: http.Header{"Authorization": {"Bearer s3cret"}}}
	ctx := context.Background()
	id, err := c.Start(ctx, "greet", In{Name: "Ada"}, "greeting-1")
	if err != nil {
		log.Fatal(err)
	}
	res, err := fluxhttp.Wait[Data](ctx, c, id, 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id, res.Run.Status, res.Data.Greeting)
	// Output: greeting-1 completed hello Ada
}
