package flux_test

// Tests of the promises issue 8 found broken, one per finding, through the
// public API.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
)

// Finding 1, a RetryStep racing the run's owner, is tested on every store
// by storagetest.RunEngine (RetryStepRacingTheOwner): on the code before the
// fix, the commit ran twice at the first or second run.

// TestMemoryStorageSharesNothing changes what callers got from the engine
// and its memory store, and checks the store did not change. (The sharing
// rules of every store, for what callers give as well, are tested by
// storagetest's Sharing group.)
func TestMemoryStorageSharesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, flux.Config{})
	w := flux.New[tIn, tData]("share").
		Step("a", func(c *tCtx) error {
			if c.Attempt() == 1 {
				return errTransient
			}
			c.Data.Sum = 7
			return nil
		}, flux.NoBackoff())
	res, err := flux.Execute(ctx, e, w, tIn{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := mustGet(t, e, res.ID)
	res.Steps[0].Attempts[0].Error = "changed by the caller"
	res.Steps[0].Status = flux.StatusFailed
	if got := mustGet(t, e, res.ID); got.Steps[0].Attempts[0].Error != want.Steps[0].Attempts[0].Error || got.Steps[0].Status != flux.StatusCompleted {
		t.Errorf("changing the Result changed the stored run: attempt error %q, status %s", got.Steps[0].Attempts[0].Error, got.Steps[0].Status)
	}

	got := mustGet(t, e, res.ID)
	got.Data[1], got.Input[1] = 'X', 'X'
	got.Steps[0].Attempts[0].Error = "changed after Get"
	if again := mustGet(t, e, res.ID); string(again.Data) != string(want.Data) || string(again.Input) != string(want.Input) ||
		again.Steps[0].Attempts[0].Error != want.Steps[0].Attempts[0].Error {
		t.Errorf("changing a Get's run changed the store: data %s, input %s, attempt error %q", again.Data, again.Input, again.Steps[0].Attempts[0].Error)
	}

	orig := mustGet(t, e, res.ID)
	data, input := string(orig.Data), string(orig.Input)
	c := orig.Clone()
	c.Data[1], c.Input[1] = 'X', 'X'
	c.Steps[0].Attempts[0].Error = "changed in the clone"
	if string(orig.Data) != data || string(orig.Input) != input || orig.Steps[0].Attempts[0].Error != want.Steps[0].Attempts[0].Error {
		t.Errorf("changing a Clone changed the original: data %s input %s attempt error %q", orig.Data, orig.Input, orig.Steps[0].Attempts[0].Error)
	}
}

// newIn is tIn after an incompatible change: a stored {"n":1} does not
// decode into it.
type newIn struct {
	N string `json:"n"`
}

// TestRefusedStartsReleaseTheRun refuses a Resume (the stored input no
// longer decodes) and a RetryStep (an earlier node never finished) and
// checks that another engine can take the run at once, even while the
// refusing engine is open and after it closed.
func TestRefusedStartsReleaseTheRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := flux.NewMemoryStorage()
	var broken atomic.Bool
	broken.Store(true)
	old := flux.New[tIn, tData]("refused").
		Step("a", func(c *tCtx) error {
			if broken.Load() {
				return flux.Permanent(errTransient)
			}
			return nil
		}).
		Step("b", func(c *tCtx) error { return nil })
	changed := flux.New[newIn, tData]("refused").
		Step("a", func(c *flux.Ctx[newIn, tData]) error { return nil }).
		Step("b", func(c *flux.Ctx[newIn, tData]) error { return nil })

	e1 := newEngine(t, flux.Config{Storage: store, ID: "one"})
	res, err := flux.Execute(ctx, e1, old, tIn{N: 1})
	if !errors.Is(err, errTransient) {
		t.Fatalf("first run: %v", err)
	}
	refuser := openEngine(t, flux.Config{Storage: store, ID: "refuser"})
	_, err = flux.Resume(ctx, refuser, changed, res.ID)
	if err == nil || !strings.Contains(err.Error(), "decode") {
		t.Fatalf("Resume with an input type the run's input does not decode into: %v, want an error saying so", err)
	}
	if run := mustGet(t, e1, res.ID); run.Owner != "" || run.Status != flux.StatusFailed {
		t.Errorf("after the refused Resume the run is %s and leased by %q; want failed and not leased", run.Status, run.Owner)
	}
	_, err = flux.RetryStep(ctx, refuser, old, res.ID, "b")
	if !errors.Is(err, flux.ErrStepNotReached) {
		t.Fatalf("RetryStep(b) past unfinished a: %v, want ErrStepNotReached", err)
	}
	if run := mustGet(t, e1, res.ID); run.Owner != "" {
		t.Errorf("after the refused RetryStep the run is leased by %q", run.Owner)
	}
	if err := refuser.Close(); err != nil {
		t.Fatal(err)
	}
	broken.Store(false)
	e2 := newEngine(t, flux.Config{Storage: store, ID: "two"})
	if res, err := flux.Resume(ctx, e2, old, res.ID); err != nil || res.Status != flux.StatusCompleted {
		t.Fatalf("Resume on another engine after the refusals: %v, %v; want it completed", res, err)
	}
}

// blockedRun starts a run of a → b → c on e whose b blocks until release is
// closed, and returns its ID once b runs. It stands for a process that died
// in b: e is never closed before the test takes the run over.
func blockedRun(t *testing.T, e *flux.Engine, w *flux.Workflow[tIn, tData], started <-chan string) (string, chan outcome) {
	t.Helper()
	done := make(chan outcome, 1)
	go func() {
		res, err := flux.Execute(context.Background(), e, w, tIn{}, flux.RunID("crashed-1"))
		done <- outcome{res, err}
	}()
	return <-started, done
}

// TestRestartWithSameIDRecoversAtOnce: an engine started with the ID of one
// whose process died (here: that stopped answering, its lease an hour long)
// continues its runs at its first recovery pass, and records the cut-off
// attempt. The old engine's late write is refused.
func TestRestartWithSameIDRecoversAtOnce(t *testing.T) {
	t.Parallel()
	store := flux.NewMemoryStorage()
	release := make(chan struct{})
	started := make(chan string, 2)
	var calls atomic.Int32
	w := flux.New[tIn, tData]("restart").
		Step("a", func(c *tCtx) error { c.Data.Trail = append(c.Data.Trail, "a"); return nil }).
		Step("b", func(c *tCtx) error {
			if calls.Add(1) == 1 {
				started <- c.RunID()
				<-release
				return nil
			}
			c.Data.Trail = append(c.Data.Trail, "b")
			return nil
		}).
		Commit("c", func(c *tCtx) error { c.Data.Trail = append(c.Data.Trail, "c"); return nil })
	dead := openEngine(t, flux.Config{Storage: store, ID: "billing-1", LeaseDuration: time.Hour})
	id, done := blockedRun(t, dead, w, started)
	defer func() {
		close(release)
		out := <-done
		if !errors.Is(out.err, flux.ErrLeaseLost) {
			t.Errorf("the old engine's run ended with %v, want ErrLeaseLost: its late write must be refused", out.err)
		}
		_ = dead.Close()
	}()
	before := time.Now()
	completed := make(chan string, 1)
	restarted := newEngine(t, flux.Config{Storage: store, ID: "billing-1", LeaseDuration: time.Hour, RecoveryInterval: time.Hour,
		Hooks: flux.Hooks{WorkflowComplete: func(ev flux.RunEvent) { completed <- ev.RunID }}})
	if err := restarted.Register(w); err != nil {
		t.Fatal(err)
	}
	select {
	case <-completed:
	case <-time.After(30 * time.Second):
		t.Fatalf("the restarted engine did not complete the run within 30s (its lease has an hour left): %+v", mustGet(t, restarted, id).Steps)
	}
	run := mustGet(t, restarted, id)
	b := run.Steps[1]
	if len(b.Attempts) != 2 || !b.Attempts[0].Interrupted || b.Attempts[0].Number != 1 || b.Attempts[1].Number != 2 || b.Attempts[1].Interrupted {
		t.Fatalf("node b attempts %+v, want #1 interrupted (cut off with the old engine) and #2 completed", b.Attempts)
	}
	if a := b.Attempts[0]; a.StartedAt.IsZero() || a.StartedAt.After(b.Attempts[1].StartedAt) || !strings.Contains(a.Error, "interrupted") {
		t.Errorf("interrupted attempt %+v: want its start recorded before attempt 2 and an error saying it was interrupted", a)
	}
	if b.Attempts[1].StartedAt.Before(before) {
		t.Errorf("attempt 2 started at %s, before the restart at %s: its duration spans the crash", b.Attempts[1].StartedAt, before)
	}
}

// TestHistoryKeptAcrossRetryStep: after RetryStep the stored run keeps the
// attempts of the nodes it replayed.
func TestHistoryKeptAcrossRetryStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, flux.Config{})
	var declined atomic.Bool
	declined.Store(true)
	w := flux.New[tIn, tData]("history").
		Step("validate", func(c *tCtx) error { return nil }).
		Step("charge", func(c *tCtx) error {
			if declined.Load() {
				return flux.Permanent(errors.New("card declined"))
			}
			return nil
		}).
		Step("receipt", func(c *tCtx) error { return nil })
	res, err := flux.Execute(ctx, e, w, tIn{})
	if err == nil {
		t.Fatal("first run succeeded, want card declined")
	}
	declined.Store(false)
	if _, err := flux.RetryStep(ctx, e, w, res.ID, "charge"); err != nil {
		t.Fatal(err)
	}
	if _, err := flux.RetryStep(ctx, e, w, res.ID, "validate"); err != nil {
		t.Fatal(err)
	}
	run := mustGet(t, e, res.ID)
	charge := run.Steps[1].Attempts
	if len(charge) != 3 || charge[0].Error != "card declined" || charge[1].Error != "" || charge[2].Error != "" {
		t.Fatalf("charge attempts %+v, want 3: card declined, then two successes", charge)
	}
	for i, a := range charge {
		if a.Number != i+1 {
			t.Errorf("charge attempt %d has number %d", i, a.Number)
		}
	}
	if n := len(run.Steps[0].Attempts); n != 2 {
		t.Errorf("validate has %d attempts after a RetryStep from it, want 2", n)
	}
	if n := len(run.Steps[2].Attempts); n != 2 {
		t.Errorf("receipt has %d attempts, want 2 (one per execution that reached it)", n)
	}
}

// TestErrorsCallersCanTest checks the sentinel or type of each error that
// was a plain string.
func TestErrorsCallersCanTest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, flux.Config{})
	ok := flux.New[tIn, tData]("sentinels").Step("a", func(c *tCtx) error { return nil })
	res, err := flux.Execute(ctx, e, ok, tIn{}, flux.RunID("done-1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Cancel(ctx, res.ID); !errors.Is(err, flux.ErrRunFinished) {
		t.Errorf("Cancel of a completed run: %v, want ErrRunFinished", err)
	}

	other := flux.New[tIn, tData]("another").Step("a", func(c *tCtx) error { return nil })
	if _, err := flux.Resume(ctx, e, other, res.ID); !errors.Is(err, flux.ErrWrongWorkflow) {
		t.Errorf("Resume with another workflow: %v, want ErrWrongWorkflow", err)
	}
	if _, err := flux.RetryStep(ctx, e, other, res.ID, "a"); !errors.Is(err, flux.ErrWrongWorkflow) {
		t.Errorf("RetryStep with another workflow: %v, want ErrWrongWorkflow", err)
	}
	if _, err := flux.Execute(ctx, e, other, tIn{}, flux.RunID(res.ID)); !errors.Is(err, flux.ErrWrongWorkflow) {
		t.Errorf("start of another workflow with a taken RunID: %v, want ErrWrongWorkflow", err)
	}

	slow := flux.New[tIn, tData]("times-out").
		Step("a", func(c *tCtx) error { return nil }).
		Step("b", func(c *tCtx) error { <-c.Done(); return c.Err() }, flux.Timeout(time.Millisecond), flux.Retries(0))
	_, first := flux.Execute(ctx, e, slow, tIn{}, flux.RunID("slow-1"))
	if !errors.Is(first, flux.ErrTimeout) {
		t.Fatalf("first run: %v, want ErrTimeout", first)
	}
	again, err := flux.Execute(ctx, e, slow, tIn{}, flux.RunID("slow-1"))
	var se *flux.StepError
	if !errors.As(err, &se) || se.Step != "b" || se.Index != 1 || se.Attempt != 1 || se.RunID != "slow-1" {
		t.Errorf("duplicate start of the failed run: %v (%T), want a *StepError for b, attempt 1", err, err)
	}
	if !errors.Is(err, flux.ErrTimeout) || err.Error() != first.Error() {
		t.Errorf("duplicate start of the failed run: %q, want %q wrapping ErrTimeout", err, first)
	}
	if again == nil || again.Status != flux.StatusFailed || !errors.Is(again.Err, flux.ErrTimeout) {
		t.Errorf("duplicate start result %+v, want the failed run with its error", again)
	}

	type roundTrip struct {
		V oneWay `json:"v"`
	}
	broken := flux.New[roundTrip, tData]("one-way").Step("a", func(c *flux.Ctx[roundTrip, tData]) error { return nil })
	res2, err := flux.Execute(ctx, e, broken, roundTrip{})
	if !errors.Is(err, flux.ErrInvalidInput) || res2 != nil {
		t.Errorf("input that encodes but does not decode: %v, %v; want ErrInvalidInput and no run", res2, err)
	}
	if page, _ := e.List(ctx, flux.Filter{Workflow: "one-way"}); len(page.Runs) != 0 {
		t.Errorf("a run was stored for input that does not decode")
	}
}

// oneWay encodes as a string but decodes only from an object.
type oneWay struct{ N int }

func (oneWay) MarshalJSON() ([]byte, error) { return []byte(`"text"`), nil }

// TestEventsFollowTheirRecord: each hook documented as firing after its
// transition was recorded sees that transition in storage.
func TestEventsFollowTheirRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var e *flux.Engine
	var mu sync.Mutex
	var problems []string
	check := func(what string, ok func(*flux.Run) bool, id string) {
		run, err := e.Get(ctx, id)
		if err != nil || !ok(run) {
			mu.Lock()
			problems = append(problems, fmt.Sprintf("%s: stored run %+v, err %v", what, run, err))
			mu.Unlock()
		}
	}
	e = newEngine(t, flux.Config{Hooks: flux.Hooks{
		WorkflowStart: func(ev flux.RunEvent) {
			check("WorkflowStart", func(r *flux.Run) bool { return r.Status == flux.StatusRunning }, ev.RunID)
		},
		StepStart: func(ev flux.StepEvent) {
			check(fmt.Sprintf("StepStart %s #%d", ev.Step, ev.Attempt), func(r *flux.Run) bool {
				s := r.Steps[ev.Index]
				return s.Status == flux.StatusRunning && !s.InFlight.IsZero() && len(s.Attempts) == ev.Attempt-1
			}, ev.RunID)
		},
		StepRetry: func(ev flux.StepEvent) {
			check(fmt.Sprintf("StepRetry %s #%d", ev.Step, ev.Attempt), func(r *flux.Run) bool {
				a := r.Steps[ev.Index].Attempts
				return len(a) == ev.Attempt && a[ev.Attempt-1].Error != ""
			}, ev.RunID)
		},
		StepComplete: func(ev flux.StepEvent) {
			check("StepComplete "+ev.Step, func(r *flux.Run) bool { return r.Steps[ev.Index].Status == flux.StatusCompleted }, ev.RunID)
		},
		WorkflowComplete: func(ev flux.RunEvent) {
			check("WorkflowComplete", func(r *flux.Run) bool { return r.Status == flux.StatusCompleted }, ev.RunID)
		},
	}})
	w := flux.New[tIn, tData]("recorded").
		Step("a", func(c *tCtx) error { return nil }).
		Step("b", func(c *tCtx) error {
			if c.Attempt() < 3 {
				return errTransient
			}
			return nil
		}, flux.NoBackoff()).
		Commit("c", func(c *tCtx) error { return nil }).
		Step("d", func(c *tCtx) error { return nil }, flux.Backoff(time.Millisecond, time.Millisecond))
	if _, err := flux.Execute(ctx, e, w, tIn{}, flux.RunID("recorded-1")); err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
