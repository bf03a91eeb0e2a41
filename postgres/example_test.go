package postgres_test

import (
	"context"
	"log"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/postgres"
)

// Open a store and run an engine on it. Several processes may do the same on
// one database: each run is executed by one engine at a time, and the others
// take over the runs of an engine that dies.
func ExampleOpen() {
	ctx := context.Background()
	store, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		postgres.Schema("orders"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	engine, err := flux.NewEngine(flux.Config{Storage: store})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()
	// Continue the runs of dead engines, for the workflows this one knows.
	if err := engine.Register(w1); err != nil {
		log.Fatal(err)
	}
	res, err := flux.Execute(ctx, engine, w1, orderIn{OrderID: "o-1"})
	if err != nil {
		log.Fatal(err)
	}
	log.Println(res.Status)
}
