package flux_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/flux-go/flux"
)

type tripData struct{ Booked []string }

// effects records side effects in order, as an outside system would see
// them.
type effects struct {
	mu  sync.Mutex
	log []string
}

func (f *effects) add(s string) {
	f.mu.Lock()
	f.log = append(f.log, s)
	f.mu.Unlock()
}

func (f *effects) get() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// tripFlow books a flight (A) and a hotel (B), each with an undo, then
// fails for good to book a car (C). undoA replaces the flight's undo when
// not nil.
func tripFlow(fx *effects, undoA flux.Handler[string, tripData]) *flux.Workflow[string, tripData] {
	book := func(what string) flux.Handler[string, tripData] {
		return func(c *flux.Ctx[string, tripData]) error {
			fx.add("book " + what)
			c.Data.Booked = append(c.Data.Booked, what)
			return nil
		}
	}
	cancel := func(what string) flux.Handler[string, tripData] {
		return func(c *flux.Ctx[string, tripData]) error {
			fx.add("cancel " + what)
			return nil
		}
	}
	if undoA == nil {
		undoA = cancel("flight")
	}
	return flux.New[string, tripData]("trip").
		Commit("flight", book("flight"), flux.Undo(undoA)).
		Commit("hotel", book("hotel"), flux.Undo(cancel("hotel"))).
		Commit("car", func(c *flux.Ctx[string, tripData]) error {
			fx.add("car refused")
			return flux.Permanent(errors.New("no car available"))
		})
}

func TestSagaUndoesInReverseOrder(t *testing.T) {
	ctx := context.Background()
	fx := new(effects)
	w := tripFlow(fx, nil)
	e := quietEngine(t, flux.Config{})
	res, err := flux.Execute(ctx, e, w, "lisbon")
	var serr *flux.StepError
	if !errors.As(err, &serr) || serr.Step != "car" || res.Status != flux.StatusFailed {
		t.Fatalf("Execute = %v, %v; want failed at car", res.Status, err)
	}
	want := []string{"book flight", "book hotel", "car refused", "cancel hotel", "cancel flight"}
	if got := fx.get(); !slices.Equal(got, want) {
		t.Fatalf("effects %v, want %v", got, want)
	}
	names := []string{}
	for _, s := range res.Steps {
		names = append(names, s.Name+":"+string(s.Status))
	}
	wantSteps := []string{"flight:completed", "hotel:completed", "car:failed", "undo:hotel:completed", "undo:flight:completed"}
	if !slices.Equal(names, wantSteps) {
		t.Fatalf("steps %v, want %v", names, wantSteps)
	}
	if _, err := flux.Resume(ctx, e, w, res.ID); !errors.Is(err, flux.ErrCompensated) {
		t.Fatalf("Resume of a compensated run: %v, want ErrCompensated", err)
	}
	if got := fx.get(); len(got) != len(want) {
		t.Fatalf("the refused Resume had effects: %v", got)
	}
}

func TestSagaCompletedRunSkipsUndos(t *testing.T) {
	fx := new(effects)
	w := flux.New[string, tripData]("ok-trip").
		Commit("flight", func(c *flux.Ctx[string, tripData]) error { fx.add("book flight"); return nil },
			flux.Undo(func(c *flux.Ctx[string, tripData]) error { fx.add("cancel flight"); return nil }))
	e := quietEngine(t, flux.Config{})
	res, err := flux.Execute(context.Background(), e, w, "porto")
	if err != nil || res.Status != flux.StatusCompleted {
		t.Fatal(res.Status, err)
	}
	if got := fx.get(); !slices.Equal(got, []string{"book flight"}) || res.Steps[1].Status != flux.StatusSkipped {
		t.Fatalf("effects %v, undo %s; want the undo skipped", got, res.Steps[1].Status)
	}
}

// The engine stops between the two undos: the next one runs the second
// undo once, and not the first again.
func TestSagaAcrossACrashBetweenUndos(t *testing.T) {
	ctx := context.Background()
	store := flux.NewMemoryStorage()
	fx := new(effects)
	reached := make(chan struct{})
	// On the first engine the flight's undo never gets to act: the engine
	// stops while it is about to, as a crash would stop it.
	stuck := func(c *flux.Ctx[string, tripData]) error {
		close(reached)
		<-c.Done()
		return c.Err()
	}
	e1 := quietEngine(t, flux.Config{Storage: store})
	done := make(chan error, 1)
	w1 := tripFlow(fx, stuck)
	go func() {
		_, err := flux.Execute(ctx, e1, w1, "rome", flux.RunID("trip-rome"))
		done <- err
	}()
	<-reached
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("the run ended without error on an engine that closed during an undo")
	}
	run, err := store.Get(ctx, "trip-rome")
	if err != nil || run.Status != flux.StatusRunning {
		t.Fatalf("after the stop: %v, %v; want running (compensating)", run.Status, err)
	}
	e2 := quietEngine(t, flux.Config{Storage: store})
	w2 := tripFlow(fx, nil)
	if err := e2.Register(w2); err != nil {
		t.Fatal(err)
	}
	got, err := flux.Wait(ctx, e2, w2, "trip-rome")
	var serr *flux.StepError
	if !errors.As(err, &serr) || serr.Step != "car" || got.Status != flux.StatusFailed {
		t.Fatalf("Wait = %v, %v; want failed at car after the undos", got, err)
	}
	want := []string{"book flight", "book hotel", "car refused", "cancel hotel", "cancel flight"}
	if got := fx.get(); !slices.Equal(got, want) {
		t.Fatalf("effects %v, want %v: each undo once, in reverse order", got, want)
	}
}

func TestUndoOnlyOnCommits(t *testing.T) {
	w := flux.New[string, tripData]("bad").
		Step("s", func(c *flux.Ctx[string, tripData]) error { return nil },
			flux.Undo(func(c *flux.Ctx[string, tripData]) error { return nil }))
	if err := w.Err(); !errors.Is(err, flux.ErrInvalidDefinition) {
		t.Fatalf("Undo on a step: %v, want ErrInvalidDefinition", err)
	}
	w2 := flux.New[string, tripData]("bad2").
		Commit("c", func(c *flux.Ctx[string, tripData]) error { return nil },
			flux.Undo(func(c *flux.Ctx[int, tripData]) error { return nil }))
	if err := w2.Err(); !errors.Is(err, flux.ErrInvalidDefinition) {
		t.Fatalf("Undo with other type parameters: %v, want ErrInvalidDefinition", err)
	}
}
