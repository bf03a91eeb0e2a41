package crashtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
)

// A saga killed with SIGKILL between its undos: commits flight and hotel
// succeed, car fails for good, so the hotel's undo runs and is recorded;
// the process is killed right after that record, before the flight's undo
// starts. Another engine then finishes the compensation: each effect
// happens once, in order.

const (
	sagaRun    = "trip-1"
	effectFile = "effects.txt" // one line per outside effect, in order
)

// sagaFlow is the trip saga; its handlers append their effect to the
// effects file in dir.
func sagaFlow(dir string) *flux.Workflow[string, []string] {
	effect := func(what string) error {
		f, err := os.OpenFile(filepath.Join(dir, effectFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return flux.Permanent(err)
		}
		_, err = f.WriteString(what + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return flux.Permanent(err)
		}
		return nil
	}
	do := func(what string) flux.Handler[string, []string] {
		return func(c *flux.Ctx[string, []string]) error {
			if err := effect(what); err != nil {
				return err
			}
			*c.Data = append(*c.Data, what)
			return nil
		}
	}
	return flux.New[string, []string]("trip-saga").
		Commit("flight", do("book flight"), flux.Undo(do("cancel flight"))).
		Commit("hotel", do("book hotel"), flux.Undo(do("cancel hotel"))).
		Commit("car", func(c *flux.Ctx[string, []string]) error {
			if err := effect("car refused"); err != nil {
				return err
			}
			return flux.Permanent(errors.New("no car available"))
		})
}

// runSagaChild executes the saga and kills itself once the hotel's undo
// is recorded.
func runSagaChild(cfg childConfig) error {
	ctx := context.Background()
	store, closeStore, err := openStore(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer closeStore()
	eng, err := flux.NewEngine(flux.Config{
		Storage: store, ID: cfg.Who, LeaseDuration: cfg.Lease,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Hooks: flux.Hooks{StepComplete: func(ev flux.StepEvent) {
			if ev.Step == flux.UndoName("hotel") {
				a := &actor{dir: cfg.Dir, point: "between-undos", k: 1}
				a.maybeKill("between-undos", ev.RunID)
			}
		}},
	})
	if err != nil {
		return err
	}
	defer eng.Close()
	_, err = flux.Execute(ctx, eng, sagaFlow(cfg.Dir), "rome", flux.RunID(sagaRun))
	return fmt.Errorf("the run ended (%v) without the kill between the undos", err)
}

func TestSagaKilledBetweenUndosSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sagaKilledBetweenUndos(t, sqliteStore(dir), dir)
}

func TestSagaKilledBetweenUndosPostgres(t *testing.T) {
	t.Parallel()
	dbURL(t)
	sagaKilledBetweenUndos(t, pgStore(t), t.TempDir())
}

func sagaKilledBetweenUndos(t *testing.T, sc storeConfig, dir string) {
	ctx := context.Background()
	c := spawn(t, childConfig{Mode: "saga", Store: sc, Dir: dir, Who: "saga-a", Lease: crashLease})
	ws := c.wait(t, time.Minute)
	if !ws.Signaled() || ws.Signal().String() != "killed" {
		t.Fatalf("the child was not killed (status %v); its output:\n%s", ws, c.output())
	}
	if killed := readLines(t, filepath.Join(dir, killedFile)); !slices.Equal(killed, []string{sagaRun + " between-undos"}) {
		t.Fatalf("kill file %q, want the run killed between its undos", killed)
	}
	before := readLines(t, filepath.Join(dir, effectFile))
	if want := []string{"book flight", "book hotel", "car refused", "cancel hotel"}; !slices.Equal(before, want) {
		t.Fatalf("effects at the kill %q, want %q", before, want)
	}

	store, closeStore, err := openStore(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	eng, err := flux.NewEngine(flux.Config{Storage: store, ID: "saga-b", LeaseDuration: crashLease,
		RecoveryInterval: 100 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	flow := sagaFlow(dir)
	if err := eng.Register(flow); err != nil {
		t.Fatal(err)
	}
	// The dead engine's lease expires, then this engine's recovery takes
	// the run over.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := flux.Wait(wctx, eng, flow, sagaRun)
	var serr *flux.StepError
	if !errors.As(err, &serr) || serr.Step != "car" || res == nil || res.Status != flux.StatusFailed {
		t.Fatalf("Wait = %v, %v; want the run failed at car", res, err)
	}
	want := []string{"book flight", "book hotel", "car refused", "cancel hotel", "cancel flight"}
	if got := readLines(t, filepath.Join(dir, effectFile)); !slices.Equal(got, want) {
		t.Fatalf("effects %q, want %q: each undo once, the hotel's before the flight's, across the kill", got, want)
	}
	run, err := store.Get(ctx, sagaRun)
	if err != nil {
		t.Fatal(err)
	}
	var undone []string
	for _, n := range run.Steps {
		if strings.HasPrefix(n.Name, "undo:") && n.Status == flux.StatusCompleted {
			undone = append(undone, n.Name)
			if len(n.Attempts) != 1 {
				t.Errorf("%s recorded %d attempts, want 1", n.Name, len(n.Attempts))
			}
		}
	}
	if !slices.Equal(undone, []string{flux.UndoName("hotel"), flux.UndoName("flight")}) {
		t.Fatalf("recorded undos %q, want the hotel's then the flight's", undone)
	}
}
