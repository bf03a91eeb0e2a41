package sqlite_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/sqlite"
)

type orderIn struct{ OrderID string }

type orderData struct {
	Reserved bool
	Receipt  string
}

var orders = flux.New[orderIn, orderData]("orders").
	Step("reserve", func(c *flux.Ctx[orderIn, orderData]) error { c.Data.Reserved = true; return nil }).
	Commit("charge", func(c *flux.Ctx[orderIn, orderData]) error {
		c.Data.Receipt = "receipt-" + c.Input.OrderID
		return nil
	})

// Open a store and run an engine on it: every checkpoint is durable on disk
// when the step that made it returns, and a run that a crash interrupted is
// continued by the next engine that registers its workflow.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "flux-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := sqlite.Open(filepath.Join(dir, "data", "workflows.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	engine, err := flux.NewEngine(flux.Config{Storage: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()
	if err := engine.Register(orders); err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	res, err := flux.Execute(ctx, engine, orders, orderIn{OrderID: "o-1"})
	if err != nil {
		log.Fatal(err)
	}
	run, err := store.Get(ctx, res.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(run.Status, res.Data.Receipt, string(run.Data))
	// Output: completed receipt-o-1 {"Reserved":true,"Receipt":"receipt-o-1"}
}
