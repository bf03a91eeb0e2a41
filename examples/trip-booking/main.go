// Trip-booking is a saga: it books a flight, a hotel and charges the card,
// three commits each declared with an undo (flux.Undo: cancel the flight,
// cancel the hotel, refund), then books a car. When the car cannot be
// booked — for good, not for a moment — the undos of what was done run,
// latest first, each exactly once even across a crash, and the run fails.
// The fake agency prints what it does; at the end the program prints the
// run's nodes, where the undos show in reverse order.
//
//	go run ./examples/trip-booking                    # books everything; the undos are skipped
//	go run ./examples/trip-booking --no-cars          # no car: refund, cancel the hotel, cancel the flight
//	go run ./examples/trip-booking --no-cars --id trip-1
//
// Runs are kept in --db (default ./data/trips.db). With --id the start is
// idempotent: running the program again with the same ID continues that
// run if it was interrupted (Ctrl-C, a crash) and otherwise shows it as it
// ended, doing nothing twice.
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
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/sqlite"
)

// Trip is the workflow's input.
type Trip struct {
	To     string `json:"to"`
	Nights int    `json:"nights"`
	// NoCars asks the fake car agency to have no car left, so that
	// book-car fails for good.
	NoCars bool `json:"noCars,omitempty"`
}

// Booking is what the commits record: each one's reference, which its undo
// needs.
type Booking struct {
	Flight string `json:"flight,omitempty"`
	Hotel  string `json:"hotel,omitempty"`
	Charge string `json:"charge,omitempty"`
	Car    string `json:"car,omitempty"`
}

// ErrNoCars is the car agency's answer when it has no car left: trying
// again will not help.
var ErrNoCars = errors.New("no car available")

// Agency is what a trip is booked with. Book and charge calls take an
// idempotency key: the same key books once, so a commit run again after a
// crash has one effect.
type Agency interface {
	BookFlight(ctx context.Context, key string, t Trip) (ref string, err error)
	CancelFlight(ctx context.Context, ref string) error
	BookHotel(ctx context.Context, key string, t Trip) (ref string, err error)
	CancelHotel(ctx context.Context, ref string) error
	Charge(ctx context.Context, key string, cents int64) (ref string, err error)
	Refund(ctx context.Context, ref string) error
	BookCar(ctx context.Context, key string, t Trip) (ref string, err error)
}

// TripFlow is the saga, booking with a.
func TripFlow(a Agency) *flux.Workflow[Trip, Booking] {
	return flux.New[Trip, Booking]("trip-booking").
		Validate(func(t Trip) error {
			if utf8.RuneCountInString(t.To) < 3 || t.Nights < 1 {
				return errors.New("a trip needs a destination (--to) and at least one night (--nights)")
			}
			return nil
		}).
		Commit("book-flight", func(c *flux.Ctx[Trip, Booking]) (err error) {
			c.Data.Flight, err = a.BookFlight(c, c.IdempotencyKey(), c.Input)
			return err
		}, flux.Undo(func(c *flux.Ctx[Trip, Booking]) error {
			return a.CancelFlight(c, c.Data.Flight)
		})).
		Commit("book-hotel", func(c *flux.Ctx[Trip, Booking]) (err error) {
			c.Data.Hotel, err = a.BookHotel(c, c.IdempotencyKey(), c.Input)
			return err
		}, flux.Undo(func(c *flux.Ctx[Trip, Booking]) error {
			return a.CancelHotel(c, c.Data.Hotel)
		})).
		Commit("charge-card", func(c *flux.Ctx[Trip, Booking]) (err error) {
			c.Data.Charge, err = a.Charge(c, c.IdempotencyKey(), price(c.Input))
			return err
		}, flux.Undo(func(c *flux.Ctx[Trip, Booking]) error {
			return a.Refund(c, c.Data.Charge)
		})).
		Commit("book-car", func(c *flux.Ctx[Trip, Booking]) (err error) {
			c.Data.Car, err = a.BookCar(c, c.IdempotencyKey(), c.Input)
			if errors.Is(err, ErrNoCars) {
				// Permanent: no retry; the undos run at once. Any other
				// error is retried first.
				return flux.Permanent(err)
			}
			return err
		})
}

// price is what the trip costs, in euro cents.
func price(t Trip) int64 { return 320_00 + 110_00*int64(t.Nights) }

// engineConfig is the program's engine configuration: runs kept in store,
// warnings and errors logged to logs.
func engineConfig(store flux.Storage, logs io.Writer) flux.Config {
	return flux.Config{
		Storage: store,
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// config is the command line.
type config struct {
	db     string
	id     string
	trip   Trip
	stderr io.Writer // the engine's log
}

func main() {
	c := config{stderr: os.Stderr}
	flag.StringVar(&c.db, "db", "./data/trips.db", "SQLite database file")
	flag.StringVar(&c.id, "id", "", "the run's ID: running again with the same ID continues or shows that run (default: a new run)")
	flag.StringVar(&c.trip.To, "to", "Lisbon", "destination")
	flag.IntVar(&c.trip.Nights, "nights", 3, "nights at the hotel")
	flag.BoolVar(&c.trip.NoCars, "no-cars", false, "the car agency has no car left: book-car fails for good and the undos run")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, c, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "trip-booking:", err)
		os.Exit(1)
	}
}

// run books c.trip, or continues or shows run c.id, and prints the run's
// nodes.
func run(ctx context.Context, c config, stdout io.Writer) error {
	out := &lockedWriter{w: stdout}
	store, err := sqlite.Open(c.db)
	if err != nil {
		return err
	}
	defer store.Close()
	engine, err := flux.NewEngine(engineConfig(store, c.stderr))
	if err != nil {
		return err
	}
	defer engine.Close()
	var opts []flux.RunOption
	if c.id != "" {
		opts = append(opts, flux.RunID(c.id))
	}
	res, err := flux.Execute(ctx, engine, TripFlow(fakeAgency{out: out}), c.trip, opts...)
	if res == nil {
		return err
	}
	fmt.Fprintf(out, "run %s: %s\n", res.ID, res.Status)
	for _, s := range res.Steps {
		fmt.Fprintf(out, "  %-17s %-7s %s\n", s.Name, s.Kind, s.Status)
	}
	var serr *flux.StepError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &serr):
		return fmt.Errorf("the trip is not booked, and what was booked is undone: %s: %w", serr.Step, serr.Err)
	case !res.Status.Final():
		return fmt.Errorf("%w; run the program again with --id %s to continue it", err, res.ID)
	}
	return err
}

// fakeAgency prints what it does, as the agency's own log would show it.
// Its references are made of the destination's first letters.
type fakeAgency struct{ out io.Writer }

func (f fakeAgency) BookFlight(_ context.Context, _ string, t Trip) (string, error) {
	return f.book("flights", "FL-"+code(t.To), "to "+t.To)
}

func (f fakeAgency) BookHotel(_ context.Context, _ string, t Trip) (string, error) {
	return f.book("hotels", "HT-"+code(t.To), fmt.Sprintf("in %s for %d nights", t.To, t.Nights))
}

func (f fakeAgency) Charge(_ context.Context, _ string, cents int64) (string, error) {
	ref := fmt.Sprintf("CH-%d", cents)
	fmt.Fprintf(f.out, "cards: charged %d.%02d EUR (%s)\n", cents/100, cents%100, ref)
	return ref, nil
}

func (f fakeAgency) BookCar(_ context.Context, _ string, t Trip) (string, error) {
	if t.NoCars {
		fmt.Fprintf(f.out, "cars: no car available in %s\n", t.To)
		return "", fmt.Errorf("%w in %s: try other dates or another destination", ErrNoCars, t.To)
	}
	return f.book("cars", "CR-"+code(t.To), "in "+t.To)
}

func (f fakeAgency) CancelFlight(_ context.Context, ref string) error {
	return f.undo("flights", "cancelled", ref)
}

func (f fakeAgency) CancelHotel(_ context.Context, ref string) error {
	return f.undo("hotels", "cancelled", ref)
}

func (f fakeAgency) Refund(_ context.Context, ref string) error {
	return f.undo("cards", "refunded", ref)
}

func (f fakeAgency) book(service, ref, what string) (string, error) {
	fmt.Fprintf(f.out, "%s: booked %s %s\n", service, ref, what)
	return ref, nil
}

func (f fakeAgency) undo(service, did, ref string) error {
	fmt.Fprintf(f.out, "%s: %s %s\n", service, did, ref)
	return nil
}

// code is a reference's part made of the destination: LIS for Lisbon.
func code(to string) string { return strings.ToUpper(string([]rune(to)[:3])) }

// lockedWriter serialises the writes of the handlers' goroutines and of
// run's.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
