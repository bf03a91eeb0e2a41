package flux_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/flux-go/flux"
)

// Start stores the run and returns at once; the engine's workers execute
// it, and Wait returns its result.
func ExampleStart() {
	ctx := context.Background()
	engine, err := flux.NewEngine(flux.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer engine.Close()
	type receipt struct{ Lines []string }
	invoice := flux.New[string, receipt]("invoice").
		Step("price", func(c *flux.Ctx[string, receipt]) error {
			c.Data.Lines = append(c.Data.Lines, "priced "+c.Input)
			return nil
		}).
		Commit("send", func(c *flux.Ctx[string, receipt]) error {
			c.Data.Lines = append(c.Data.Lines, "sent")
			return nil
		})
	id, err := flux.Start(ctx, engine, invoice, "order-42", flux.RunID("invoice-order-42"))
	if err != nil {
		fmt.Println(err)
		return
	}
	again, _ := flux.Start(ctx, engine, invoice, "order-42", flux.RunID("invoice-order-42"))
	res, err := flux.Wait(ctx, engine, invoice, id)
	fmt.Println(id == again, res.Status, res.Data.Lines, err)
	// Output:
	// true completed [priced order-42 sent] <nil>
}
