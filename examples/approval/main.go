// Approval is an expense approval workflow that waits for a person: the
// run submits the expense, then waits — holding no goroutine, for up to
// --timeout — for the manager's decision, sent as the signal "decision".
// Approved, it pays (a commit); rejected, it tells the submitter; with no
// decision in time, it escalates to finance. Runs live in a SQLite file, so
// every command below is a separate process working on the same runs.
//
//	go run ./examples/approval start 120.50                 # prints the run's ID
//	go run ./examples/approval show RUNID                   # waiting, for what, until when
//	go run ./examples/approval approve RUNID --by ana       # or: reject RUNID --by ana
//	go run ./examples/approval serve                        # executes runs until Ctrl-C: escalates at the timeout
//
// Each command opens --db (default ./data/approval.db) and runs an engine:
// start takes the run to its wait, approve and reject wait (up to --wait)
// for the run to finish, serve keeps executing runs, so that a run nobody
// decides on is woken at its timeout. --timeout (default 48h) is part of
// the workflow's definition: give every command the same one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/sqlite"
)

// SignalDecision is the name of the signal that carries a [Decision].
const SignalDecision = "decision"

// Expense is the workflow's input: what an employee submits.
type Expense struct {
	Cents int64 `json:"cents"` // the amount, in euro cents
}

// Decision is the payload of the signal "decision": the manager's answer.
type Decision struct {
	Approved bool   `json:"approved"`
	By       string `json:"by"`
}

// Claim is what the workflow's nodes record.
type Claim struct {
	Submitted bool      `json:"submitted"`
	Decision  *Decision `json:"decision,omitempty"` // set when the manager decided
	TimedOut  bool      `json:"timedOut,omitempty"` // no decision came in time
	Paid      bool      `json:"paid,omitempty"`
	Notified  bool      `json:"notified,omitempty"`
	Escalated bool      `json:"escalated,omitempty"`
}

// approved, rejected and timedOut choose the branch after the wait.
func approved(c *flux.Ctx[Expense, Claim]) bool {
	return c.Data.Decision != nil && c.Data.Decision.Approved
}

func rejected(c *flux.Ctx[Expense, Claim]) bool {
	return c.Data.Decision != nil && !c.Data.Decision.Approved
}

func timedOut(c *flux.Ctx[Expense, Claim]) bool { return c.Data.TimedOut }

// ExpenseFlow is the approval workflow: the manager has timeout to decide.
// Its fake payment and mail services print what they do to out.
func ExpenseFlow(timeout time.Duration, out io.Writer) *flux.Workflow[Expense, Claim] {
	return flux.New[Expense, Claim]("expense-approval").
		Validate(func(e Expense) error {
			if e.Cents <= 0 {
				return errors.New("the amount must be positive")
			}
			return nil
		}).
		Step("submit", func(c *flux.Ctx[Expense, Claim]) error {
			c.Data.Submitted = true // in real life: file it in the ledger
			return nil
		}).
		WaitSignal("manager-approval", SignalDecision, timeout, func(c *flux.Ctx[Expense, Claim], r flux.Received) error {
			if r.TimedOut {
				c.Data.TimedOut = true
				return nil
			}
			c.Data.Decision = new(Decision)
			return r.Decode(c.Data.Decision)
		}).
		Commit("pay", func(c *flux.Ctx[Expense, Claim]) error {
			// A real payment API takes c.IdempotencyKey(), so that a retry
			// after a crash pays once.
			fmt.Fprintf(out, "payments: paid %s (approved by %s)\n", euros(c.Input.Cents), c.Data.Decision.By)
			c.Data.Paid = true
			return nil
		}, flux.When(approved)).
		Step("notify-rejection", func(c *flux.Ctx[Expense, Claim]) error {
			fmt.Fprintf(out, "mail to the submitter: your expense of %s was rejected by %s\n", euros(c.Input.Cents), c.Data.Decision.By)
			c.Data.Notified = true
			return nil
		}, flux.When(rejected)).
		Step("escalate", func(c *flux.Ctx[Expense, Claim]) error {
			fmt.Fprintf(out, "mail to finance: no decision on the expense of %s within %s\n", euros(c.Input.Cents), timeout)
			c.Data.Escalated = true
			return nil
		}, flux.When(timedOut))
}

// engineConfig is the configuration of every command's engine: runs kept
// in store, warnings logged to logs, and workers that execute runs unless
// workers is false (a command that only reads or only sends a signal).
func engineConfig(store flux.Storage, logs io.Writer, workers bool) flux.Config {
	cfg := flux.Config{
		Storage: store,
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if !workers {
		cfg.Workers = -1
	}
	return cfg
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  approval start AMOUNT                    submit an expense; prints the run's ID
  approval approve RUNID [--by NAME]       approve it
  approval reject RUNID [--by NAME]        reject it
  approval show RUNID                      its status, what it waits for, its data
  approval serve                           execute runs until Ctrl-C (timeouts too)
flags of every command: --db FILE (./data/approval.db), --timeout DURATION (48h)
approve and reject: --by NAME (manager), --wait DURATION (1m; 0 only sends)
`

// command is one invocation of the program.
type command struct {
	name    string
	args    []string // positional
	db      string
	timeout time.Duration
	by      string
	wait    time.Duration
}

// cli runs the command in args and returns the process's exit code: 0 when
// it did what it was asked, 1 when it failed, 2 for a usage error.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	c := command{name: args[0]}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	fs.StringVar(&c.db, "db", "./data/approval.db", "SQLite database file")
	fs.DurationVar(&c.timeout, "timeout", 48*time.Hour, "how long the manager has to decide")
	fs.StringVar(&c.by, "by", "manager", "who decides (approve, reject)")
	fs.DurationVar(&c.wait, "wait", time.Minute, "how long approve and reject wait for the run to finish; 0 only sends the decision")
	var err error
	if c.args, err = parse(fs, args[1:]); err != nil {
		return 2
	}
	n, ok := map[string]int{"start": 1, "approve": 1, "reject": 1, "show": 1, "serve": 0}[c.name]
	switch {
	case !ok:
		fmt.Fprintf(stderr, "approval: unknown command %q\n%s", c.name, usage)
		return 2
	case len(c.args) != n:
		fmt.Fprintf(stderr, "approval: %q takes %d argument(s)\n%s", c.name, n, usage)
		return 2
	}
	if err := c.run(ctx, &lockedWriter{w: stdout}, stderr); err != nil {
		fmt.Fprintln(stderr, "approval:", err)
		return 1
	}
	return 0
}

// run opens the store and an engine and runs the command.
func (c command) run(ctx context.Context, out, stderr io.Writer) error {
	var cents int64
	if c.name == "start" {
		var err error
		if cents, err = parseAmount(c.args[0]); err != nil {
			return err
		}
	}
	store, err := sqlite.Open(c.db)
	if err != nil {
		return err
	}
	defer store.Close()
	// show only reads, and a decision that does not wait only sends: their
	// engines execute nothing.
	decision := c.name == "approve" || c.name == "reject"
	workers := c.name != "show" && !(decision && c.wait <= 0)
	engine, err := flux.NewEngine(engineConfig(store, stderr, workers))
	if err != nil {
		return err
	}
	defer engine.Close()
	flow := ExpenseFlow(c.timeout, out)
	if workers {
		if err := engine.Register(flow); err != nil {
			return err
		}
	}
	switch {
	case c.name == "start":
		return start(ctx, engine, flow, cents, out, stderr)
	case decision:
		d := Decision{Approved: c.name == "approve", By: c.by}
		return decide(ctx, engine, flow, c.db, c.args[0], d, c.wait, out)
	case c.name == "show":
		return show(ctx, engine, c.db, c.args[0], out)
	default:
		return serve(ctx, engine, out)
	}
}

// start submits an expense of cents, prints the run's ID on out, and waits
// until the run waits for the decision.
func start(ctx context.Context, e *flux.Engine, flow *flux.Workflow[Expense, Claim], cents int64, out, stderr io.Writer) error {
	id, err := flux.Start(ctx, e, flow, Expense{Cents: cents})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, id)
	run, err := settle(ctx, e, id)
	if err != nil {
		return fmt.Errorf("run %s was stored but has not reached its wait yet (%w): `serve` continues it", id, err)
	}
	if wi, ok := flux.Waiting(run); ok {
		fmt.Fprintf(stderr, "expense of %s waits at %q for %q until %s\n", euros(cents), wi.Node, wi.Signal, wi.Until.Format(time.RFC3339))
	}
	return nil
}

// settle waits until run id waits or ended, and returns it. (flux.Wait
// returns once a run ended only.)
func settle(ctx context.Context, e *flux.Engine, id string) (*flux.Run, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		run, err := e.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if run.Status == flux.StatusWaiting || run.Status.Final() {
			return run, nil
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-tick.C:
		}
	}
}

// decide sends decision d to run id, then waits up to wait for the run to
// finish and prints how it ended. The signal's key makes a double click
// send once: a second decision with the same key is dropped.
func decide(ctx context.Context, e *flux.Engine, flow *flux.Workflow[Expense, Claim], db, id string, d Decision,
	wait time.Duration, out io.Writer) error {
	key := map[bool]string{true: "approve/", false: "reject/"}[d.Approved] + d.By
	// A double click after the run finished: Signal accepts the duplicate
	// and drops it; say so rather than wait on a finished run.
	if run, gerr := e.Get(ctx, id); gerr == nil && run.Status.Final() {
		for _, s := range run.Signals {
			if s.Key == key {
				fmt.Fprintf(out, "this decision was already delivered; run %s is %s\n", id, run.Status)
				return nil
			}
		}
	}
	err := e.Signal(ctx, id, SignalDecision, d, flux.SignalKey(key))
	switch {
	case errors.Is(err, flux.ErrRunNotFound):
		return fmt.Errorf("no run %s in %s: pass the ID that `start` printed, and the same --db", id, db)
	case errors.Is(err, flux.ErrRunFinished):
		// A double click after the run finished: the first one counted.
		run, gerr := e.Get(ctx, id)
		if gerr != nil {
			return gerr
		}
		for _, s := range run.Signals {
			if s.Key == key {
				fmt.Fprintf(out, "this decision was already delivered; run %s is %s\n", id, run.Status)
				return nil
			}
		}
		return fmt.Errorf("run %s is %s: it no longer takes a decision (`show %s` tells how it ended)", id, run.Status, id)
	case err != nil:
		return err
	}
	if wait <= 0 {
		fmt.Fprintf(out, "decision sent to run %s; `serve` acts on it\n", id)
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	res, err := flux.Wait(wctx, e, flow, id)
	if errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(out, "decision sent to run %s, which has not finished within %s; `show %s` tells where it is\n", id, wait, id)
		return nil
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", id, err)
	}
	fmt.Fprintf(out, "run %s %s\n", id, res.Status)
	return nil
}

// show prints run id's status, what it waits for, and its data.
func show(ctx context.Context, e *flux.Engine, db, id string, out io.Writer) error {
	run, err := e.Get(ctx, id)
	if errors.Is(err, flux.ErrRunNotFound) {
		return fmt.Errorf("no run %s in %s: pass the ID that `start` printed, and the same --db", id, db)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "run %s: %s\n", id, run.Status)
	if wi, ok := flux.Waiting(run); ok {
		fmt.Fprintf(out, "waits at %q for %q until %s\n", wi.Node, wi.Signal, wi.Until.Format(time.RFC3339))
	}
	fmt.Fprintf(out, "input: %s\ndata:  %s\n", run.Input, run.Data)
	return nil
}

// serve executes runs until ctx ends: runs whose decision came, from any
// process, and runs whose wait timed out.
func serve(ctx context.Context, e *flux.Engine, out io.Writer) error {
	fmt.Fprintln(out, "executing runs; Ctrl-C stops")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.Shutdown(sctx)
}

// parse parses args, whose flags may come after positional arguments,
// and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
}

// parseAmount parses an amount in euros, such as 120 or 45.50, into cents.
func parseAmount(s string) (int64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f > 1e9 || math.IsNaN(f) {
		return 0, fmt.Errorf("amount %q: want a positive number of euros, such as 120 or 45.50", s)
	}
	return int64(math.Round(f * 100)), nil
}

func euros(cents int64) string { return fmt.Sprintf("%d.%02d EUR", cents/100, cents%100) }

// lockedWriter serialises the writes of the engine's goroutines and of
// the command's.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
