// Command gen0001 wrote the schema-0001 fixtures of internal/migratetest with
// the release that had schema 0001 (commit 63453f7): a
// SQLite file and a PostgreSQL schema, each holding a completed run, a
// failed run to retry from a step, a cancelled run, and an unfinished run
// whose owner died. It is kept for the record; later releases do not build
// it, as their API differs.
//
//	go run ./internal/migratetest/gen0001 -sqlite testdata/0001.db -postgres URL -schema fixture0001
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/postgres"
	"github.com/flux-go/flux/sqlite"
)

// In and Data are the fixtures' input and data.
type In struct {
	Order string `json:"order"`
	Cents int    `json:"cents"`
}

type Data struct {
	Checked  bool     `json:"checked"`
	ChargeID string   `json:"chargeId,omitempty"`
	Shipped  bool     `json:"shipped"`
	Notes    []string `json:"notes,omitempty"`
}

var declined = true

// order is the fixtures' workflow: check → charge (retried; declined while
// declined is set) → ship (a commit) → notify.
var order = flux.New[In, Data]("fixture-order").
	Step("check", func(c *flux.Ctx[In, Data]) error {
		c.Data.Checked = true
		c.Data.Notes = append(c.Data.Notes, "checked "+c.Input.Order)
		return nil
	}).
	Step("charge", func(c *flux.Ctx[In, Data]) error {
		if c.Attempt() == 1 {
			return errors.New("gateway timeout")
		}
		if declined && c.Input.Order == "o-failed" {
			return flux.Permanent(errors.New("card declined"))
		}
		if c.Input.Order == "o-cancelled" {
			<-c.Done()
			return c.Err()
		}
		if c.Input.Order == "o-unfinished" {
			os.Exit(0) // dies holding the run: nothing after is written
		}
		c.Data.ChargeID = "ch-" + c.Input.Order
		return nil
	}, flux.Retries(2), flux.NoBackoff()).
	Commit("ship", func(c *flux.Ctx[In, Data]) error {
		c.Data.Shipped = true
		return nil
	}).
	Step("notify", func(c *flux.Ctx[In, Data]) error {
		c.Data.Notes = append(c.Data.Notes, "notified")
		return nil
	})

func main() {
	sqlitePath := flag.String("sqlite", "", "SQLite file to write")
	pgURL := flag.String("postgres", "", "PostgreSQL URL")
	schema := flag.String("schema", "fixture0001", "PostgreSQL schema to write")
	flag.Parse()
	ctx := context.Background()
	var store flux.Storage
	switch {
	case *sqlitePath != "":
		s, err := sqlite.Open(*sqlitePath)
		if err != nil {
			log.Fatal(err)
		}
		store = s
	case *pgURL != "":
		s, err := postgres.Open(ctx, *pgURL, postgres.Schema(*schema))
		if err != nil {
			log.Fatal(err)
		}
		store = s
	default:
		log.Fatal("-sqlite or -postgres")
	}
	e, err := flux.NewEngine(flux.Config{Storage: store, ID: "fixture", LeaseDuration: time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range []string{"o-completed", "o-failed"} {
		res, err := flux.Execute(ctx, e, order, In{Order: o, Cents: 1250}, flux.RunID("run-"+o[2:]))
		fmt.Println(res.ID, res.Status, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		res, err := flux.Execute(cctx, e, order, In{Order: "o-cancelled"}, flux.RunID("run-cancelled"))
		fmt.Println(res.ID, res.Status, err)
		close(done)
	}()
	for {
		run, err := e.Get(ctx, "run-cancelled")
		if err == nil && len(run.Steps[1].Attempts) > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := e.Cancel(ctx, "run-cancelled"); err != nil {
		log.Fatal(err)
	}
	<-done
	cancel()
	// Last: a run whose process dies in charge, its lease held.
	_, err = flux.Execute(ctx, e, order, In{Order: "o-unfinished", Cents: 990}, flux.RunID("run-unfinished"))
	log.Fatal("the unfinished run did not stop the process: ", err)
}
