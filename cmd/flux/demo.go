package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/orderdemo"
)

func init() {
	register("demo", "run the order-fulfillment example and print the run", func(ctx context.Context, args []string) error {
		return demo(ctx, os.Stdout, args)
	})
}

// demo is `flux demo`: it parses the flags, opens the storage and runs the
// order-fulfillment workflow of internal/orderdemo against its fakes.
func demo(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: flux demo [flags]\n\n"+
			"Runs the order-fulfillment workflow (validate, charge, reserve, notify) against\n"+
			"fake inventory, payment and mail services, records it in ./data/workflows.db\n"+
			"(SQLite) unless told otherwise, and prints the run as a table.\n\nflags:\n")
		fs.PrintDefaults()
	}
	so := addStoreFlags(fs, "sqlite")
	failures := fs.Int("failures", 2, "how many times the fake payment gateway fails before the charge goes through;\nmore than 3 exhausts charge's retries and fails the run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q; see flux demo -h", fs.Args())
	}
	if *failures < 0 {
		return fmt.Errorf("-failures %d: want 0 or more", *failures)
	}
	store, closeStore, err := so.open(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	return runDemo(ctx, out, store, *failures)
}

// runDemo places the sample order on an engine over store, with a payment
// gateway that fails the given number of times, and prints the stored run.
// It returns an error if the run did not complete.
func runDemo(ctx context.Context, out io.Writer, store flux.Storage, failures int) error {
	svc := orderdemo.NewServices(failures)
	engine, err := flux.NewEngine(flux.Config{
		Storage: store,
		Logger:  slog.New(slog.DiscardHandler), // the hook and the table tell the story
		Hooks: flux.Hooks{
			StepRetry: func(ev flux.StepEvent) {
				fmt.Fprintf(out, "%s: attempt %d failed: %v; retrying in %s\n",
					ev.Step, ev.Attempt, ev.Err, ev.Delay.Round(time.Millisecond))
			},
		},
	})
	if err != nil {
		return err
	}
	defer engine.Close()

	res, runErr := flux.Execute(ctx, engine, orderdemo.Workflow(svc), orderdemo.SampleOrder())
	if res == nil {
		return runErr
	}
	// Print what the storage recorded, not what the engine returned.
	run, err := engine.Get(ctx, res.ID)
	if err != nil {
		return fmt.Errorf("reading back run %s: %w", res.ID, err)
	}
	fmt.Fprintln(out)
	if err := writeRunTable(out, run); err != nil {
		return err
	}
	if runErr != nil {
		// The table shows the full error.
		return fmt.Errorf("run %s is %s; with -failures over 3 charge runs out of retries", run.ID, run.Status)
	}
	p := res.Data.Payment
	fmt.Fprintf(out, "\npayment %s of %d cents: %d gateway calls, %d charge (same idempotency key on every attempt)\n",
		p.ID, p.AmountCents, svc.Payments.Calls(), len(svc.Payments.Charges()))
	fmt.Fprintf(out, "reservations %v; %d confirmation mailed\n", res.Data.ReservationIDs, len(svc.Mail.Sent()))
	return nil
}

// writeRunTable prints a stored run: its ID, workflow, status and duration,
// then one row per node with its kind, status, attempts and duration.
func writeRunTable(out io.Writer, run *flux.Run) error {
	end := run.FinishedAt
	if end.IsZero() {
		end = run.UpdatedAt
	}
	fmt.Fprintf(out, "run %s  workflow %s  status %s  duration %s\n\n",
		run.ID, run.Workflow, run.Status, formatDuration(end.Sub(run.CreatedAt)))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tKIND\tSTATUS\tATTEMPTS\tDURATION")
	for _, s := range run.Steps {
		d := "-"
		if !s.StartedAt.IsZero() && !s.FinishedAt.IsZero() {
			d = formatDuration(s.FinishedAt.Sub(s.StartedAt))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.Name, s.Kind, s.Status, len(s.Attempts), d)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if run.Error != "" {
		fmt.Fprintf(out, "\nerror: %s\n", run.Error)
	}
	return nil
}

// formatDuration rounds d to three significant digits or so.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}
