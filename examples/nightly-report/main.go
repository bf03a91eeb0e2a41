// Nightly-report sends a sales report every night at 02:00, Paris time: a
// workflow (gather → render → commit "send") started by a cron schedule,
// with catch-up Latest (a night missed while the program was down is sent
// once when it comes back, not once per night missed). Runs and the
// schedule live in a SQLite file; every process started on it runs the
// schedule, and each night still sends one report.
//
//	go run ./examples/nightly-report                       # until Ctrl-C, on ./data/nightly.db
//	go run ./examples/nightly-report --once-at 2026-12-03T02:00:00+01:00
//	go run ./cmd/flux schedules list --db ./data/nightly.db
//
// --once-at TIME makes one scheduler pass as if the clock read TIME (a
// tick of the schedule), waits for the run of that tick and prints it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/schedule"
	"github.com/flux-go/flux/sqlite"
)

// The schedule.
const (
	ScheduleName = "nightly-report"
	Spec         = "0 2 * * *"
	TimeZone     = "Europe/Paris"
)

// Input is the report workflow's input: the schedule's.
type Input struct {
	To string `json:"to"`
}

// Report is what the report workflow's nodes record.
type Report struct {
	Day     string  `json:"day"` // the day reported on, in Paris
	Orders  int     `json:"orders"`
	Revenue float64 `json:"revenue"`
	Body    string  `json:"body,omitempty"`
	SentTo  string  `json:"sentTo,omitempty"`
}

// Sender sends a report; key is the same for every attempt of one run,
// so that a sender that deduplicates sends each report once.
type Sender func(ctx context.Context, key, to, body string) error

// ReportFlow gathers the sales of the day before the run's tick, renders
// them and sends them with send.
func ReportFlow(send Sender) *flux.Workflow[Input, Report] {
	return flux.New[Input, Report]("nightly-report").
		Validate(func(in Input) error {
			if in.To == "" {
				return errors.New("the report has no recipient (to)")
			}
			return nil
		}).
		Step("gather", func(c *flux.Ctx[Input, Report]) error {
			_, tick, err := schedule.ParseRunID(c.RunID())
			if err != nil {
				return flux.Permanent(err)
			}
			paris, err := time.LoadLocation(TimeZone)
			if err != nil {
				return flux.Permanent(err)
			}
			day := tick.In(paris).AddDate(0, 0, -1)
			c.Data.Day = day.Format(time.DateOnly)
			c.Data.Orders, c.Data.Revenue = sales(day)
			return nil
		}).
		Step("render", func(c *flux.Ctx[Input, Report]) error {
			c.Data.Body = fmt.Sprintf("Sales of %s: %d orders, %.2f EUR", c.Data.Day, c.Data.Orders, c.Data.Revenue)
			return nil
		}).
		Commit("send", func(c *flux.Ctx[Input, Report]) error {
			if err := send(c, c.IdempotencyKey(), c.Input.To, c.Data.Body); err != nil {
				return err
			}
			c.Data.SentTo = c.Input.To
			return nil
		})
}

// sales stands for a query of the day's orders.
func sales(day time.Time) (orders int, revenue float64) {
	orders = 10 + day.Day()
	return orders, float64(orders) * 37.5
}

// config is the command line.
type config struct {
	db     string
	onceAt string // RFC 3339; "" runs until interrupted
	to     string
}

func main() {
	var c config
	flag.StringVar(&c.db, "db", "./data/nightly.db", "SQLite database file")
	flag.StringVar(&c.onceAt, "once-at", "", "make one pass as if the clock read this RFC 3339 time (a tick: 02:00 in Paris), print the run and exit")
	flag.StringVar(&c.to, "to", "ops@example.com", "the report's recipient")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "nightly-report:", err)
		os.Exit(1)
	}
}

// run sets up the engine and the schedule, then makes one pass (--once-at)
// or runs the scheduler until ctx ends.
func run(ctx context.Context, c config, stdout io.Writer) error {
	out := &lockedWriter{w: stdout}
	var at time.Time
	if c.onceAt != "" {
		var err error
		if at, err = time.Parse(time.RFC3339, c.onceAt); err != nil {
			return fmt.Errorf("--once-at %q: want an RFC 3339 time such as 2026-12-03T02:00:00+01:00", c.onceAt)
		}
	}
	if err := os.MkdirAll(filepath.Dir(c.db), 0o755); err != nil {
		return err
	}
	store, err := sqlite.Open(c.db)
	if err != nil {
		return err
	}
	defer store.Close()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	engine, err := flux.NewEngine(flux.Config{Storage: store, Logger: logger})
	if err != nil {
		return err
	}
	defer engine.Close()
	flow := ReportFlow(func(ctx context.Context, key, to, body string) error {
		fmt.Fprintf(out, "to %s: %s\n", to, body) // a mail, in real life
		return nil
	})
	if err := engine.Register(flow); err != nil {
		return err
	}
	clock := time.Now
	if !at.IsZero() {
		// As if the program had been running since a minute before.
		clock = func() time.Time { return at.Add(-time.Minute) }
	}
	s, err := schedule.New(engine, schedule.Options{Logger: logger, Now: clock})
	if err != nil {
		return err
	}
	sc := schedule.Schedule{Name: ScheduleName, Spec: Spec, TimeZone: TimeZone, CatchUp: schedule.Latest}
	if err := schedule.Add(ctx, s, flow, sc, Input{To: c.to}); err != nil {
		return err
	}
	if !at.IsZero() {
		return once(ctx, engine, s, flow, at, out)
	}
	infos, err := schedule.List(ctx, store, time.Now())
	if err != nil {
		return err
	}
	for _, i := range infos {
		if i.Name == ScheduleName && !i.NextTick.IsZero() {
			fmt.Fprintf(out, "scheduler running: %s at %q in %s, next tick %s (Ctrl-C stops)\n", ScheduleName, Spec, TimeZone, i.NextTick.Format(time.RFC3339))
		} else if i.Name == ScheduleName {
			fmt.Fprintf(out, "scheduler running: %s is paused (flux schedules resume %s --db %s)\n", ScheduleName, ScheduleName, c.db)
		}
	}
	err = s.Run(ctx)
	if ctx.Err() == nil {
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return engine.Shutdown(sctx)
}

// once makes one pass at at, waits for the run of tick at and prints it.
func once(ctx context.Context, engine *flux.Engine, s *schedule.Scheduler, flow *flux.Workflow[Input, Report], at time.Time, out io.Writer) error {
	n, err := s.Tick(ctx, at)
	if err != nil {
		return err
	}
	id := schedule.RunID(ScheduleName, at)
	fmt.Fprintf(out, "pass at %s: runs started: %d\n", at.Format(time.RFC3339), n)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := flux.Wait(wctx, engine, flow, id)
	if errors.Is(err, flux.ErrRunNotFound) {
		return fmt.Errorf("no run of the tick %s: it is not a tick of %q in %s, or the schedule's last tick is later (see flux schedules list)", at.Format(time.RFC3339), Spec, TimeZone)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "run %s %s: report of %s sent to %s\n", res.ID, res.Status, res.Data.Day, res.Data.SentTo)
	return nil
}

// lockedWriter serialises the writes of the workflow's goroutines and of
// main's.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
