package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// RunEngine runs the engine-level suite as subtests of t: the promises of
// flux.Execute, Resume, RetryStep, Cancel, recovery and duplicate starts,
// kept by engines over the store newHarness returns (called once per
// subtest, isolated and empty, like for [Run]). The engine's behaviour must
// not depend on the store; this suite is how that is shown.
func RunEngine(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	for _, c := range slices.Concat(engineTests, backgroundTests, limitEngineTests) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, newHarness(t))
		})
	}
}

// In and Data are the input and data of the suite's workflows.
type In struct {
	N int `json:"n"`
}

// Data is what the suite's handlers write.
type Data struct {
	Trail []string `json:"trail,omitempty"`
}

type ctxT = flux.Ctx[In, Data]

var errDeclined = errors.New("card declined")

// calls counts handler calls per run and node.
type calls struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *calls) add(run, node string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[run+"/"+node]++
	return c.n[run+"/"+node]
}

func (c *calls) get(run, node string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[run+"/"+node]
}

// mark returns a handler that counts its calls and appends its name.
func (c *calls) mark() flux.Handler[In, Data] {
	return func(x *ctxT) error {
		c.add(x.RunID(), x.Step())
		x.Data.Trail = append(x.Data.Trail, x.Step())
		return nil
	}
}

// engine returns an engine over s with the given ID, closed when the test
// ends (before the store).
func engine(t *testing.T, s flux.Storage, id string, hooks flux.Hooks) *flux.Engine {
	t.Helper()
	e, err := flux.NewEngine(flux.Config{Storage: s, ID: id, Hooks: hooks, Logger: slog.New(slog.DiscardHandler),
		LeaseDuration: time.Hour, RecoveryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// order is validate → charge (fails while declined is set) → ship (a
// commit) → notify.
func order(c *calls, declined func() bool) *flux.Workflow[In, Data] {
	return flux.New[In, Data]("order").
		Step("validate", c.mark()).
		Step("charge", func(x *ctxT) error {
			c.add(x.RunID(), "charge")
			if declined() {
				return flux.Permanent(errDeclined)
			}
			x.Data.Trail = append(x.Data.Trail, "charge")
			return nil
		}).
		Commit("ship", c.mark()).
		Step("notify", c.mark())
}

func never() bool { return false }

func wantTrail(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: trail %v, want %v", what, got, want)
	}
}

// wantAttempts checks the recorded attempts of a node: one entry per
// attempt, "" for a success, the error's text for a failure, "interrupted"
// for an attempt cut off.
func wantAttempts(t *testing.T, run *flux.Run, node int, want ...string) {
	t.Helper()
	var got []string
	for i, a := range run.Steps[node].Attempts {
		if a.Number != i+1 {
			t.Fatalf("run %s node %s attempt %d has number %d", run.ID, run.Steps[node].Name, i+1, a.Number)
		}
		switch {
		case a.Interrupted:
			got = append(got, "interrupted")
		default:
			got = append(got, a.Error)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("run %s node %s: attempts %q, want %q", run.ID, run.Steps[node].Name, got, want)
	}
}

// finished returns a channel that receives the ID of every run that
// completes or fails, and the hooks that feed it.
func finished() (chan string, flux.Hooks) {
	ch := make(chan string, 64)
	h := func(ev flux.RunEvent) { ch <- ev.RunID }
	return ch, flux.Hooks{WorkflowComplete: h, WorkflowError: h}
}

// await waits for run id on ch.
func await(t *testing.T, ch chan string, id string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case got := <-ch:
			if got == id {
				return
			}
		case <-timeout:
			t.Fatalf("run %s did not finish within 30s", id)
		}
	}
}

var engineTests = []testCase{
	{"RetentionPrunesFinishedRuns", retentionTest},
	{"RecoveryReportsACorruptRunAmongAThousand", recoveryCorruptTest},
	{"ExecuteRecordsEveryNode", func(t *testing.T, h Harness) {
		c := &calls{}
		e := engine(t, h.Store, "a", flux.Hooks{})
		res, err := flux.Execute(ctx(t), e, order(c, never), In{N: 1})
		if err != nil {
			t.Fatal(err)
		}
		wantTrail(t, "result", res.Data.Trail, "validate", "charge", "ship", "notify")
		run := mustGet(t, h.Store, res.ID)
		if run.Status != flux.StatusCompleted || run.Owner != "" || run.FinishedAt.IsZero() {
			t.Fatalf("stored run: status %s, owner %q, finished %v; want completed, not leased, with a finish time", run.Status, run.Owner, run.FinishedAt)
		}
		for i, s := range run.Steps {
			if s.Status != flux.StatusCompleted || !s.InFlight.IsZero() {
				t.Fatalf("stored node %s: status %s, in flight %v", s.Name, s.Status, s.InFlight)
			}
			wantAttempts(t, run, i, "")
			data, err := e.NodeData(ctx(t), res.ID, s.Name)
			var d Data
			if err != nil || json.Unmarshal(data, &d) != nil || !slices.Equal(d.Trail, res.Data.Trail[:i+1]) {
				t.Fatalf("data after node %s: %s, %v; want the trail up to it", s.Name, data, err)
			}
		}
		if sum := run.Summary; sum.Nodes != 4 || sum.Done != 4 || sum.Attempts != 4 || sum.Failures != 0 {
			t.Fatalf("stored summary %+v, want 4 nodes done in 4 attempts", sum)
		}
	}},
	{"RetriesAreRecorded", func(t *testing.T, h Harness) {
		c := &calls{}
		e := engine(t, h.Store, "a", flux.Hooks{})
		w := flux.New[In, Data]("flaky").
			Step("call", func(x *ctxT) error {
				if c.add(x.RunID(), "call") < 3 {
					return fmt.Errorf("503 from upstream, try %d", x.Attempt())
				}
				return nil
			}, flux.Retries(3), flux.NoBackoff())
		res, err := flux.Execute(ctx(t), e, w, In{})
		if err != nil {
			t.Fatal(err)
		}
		wantAttempts(t, mustGet(t, h.Store, res.ID), 0, "503 from upstream, try 1", "503 from upstream, try 2", "")
	}},
	{"RetryStepKeepsHistoryAndCommits", func(t *testing.T, h Harness) {
		c := &calls{}
		declined := true
		var mu sync.Mutex
		isDeclined := func() bool { mu.Lock(); defer mu.Unlock(); return declined }
		e := engine(t, h.Store, "a", flux.Hooks{})
		w := order(c, isDeclined)
		res, err := flux.Execute(ctx(t), e, w, In{})
		if !errors.Is(err, errDeclined) {
			t.Fatalf("first run: %v, want %v", err, errDeclined)
		}
		mu.Lock()
		declined = false
		mu.Unlock()
		if _, err := flux.RetryStep(ctx(t), e, w, res.ID, "charge"); err != nil {
			t.Fatal(err)
		}
		_, err = flux.RetryStep(ctx(t), e, w, res.ID, "validate")
		if !errors.Is(err, flux.ErrCommitted) {
			t.Fatalf("RetryStep over completed commit ship: %v, want ErrCommitted", err)
		}
		if c.get(res.ID, "ship") != 1 {
			t.Fatalf("ship ran %d times", c.get(res.ID, "ship"))
		}
		res, err = flux.RetryStep(ctx(t), e, w, res.ID, "ship", flux.Force())
		if err != nil || c.get(res.ID, "ship") != 2 {
			t.Fatalf("forced RetryStep(ship): %v, ship ran %d times, want 2", err, c.get(res.ID, "ship"))
		}
		wantTrail(t, "after the forced RetryStep", res.Data.Trail, "validate", "charge", "ship", "notify")
		run := mustGet(t, h.Store, res.ID)
		wantAttempts(t, run, 1, errDeclined.Error(), "")
		wantAttempts(t, run, 2, "", "")
		if run.Status != flux.StatusCompleted || run.Owner != "" {
			t.Fatalf("stored run %s owned by %q, want completed and not leased", run.Status, run.Owner)
		}
	}},
	{"ResumeContinuesAFailedRun", func(t *testing.T, h Harness) {
		c := &calls{}
		var mu sync.Mutex
		declined := true
		w := order(c, func() bool { mu.Lock(); defer mu.Unlock(); return declined })
		a := engine(t, h.Store, "a", flux.Hooks{})
		res, err := flux.Execute(ctx(t), a, w, In{}, flux.RunID("resume-1"))
		var se *flux.StepError
		if !errors.As(err, &se) || se.Step != "charge" {
			t.Fatalf("first run: %v, want a *StepError for charge", err)
		}
		mu.Lock()
		declined = false
		mu.Unlock()
		b := engine(t, h.Store, "b", flux.Hooks{})
		res, err = flux.Resume(ctx(t), b, w, res.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantTrail(t, "resumed", res.Data.Trail, "validate", "charge", "ship", "notify")
		if c.get(res.ID, "validate") != 1 {
			t.Fatalf("Resume ran validate again")
		}
		wantAttempts(t, mustGet(t, h.Store, res.ID), 1, errDeclined.Error(), "")
		again, err := flux.Resume(ctx(t), a, w, res.ID)
		if err != nil || again.Status != flux.StatusCompleted || c.get(res.ID, "ship") != 1 {
			t.Fatalf("Resume of a completed run: %v, %v, ship ran %d times; want it returned as it is", again, err, c.get(res.ID, "ship"))
		}
	}},
	{"DuplicateStarts", func(t *testing.T, h Harness) {
		c := &calls{}
		a := engine(t, h.Store, "a", flux.Hooks{})
		b := engine(t, h.Store, "b", flux.Hooks{})
		w := order(c, never)
		first, err := flux.Execute(ctx(t), a, w, In{N: 1}, flux.RunID("dup-1"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range []*flux.Engine{a, b} {
			again, err := flux.Execute(ctx(t), e, w, In{N: 2}, flux.RunID("dup-1"))
			if err != nil || again.ID != first.ID || again.Status != flux.StatusCompleted {
				t.Fatalf("duplicate start on %s: %+v, %v", e.ID(), again, err)
			}
			wantTrail(t, "duplicate start", again.Data.Trail, first.Data.Trail...)
		}
		for _, n := range []string{"validate", "charge", "ship", "notify"} {
			if c.get("dup-1", n) != 1 {
				t.Fatalf("%s ran %d times after duplicate starts", n, c.get("dup-1", n))
			}
		}
		w2 := order(c, func() bool { return true })
		_, first2 := flux.Execute(ctx(t), a, w2, In{}, flux.RunID("dup-2"))
		_, err = flux.Execute(ctx(t), b, w2, In{}, flux.RunID("dup-2"))
		var se *flux.StepError
		if !errors.As(err, &se) || se.Step != "charge" || err.Error() != first2.Error() {
			t.Fatalf("duplicate start of a failed run: %v, want the run's *StepError %v", err, first2)
		}
		other := flux.New[In, Data]("other").Step("x", c.mark())
		if _, err := flux.Execute(ctx(t), b, other, In{}, flux.RunID("dup-1")); !errors.Is(err, flux.ErrWrongWorkflow) {
			t.Fatalf("start of another workflow with a taken ID: %v, want ErrWrongWorkflow", err)
		}
	}},
	{"CancelHereAndElsewhere", func(t *testing.T, h Harness) {
		started := make(chan string, 2)
		w := flux.New[In, Data]("cancel").
			Step("wait", func(x *ctxT) error { started <- x.RunID(); <-x.Done(); return x.Err() }).
			Commit("never", func(x *ctxT) error { t.Errorf("commit of cancelled run %s ran", x.RunID()); return nil })
		a := engine(t, h.Store, "a", flux.Hooks{})
		b := engine(t, h.Store, "b", flux.Hooks{})
		for _, by := range []*flux.Engine{a, b} {
			id := "cancel-by-" + by.ID()
			done := make(chan error, 1)
			go func() { _, err := flux.Execute(ctx(t), a, w, In{}, flux.RunID(id)); done <- err }()
			<-started
			if err := by.Cancel(ctx(t), id); err != nil {
				t.Fatalf("Cancel by %s: %v", by.ID(), err)
			}
			if by == b {
				// The owner stops at its next write; let the attempt end.
				if err := a.Cancel(ctx(t), id); err != nil {
					t.Fatalf("Cancel of a run cancelled elsewhere: %v", err)
				}
			}
			if err := <-done; !errors.Is(err, flux.ErrCancelled) {
				t.Fatalf("Execute of a run cancelled by %s: %v, want ErrCancelled", by.ID(), err)
			}
			run := mustGet(t, h.Store, id)
			if run.Status != flux.StatusCancelled || run.Owner != "" {
				t.Fatalf("run cancelled by %s: status %s, owner %q; want cancelled, not leased", by.ID(), run.Status, run.Owner)
			}
		}
		done, err := flux.Execute(ctx(t), a, flux.New[In, Data]("quick").Step("x", func(*ctxT) error { return nil }), In{})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Cancel(ctx(t), done.ID); !errors.Is(err, flux.ErrRunFinished) {
			t.Fatalf("Cancel of a completed run: %v, want ErrRunFinished", err)
		}
	}},
	{"InterruptedRunIsRecoveredByAnother", func(t *testing.T, h Harness) {
		c := &calls{}
		started := make(chan struct{}, 1)
		w := flux.New[In, Data]("interrupted").
			Step("a", c.mark()).
			Step("b", func(x *ctxT) error {
				if c.add(x.RunID(), "b") == 1 {
					started <- struct{}{}
					<-x.Done()
					return x.Err()
				}
				x.Data.Trail = append(x.Data.Trail, "b")
				return nil
			}).
			Commit("c", c.mark())
		a := engine(t, h.Store, "a", flux.Hooks{})
		runCtx, stop := context.WithCancel(ctx(t))
		done := make(chan error, 1)
		go func() { _, err := flux.Execute(runCtx, a, w, In{}, flux.RunID("int-1")); done <- err }()
		<-started
		stop()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted Execute: %v", err)
		}
		run := mustGet(t, h.Store, "int-1")
		if run.Status != flux.StatusRunning || run.Owner != "" || run.Steps[1].Status != flux.StatusPending {
			t.Fatalf("interrupted run: %s, owner %q, b %s; want running, not leased, b pending", run.Status, run.Owner, run.Steps[1].Status)
		}
		fin, hooks := finished()
		b := engine(t, h.Store, "b", hooks)
		if err := b.Register(w); err != nil {
			t.Fatal(err)
		}
		await(t, fin, "int-1")
		run = mustGet(t, h.Store, "int-1")
		if run.Status != flux.StatusCompleted || c.get("int-1", "a") != 1 || c.get("int-1", "c") != 1 {
			t.Fatalf("recovered run %s; a ran %d times, c %d", run.Status, c.get("int-1", "a"), c.get("int-1", "c"))
		}
		wantAttempts(t, run, 1, "interrupted", "")
	}},
	{"RestartWithSameIDTakesOverAtOnce", func(t *testing.T, h Harness) {
		c := &calls{}
		started, release := make(chan struct{}, 1), make(chan struct{})
		w := flux.New[In, Data]("crashed").
			Step("a", c.mark()).
			Step("b", func(x *ctxT) error {
				if c.add(x.RunID(), "b") == 1 {
					started <- struct{}{}
					<-release // the process "died" here: it never writes again
				}
				return nil
			}).
			Commit("c", c.mark())
		dead := engine(t, h.Store, "svc", flux.Hooks{})
		done := make(chan error, 1)
		go func() { _, err := flux.Execute(ctx(t), dead, w, In{}, flux.RunID("crash-1")); done <- err }()
		<-started
		fin, hooks := finished()
		restarted := engine(t, h.Store, "svc", hooks)
		if err := restarted.Register(w); err != nil {
			t.Fatal(err)
		}
		await(t, fin, "crash-1") // its lease has an hour left: taken over, not expired
		run := mustGet(t, h.Store, "crash-1")
		if run.Status != flux.StatusCompleted || c.get("crash-1", "c") != 1 {
			t.Fatalf("taken-over run %s, c ran %d times", run.Status, c.get("crash-1", "c"))
		}
		wantAttempts(t, run, 1, "interrupted", "")
		close(release)
		if err := <-done; !errors.Is(err, flux.ErrLeaseLost) {
			t.Fatalf("the old start's late write: %v, want ErrLeaseLost", err)
		}
		if c.get("crash-1", "c") != 1 {
			t.Fatalf("commit c ran %d times", c.get("crash-1", "c"))
		}
	}},
	{"RefusalsReleaseTheRun", func(t *testing.T, h Harness) {
		c := &calls{}
		type changedIn struct {
			N string `json:"n"`
		}
		w := order(c, func() bool { return true })
		a := engine(t, h.Store, "a", flux.Hooks{})
		res, _ := flux.Execute(ctx(t), a, w, In{N: 1}, flux.RunID("refuse-1"))
		nop := func(*flux.Ctx[changedIn, Data]) error { return nil }
		changed := flux.New[changedIn, Data]("order").Step("validate", nop).Step("charge", nop).Commit("ship", nop).Step("notify", nop)
		refuser := engine(t, h.Store, "refuser", flux.Hooks{})
		if _, err := flux.Resume(ctx(t), refuser, changed, res.ID); !errors.Is(err, flux.ErrDefinitionChanged) {
			t.Fatalf("Resume with an input type the stored input does not decode into: %v, want ErrDefinitionChanged", err)
		}
		if _, err := flux.RetryStep(ctx(t), refuser, w, res.ID, "ship"); !errors.Is(err, flux.ErrStepNotReached) {
			t.Fatalf("RetryStep past the failed node: %v, want ErrStepNotReached", err)
		}
		if run := mustGet(t, h.Store, res.ID); run.Owner != "" || run.Status != flux.StatusFailed {
			t.Fatalf("after refusals the run is %s, leased by %q", run.Status, run.Owner)
		}
		if _, err := h.Store.Claim(ctx(t), driver.ClaimParams{ID: res.ID, Owner: "someone#1", Lease: time.Hour}); err != nil {
			t.Fatalf("another owner cannot claim the run after the refusals: %v", err)
		}
	}},
	{"RetryStepRacingTheOwner", func(t *testing.T, h Harness) {
		// Engine b asks to replay the step before the commit while engine a
		// runs it: the commit must run exactly once.
		var mu sync.Mutex
		commits := map[string]int{}
		w := flux.New[In, Data]("race").
			Step("s", func(*ctxT) error { return nil }).
			Commit("c", func(x *ctxT) error { mu.Lock(); commits[x.RunID()]++; mu.Unlock(); return nil })
		a := engine(t, h.Store, "a", flux.Hooks{})
		b := engine(t, h.Store, "b", flux.Hooks{})
		runs := 200
		if testing.Short() {
			runs = 30
		}
		for i := range runs {
			id := fmt.Sprintf("race-%d", i)
			var wg sync.WaitGroup
			wg.Go(func() {
				if _, err := flux.Execute(ctx(t), a, w, In{}, flux.RunID(id)); err != nil {
					t.Errorf("Execute %s: %v", id, err)
				}
			})
			wg.Go(func() {
				for {
					_, err := flux.RetryStep(ctx(t), b, w, id, "s")
					switch {
					case errors.Is(err, flux.ErrCommitted):
						return
					case errors.Is(err, flux.ErrRunNotFound), errors.Is(err, flux.ErrRunActive):
					default:
						t.Errorf("RetryStep(%s): %v, want ErrCommitted once the run ended", id, err)
						return
					}
				}
			})
			wg.Wait()
			mu.Lock()
			n := commits[id]
			mu.Unlock()
			if n != 1 {
				t.Fatalf("run %s: commit ran %d times", id, n)
			}
		}
	}},
}
