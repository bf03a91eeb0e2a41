package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

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
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q: flux demo takes flags only (see flux demo -h)", pos[0])
	}
	if *failures < 0 {
		return fmt.Errorf("-failures %d: want 0 or more", *failures)
	}
	store, err := so.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
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
// one row per node with its kind, status, attempts and duration, then one
// line per attempt of each node (see writeAttempts) and the run's error.
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
	if err := writeAttempts(out, run); err != nil {
		return err
	}
	writeWaits(out, run)
	if run.Error != "" {
		fmt.Fprintf(out, "\nerror: %s\n", run.Error)
	}
	return nil
}

// attemptTime is how writeAttempts prints when an attempt started.
const attemptTime = "2006-01-02 15:04:05.000"

// writeAttempts prints every attempt of every node of run, one line each:
// node, number, start, duration and outcome (ok, failed: error, or
// interrupted: error), and the attempt in flight of a node whose InFlight is
// set. It prints nothing when no node has an attempt.
func writeAttempts(out io.Writer, run *flux.Run) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	header := false
	line := func(format string, a ...any) {
		if !header {
			fmt.Fprintln(tw, "\nSTEP\tATTEMPT\tSTARTED\tDURATION\tOUTCOME")
			header = true
		}
		fmt.Fprintf(tw, format, a...)
	}
	for _, s := range run.Steps {
		for _, a := range s.Attempts {
			d := formatDuration(a.Duration)
			if interrupted(a) && a.Duration == 0 {
				d = "unknown" // the engine running it crashed
			}
			line("%s\t#%d\t%s\t%s\t%s\n", s.Name, a.Number, a.StartedAt.Local().Format(attemptTime), d, outcome(a))
		}
		if !s.InFlight.IsZero() {
			line("%s\t#%d\t%s\t-\tin flight\n", s.Name, len(s.Attempts)+1, s.InFlight.Local().Format(attemptTime))
		}
	}
	return tw.Flush()
}

// interrupted reports whether attempt a was cut off before its handler
// returned. Records written before Attempt.Interrupted existed say so only
// by the prefix of the error.
func interrupted(a flux.Attempt) bool {
	return a.Interrupted || strings.HasPrefix(a.Error, "interrupted: ")
}

// outcome says how attempt a ended: "ok", "failed: ERROR" or
// "interrupted: ERROR", the error on one line.
func outcome(a flux.Attempt) string {
	oneLine := func(msg string) string {
		if strings.ContainsFunc(msg, unicode.IsControl) {
			return strconv.Quote(msg) // a newline or tab would break the table
		}
		return msg
	}
	switch {
	case interrupted(a):
		msg := strings.TrimPrefix(a.Error, "interrupted: ")
		if msg == "" {
			return "interrupted"
		}
		return "interrupted: " + oneLine(msg)
	case a.Error == "":
		return "ok"
	case a.Stack != "":
		return "failed: " + oneLine(a.Error) + " (panicked; --json shows the stack)"
	}
	return "failed: " + oneLine(a.Error)
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

// writeWaits prints what a waiting run waits for, and the run's signals.
func writeWaits(out io.Writer, run *flux.Run) {
	if wi, ok := flux.Waiting(run); ok {
		what := "sleeping"
		switch {
		case wi.Key != "":
			what = fmt.Sprintf("waiting for event %q with key %q", wi.Signal, wi.Key)
		case wi.Signal != "":
			what = fmt.Sprintf("waiting for signal %q", wi.Signal)
		}
		until := "with no timeout"
		if !wi.Until.IsZero() {
			until = "until " + wi.Until.Local().Format(time.DateTime)
		}
		fmt.Fprintf(out, "\n%s at %q %s\n", what, wi.Node, until)
	}
	if len(run.Signals) == 0 {
		return
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSIGNAL\tSENT\tRECEIVED BY\tPAYLOAD")
	for _, sg := range run.Signals {
		by := "(in inbox)"
		if sg.Node >= 0 && sg.Node < len(run.Steps) {
			by = run.Steps[sg.Node].Name
		}
		payload := string(sg.Payload)
		if len(payload) > 60 {
			payload = payload[:57] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", sg.Name, sg.SentAt.Local().Format(attemptTime), by, payload)
	}
	_ = tw.Flush()
}
