package main

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/sqlite"
)

var lisbon = Trip{To: "Lisbon", Nights: 3}

// The agency's lines, in the order it acts.
const (
	bookFlight   = "flights: booked FL-LIS to Lisbon\n"
	bookHotel    = "hotels: booked HT-LIS in Lisbon for 3 nights\n"
	charge       = "cards: charged 650.00 EUR (CH-65000)\n"
	noCar        = "cars: no car available in Lisbon\n"
	refund       = "cards: refunded CH-65000\n"
	cancelHotel  = "hotels: cancelled HT-LIS\n"
	cancelFlight = "flights: cancelled FL-LIS\n"
)

// nodes is the table the program prints for run id with status status,
// whose nodes have the statuses st, in order: book-flight, book-hotel,
// charge-card, book-car, then the undos, latest commit's first.
func nodes(id, status string, st ...string) string {
	names := []string{"book-flight", "book-hotel", "charge-card", "book-car", "undo:charge-card", "undo:book-hotel", "undo:book-flight"}
	var b strings.Builder
	b.WriteString("run " + id + ": " + status + "\n")
	for i, n := range names {
		kind := "commit"
		if strings.HasPrefix(n, "undo:") {
			kind = "undo"
		}
		b.WriteString("  " + pad(n, 17) + " " + pad(kind, 7) + " " + st[i] + "\n")
	}
	return b.String()
}

func pad(s string, n int) string { return s + strings.Repeat(" ", n-len(s)) }

// stored reads run id from the SQLite file, as another process would.
func stored(t *testing.T, db, id string) *flux.Run {
	t.Helper()
	store, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	run, err := store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// attempts returns how many attempts each node recorded.
func attempts(run *flux.Run) map[string]int {
	m := map[string]int{}
	for _, s := range run.Steps {
		m[s.Name] = len(s.Attempts)
	}
	return m
}

func TestEverythingBooked(t *testing.T) {
	db := filepath.Join(t.TempDir(), "trips.db")
	var out strings.Builder
	if err := run(t.Context(), config{db: db, id: "trip-ok", trip: lisbon, stderr: io.Discard}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	want := bookFlight + bookHotel + charge + "cars: booked CR-LIS in Lisbon\n" +
		nodes("trip-ok", "completed", "completed", "completed", "completed", "completed", "skipped", "skipped", "skipped")
	if out.String() != want {
		t.Fatalf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
	r := stored(t, db, "trip-ok")
	if a := attempts(r); r.Status != flux.StatusCompleted || a["undo:charge-card"]+a["undo:book-hotel"]+a["undo:book-flight"] != 0 {
		t.Fatalf("stored run %s, attempts %v; want completed, no undo executed", r.Status, a)
	}
}

func TestNoCarsUndoesLatestFirst(t *testing.T) {
	db := filepath.Join(t.TempDir(), "trips.db")
	trip := lisbon
	trip.NoCars = true
	var out strings.Builder
	err := run(t.Context(), config{db: db, id: "trip-1", trip: trip, stderr: io.Discard}, &out)
	if err == nil || !errors.Is(err, ErrNoCars) || !strings.Contains(err.Error(), "what was booked is undone: book-car: no car available in Lisbon") {
		t.Fatalf("run: %v; want the trip not booked, for want of a car", err)
	}
	table := nodes("trip-1", "failed", "completed", "completed", "completed", "failed", "completed", "completed", "completed")
	want := bookFlight + bookHotel + charge + noCar + refund + cancelHotel + cancelFlight + table
	if out.String() != want {
		t.Fatalf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
	r := stored(t, db, "trip-1")
	a := attempts(r)
	if r.Status != flux.StatusFailed || a["book-car"] != 1 || a["undo:charge-card"] != 1 || a["undo:book-hotel"] != 1 || a["undo:book-flight"] != 1 {
		t.Fatalf("stored run %s, attempts %v; want failed, book-car tried once (permanent), each undo executed once", r.Status, a)
	}
	// The undos ran in that order: each finished before the next started.
	if a, b, c := r.Steps[4], r.Steps[5], r.Steps[6]; b.StartedAt.Before(a.FinishedAt) || c.StartedAt.Before(b.FinishedAt) {
		t.Fatalf("undo times: refund %s–%s, hotel %s–%s, flight %s–%s; want one after the other, latest commit first",
			a.StartedAt, a.FinishedAt, b.StartedAt, b.FinishedAt, c.StartedAt, c.FinishedAt)
	}

	// The same ID again: the run is shown as it ended, nothing is done twice.
	out.Reset()
	if err := run(t.Context(), config{db: db, id: "trip-1", trip: trip, stderr: io.Discard}, &out); !strings.Contains(errString(err), "no car available in Lisbon") {
		t.Fatalf("second run: %v; want the same failure", err)
	}
	if out.String() != table {
		t.Fatalf("second run printed:\n%s\nwant only the run's nodes:\n%s", out.String(), table)
	}
}

// stuckHotel is the agency as seen from an engine that stops while it
// cancels the hotel: the cancellation never reaches the agency.
type stuckHotel struct {
	Agency
	reached chan struct{}
}

func (s stuckHotel) CancelHotel(ctx context.Context, ref string) error {
	close(s.reached)
	<-ctx.Done()
	return ctx.Err()
}

// The first engine stops between the refund and the hotel's cancellation,
// as a crash would stop it; the program, started again on the same file
// with the same ID, finishes the compensation: every undo acts once.
func TestCrashBetweenUndos(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "trips.db")
	trip := lisbon
	trip.NoCars = true
	log := &lockedWriter{w: new(strings.Builder)} // the agency's, written by the handlers' goroutines
	printed := func() string {
		log.mu.Lock()
		defer log.mu.Unlock()
		return log.w.(*strings.Builder).String()
	}

	store, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	first, err := flux.NewEngine(engineConfig(store, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	reached := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := flux.Execute(ctx, first, TripFlow(stuckHotel{Agency: fakeAgency{out: log}, reached: reached}), trip, flux.RunID("trip-crash"))
		done <- err
	}()
	<-reached
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, flux.ErrClosed) {
		t.Fatalf("Execute on the engine that stopped: %v; want it interrupted", err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if p, want := printed(), bookFlight+bookHotel+charge+noCar+refund; p != want {
		t.Fatalf("before the stop the agency saw:\n%s\nwant:\n%s", p, want)
	}
	r := stored(t, db, "trip-crash")
	if a := attempts(r); r.Status != flux.StatusRunning || a["undo:charge-card"] != 1 || r.Steps[5].Status == flux.StatusCompleted || a["undo:book-flight"] != 0 {
		t.Fatalf("after the stop: run %s, attempts %v; want running (compensating), the refund done, the hotel's undo not", r.Status, a)
	}

	var out strings.Builder
	err = run(ctx, config{db: db, id: "trip-crash", trip: trip, stderr: io.Discard}, &out)
	if !strings.Contains(errString(err), "no car available in Lisbon") {
		t.Fatalf("the program on the same file: %v; want the trip failed for want of a car", err)
	}
	want := cancelHotel + cancelFlight + nodes("trip-crash", "failed", "completed", "completed", "completed", "failed", "completed", "completed", "completed")
	if out.String() != want {
		t.Fatalf("the program printed:\n%s\nwant the two remaining undos, then the nodes:\n%s", out.String(), want)
	}
	if p, want := printed(), bookFlight+bookHotel+charge+noCar+refund; p != want {
		t.Fatalf("the first engine's agency saw more after its stop:\n%s", p)
	}
	r = stored(t, db, "trip-crash")
	a := attempts(r)
	hotel := r.Steps[5]
	if r.Status != flux.StatusFailed || a["undo:charge-card"] != 1 || a["undo:book-flight"] != 1 ||
		len(hotel.Attempts) != 2 || !hotel.Attempts[0].Interrupted || hotel.Attempts[1].Error != "" {
		t.Fatalf("stored run %s, attempts %v, hotel's undo %+v; want failed, the refund and the flight's undo once, the hotel's interrupted then done",
			r.Status, a, hotel.Attempts)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
