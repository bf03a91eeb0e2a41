package flux_test

// Starting, stopping and replaying runs: duplicate starts, interruption,
// Cancel, RetryStep and Resume.

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flux-go/flux"
)

func TestDuplicateRunIDCompleted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, flux.Config{})
	cnt := &counters{}
	w := flux.New[tIn, tData]("dup").
		Step("a", func(c *tCtx) error { cnt.inc("a"); c.Data.Sum = c.Input.N; return nil }).
		Commit("b", trail(cnt))
	first, err := flux.Execute(ctx, e, w, tIn{N: 1}, flux.RunID("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	if first.ID != "order-1" {
		t.Fatalf("ID = %q, want order-1", first.ID)
	}
	before := mustGet(t, e, "order-1")
	for range 3 {
		again, err := flux.Execute(ctx, e, w, tIn{N: 2}, flux.RunID("order-1"))
		if err != nil {
			t.Fatalf("duplicate start: %v", err)
		}
		if again.ID != first.ID || again.Status != flux.StatusCompleted || !reflect.DeepEqual(again.Data, first.Data) {
			t.Errorf("duplicate start returned %s %s %+v, want %s completed %+v", again.ID, again.Status, again.Data, first.ID, first.Data)
		}
	}
	if got := cnt.get(); got["a"] != 1 || got["b"] != 1 {
		t.Errorf("handler calls %v after duplicate starts, want each once", got)
	}
	if after := mustGet(t, e, "order-1"); after.Version != before.Version {
		t.Errorf("duplicate start wrote the run: version %d → %d", before.Version, after.Version)
	}
	if page, _ := e.List(ctx, flux.Filter{}); len(page.Runs) != 1 {
		t.Errorf("%d runs stored, want 1", len(page.Runs))
	}
}

func TestDuplicateRunIDConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, flux.Config{})
	cnt := &counters{}
	w := flux.New[tIn, tData]("dup-concurrent").Step("a", trail(cnt)).Commit("b", trail(cnt))
	var wg sync.WaitGroup
	var completed atomic.Int32
	for range 20 {
		wg.Go(func() {
			res, err := flux.Execute(ctx, e, w, tIn{}, flux.RunID("same"))
			switch {
			case err == nil && res.ID == "same" && res.Status == flux.StatusCompleted:
				completed.Add(1)
			case errors.Is(err, flux.ErrRunActive):
			default:
				t.Errorf("concurrent duplicate start: %v", err)
			}
		})
	}
	wg.Wait()
	if got := cnt.get(); got["a"] != 1 || got["b"] != 1 {
		t.Errorf("handler calls %v, want each node once", got)
	}
	if completed.Load() == 0 {
		t.Error("no start returned the completed run")
	}
}

func TestDuplicateRunIDFailed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, flux.Config{})
	cnt := &counters{}
	errNo := errors.New("declined")
	w := flux.New[tIn, tData]("dup-failed").
		Step("a", trail(cnt)).
		Step("b", func(c *tCtx) error { cnt.inc("b"); return flux.Permanent(errNo) })
	first, err := flux.Execute(ctx, e, w, tIn{}, flux.RunID("f-1"))
	if !errors.Is(err, errNo) {
		t.Fatalf("err = %v, want %v", err, errNo)
	}
	again, err := flux.Execute(ctx, e, w, tIn{}, flux.RunID("f-1"))
	if err == nil || again == nil || again.ID != first.ID || again.Status != flux.StatusFailed {
		t.Fatalf("duplicate start of a failed run: %+v, %v; want the failed run and an error", again, err)
	}
	if got := cnt.get(); got["a"] != 1 || got["b"] != 1 {
		t.Errorf("handler calls %v, want each once", got)
	}
}

// interruptible returns a workflow a → b → c whose b blocks until its
// context is done on its first attempt, reporting the context's cause.
func interruptible(name string, cnt *counters, started chan<- string, causes chan<- error) *flux.Workflow[tIn, tData] {
	return flux.New[tIn, tData](name).
		Step("a", trail(cnt)).
		Step("b", func(c *tCtx) error {
			cnt.inc("b")
			c.Data.Trail = append(c.Data.Trail, fmt.Sprintf("b%d", c.Attempt()))
			if cnt.get()["b"] == 1 {
				started <- c.RunID()
				<-c.Done()
				causes <- context.Cause(c)
				return c.Err()
			}
			return nil
		}).
		Commit("c", trail(cnt))
}

type outcome struct {
	res *flux.Result[tData]
	err error
}

func checkResumable(t *testing.T, e *flux.Engine, id string) {
	t.Helper()
	run := mustGet(t, e, id)
	if run.Status != flux.StatusRunning || run.Error != "" || !run.FinishedAt.IsZero() {
		t.Errorf("stored run: status %s, error %q, finished %v; want running, no error", run.Status, run.Error, run.FinishedAt)
	}
	if got, want := stepStatuses(run.Steps), []flux.Status{flux.StatusCompleted, flux.StatusPending, flux.StatusPending}; !slices.Equal(got, want) {
		t.Errorf("stored node statuses %v, want %v", got, want)
	}
	if run.Owner != "" {
		t.Errorf("interrupted run still leased by %q", run.Owner)
	}
	if !strings.Contains(string(run.Data), `"trail":["a"]`) {
		t.Errorf("stored data %s, want the snapshot after a", run.Data)
	}
}

func checkFinished(t *testing.T, res *flux.Result[tData], err error, cnt *counters) {
	t.Helper()
	if err != nil {
		t.Fatalf("continuing the run: %v", err)
	}
	if res.Status != flux.StatusCompleted || !slices.Equal(res.Data.Trail, []string{"a", "b2", "c"}) {
		t.Errorf("continued run: status %s, trail %v; want completed, [a b2 c]", res.Status, res.Data.Trail)
	}
	if got := cnt.get(); got["a"] != 1 || got["b"] != 2 || got["c"] != 1 {
		t.Errorf("handler calls %v, want a 1, b 2, c 1", got)
	}
}

func TestCancelledCallerContextLeavesRunResumable(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"Resume", "duplicate start"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			e := newEngine(t, flux.Config{Hooks: rec.hooks()})
			cnt := &counters{}
			started, causes := make(chan string, 1), make(chan error, 1)
			w := interruptible("caller-cancel", cnt, started, causes)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan outcome, 1)
			go func() {
				res, err := flux.Execute(ctx, e, w, tIn{}, flux.RunID("r-"+how))
				done <- outcome{res, err}
			}()
			id := <-started
			cancel()
			if cause := <-causes; !errors.Is(cause, context.Canceled) {
				t.Errorf("handler saw cause %v, want context.Canceled", cause)
			}
			out := <-done
			if !errors.Is(out.err, context.Canceled) {
				t.Errorf("Execute err = %v, want context.Canceled", out.err)
			}
			if out.res == nil || out.res.ID != id {
				t.Fatalf("Execute result %+v, want run %s", out.res, id)
			}
			checkResumable(t, e, id)
			if hooks := hookNames(rec.forRun(id)); slices.Contains(hooks, "WorkflowError") || slices.Contains(hooks, "StepError") {
				t.Errorf("interruption fired failure hooks: %v", hooks)
			}
			var res *flux.Result[tData]
			var err error
			if how == "Resume" {
				res, err = flux.Resume(context.Background(), e, w, id)
			} else {
				res, err = flux.Execute(context.Background(), e, w, tIn{}, flux.RunID(id))
			}
			checkFinished(t, res, err, cnt)
			if res.ID != id {
				t.Errorf("continued run has ID %s, want %s", res.ID, id)
			}
		})
	}
}

func TestCloseLeavesRunResumable(t *testing.T) {
	t.Parallel()
	store := flux.NewMemoryStorage()
	e := openEngine(t, flux.Config{Storage: store})
	cnt := &counters{}
	started, causes := make(chan string, 1), make(chan error, 1)
	w := interruptible("close", cnt, started, causes)
	done := make(chan outcome, 1)
	go func() {
		res, err := flux.Execute(context.Background(), e, w, tIn{})
		done <- outcome{res, err}
	}()
	id := <-started
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if cause := <-causes; !errors.Is(cause, flux.ErrClosed) {
		t.Errorf("handler saw cause %v, want ErrClosed", cause)
	}
	out := <-done
	if !errors.Is(out.err, flux.ErrClosed) {
		t.Errorf("Execute err = %v, want ErrClosed", out.err)
	}
	if _, err := flux.Execute(context.Background(), e, w, tIn{}); !errors.Is(err, flux.ErrClosed) {
		t.Errorf("Execute on a closed engine: %v, want ErrClosed", err)
	}
	e2 := newEngine(t, flux.Config{Storage: store})
	checkResumable(t, e2, id)
	res, err := flux.Resume(context.Background(), e2, w, id)
	checkFinished(t, res, err, cnt)
}

func TestCancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rec := &recorder{}
	e := newEngine(t, flux.Config{Hooks: rec.hooks()})
	cnt := &counters{}
	started, causes := make(chan string, 1), make(chan error, 1)
	w := interruptible("cancel", cnt, started, causes)
	done := make(chan outcome, 1)
	go func() {
		res, err := flux.Execute(ctx, e, w, tIn{})
		done <- outcome{res, err}
	}()
	id := <-started
	if err := e.Cancel(ctx, id); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if cause := <-causes; !errors.Is(cause, flux.ErrCancelled) {
		t.Errorf("handler saw cause %v, want ErrCancelled", cause)
	}
	out := <-done
	if !errors.Is(out.err, flux.ErrCancelled) {
		t.Errorf("Execute err = %v, want ErrCancelled", out.err)
	}
	run := mustGet(t, e, id)
	if run.Status != flux.StatusCancelled || run.FinishedAt.IsZero() {
		t.Errorf("stored run status %s, finished %v; want cancelled with a finish time", run.Status, run.FinishedAt)
	}
	if run.Steps[0].Status != flux.StatusCompleted || run.Steps[2].Status != flux.StatusPending {
		t.Errorf("stored node statuses %v", stepStatuses(run.Steps))
	}
	evs := rec.forRun(id)
	if last := evs[len(evs)-1]; last.Hook != "WorkflowError" || !errors.Is(last.Err, flux.ErrCancelled) || last.Status != flux.StatusCancelled {
		t.Errorf("last hook %+v, want WorkflowError with ErrCancelled", last)
	}
	if err := e.Cancel(ctx, id); err != nil {
		t.Errorf("cancelling a cancelled run: %v, want nil", err)
	}
	if got := cnt.get(); got["c"] != 0 {
		t.Errorf("commit c ran %d times after Cancel", got["c"])
	}
	// Resume takes a cancelled run back to running and completes it.
	res, err := flux.Resume(ctx, e, w, id)
	checkFinished(t, res, err, cnt)
	if err := e.Cancel(ctx, id); err == nil {
		t.Error("cancelling a completed run succeeded")
	}
	if run := mustGet(t, e, id); run.Status != flux.StatusCompleted {
		t.Errorf("Cancel of a completed run changed it to %s", run.Status)
	}
}

// orderFlow is the seed's order-fulfillment example with counters:
// validate, charge (failing transiently chargeFails times), reserve and
// notify commits.
func orderFlow(cnt *counters, chargeFails int, opts ...flux.StepOption) *flux.Workflow[tIn, tData] {
	return flux.New[tIn, tData]("order-fulfillment").
		Step("validate", trail(cnt)).
		Step("charge", func(c *tCtx) error {
			cnt.inc("charge")
			if c.Attempt() <= chargeFails {
				return errTransient
			}
			c.Data.Trail = append(c.Data.Trail, "charge")
			c.Data.Sum += 100
			return nil
		}, append([]flux.StepOption{flux.Retries(3)}, opts...)...).
		Commit("reserve", trail(cnt)).
		Commit("notify", trail(cnt))
}

func TestRetryStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, flux.Config{})
	cnt := &counters{}
	w := orderFlow(cnt, 0)
	res, err := flux.Execute(ctx, e, w, tIn{})
	if err != nil {
		t.Fatal(err)
	}
	before := mustGet(t, e, res.ID)

	for _, from := range []string{"validate", "charge", "reserve", "notify"} {
		_, err = flux.RetryStep(ctx, e, w, res.ID, from)
		if !errors.Is(err, flux.ErrCommitted) {
			t.Fatalf("RetryStep(%s) over completed commits: err = %v, want ErrCommitted", from, err)
		}
		want := `"reserve"`
		if from == "notify" {
			want = `"notify"`
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("RetryStep(%s): error %q does not name commit %s", from, err, want)
		}
	}
	if got := cnt.get(); !reflect.DeepEqual(got, map[string]int{"validate": 1, "charge": 1, "reserve": 1, "notify": 1}) {
		t.Errorf("refused RetryStep ran handlers: %v", got)
	}
	if after := mustGet(t, e, res.ID); after.Version != before.Version || after.Status != flux.StatusCompleted {
		t.Errorf("refused RetryStep changed the run: version %d → %d, status %s", before.Version, after.Version, after.Status)
	}

	res2, err := flux.RetryStep(ctx, e, w, res.ID, "charge", flux.Force())
	if err != nil {
		t.Fatalf("RetryStep with Force: %v", err)
	}
	if res2.ID != res.ID || res2.Status != flux.StatusCompleted {
		t.Errorf("forced RetryStep: %s %s", res2.ID, res2.Status)
	}
	if got := cnt.get(); !reflect.DeepEqual(got, map[string]int{"validate": 1, "charge": 2, "reserve": 2, "notify": 2}) {
		t.Errorf("forced RetryStep from charge: handler calls %v, want validate 1 and the rest 2", got)
	}
	// Data was restored to the snapshot before charge, not accumulated.
	if want := []string{"validate", "charge", "reserve", "notify"}; !slices.Equal(res2.Data.Trail, want) || res2.Data.Sum != 100 {
		t.Errorf("forced RetryStep data %+v, want trail %v and sum 100", res2.Data, want)
	}
}

func TestRetryStepAndResumeAfterFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, flux.Config{})
	for _, how := range []string{"RetryStep", "Resume"} {
		cnt := &counters{}
		var broken atomic.Bool
		broken.Store(true)
		w := flux.New[tIn, tData]("repair-"+how).
			Step("validate", trail(cnt)).
			Step("charge", func(c *tCtx) error {
				cnt.inc("charge")
				if broken.Load() {
					return errTransient
				}
				c.Data.Trail = append(c.Data.Trail, "charge")
				return nil
			}, flux.Retries(1), flux.NoBackoff()).
			Commit("reserve", trail(cnt))
		res, err := flux.Execute(ctx, e, w, tIn{})
		if !errors.Is(err, errTransient) || res.Status != flux.StatusFailed {
			t.Fatalf("%s: first run %v, %v; want failed with errTransient", how, res.Status, err)
		}
		broken.Store(false)
		if how == "RetryStep" {
			res, err = flux.RetryStep(ctx, e, w, res.ID, "charge")
		} else {
			res, err = flux.Resume(ctx, e, w, res.ID)
		}
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		if res.Status != flux.StatusCompleted || !slices.Equal(res.Data.Trail, []string{"validate", "charge", "reserve"}) {
			t.Errorf("%s: status %s, trail %v", how, res.Status, res.Data.Trail)
		}
		if got := cnt.get(); got["validate"] != 1 || got["charge"] != 3 || got["reserve"] != 1 {
			t.Errorf("%s: handler calls %v, want validate 1, charge 3, reserve 1", how, got)
		}
		if run := mustGet(t, e, res.ID); run.Status != flux.StatusCompleted || run.Error != "" {
			t.Errorf("%s: stored status %s error %q", how, run.Status, run.Error)
		}
	}
}

func TestConcurrentExecute(t *testing.T) {
	t.Parallel()
	const runs = 1000
	ctx := context.Background()
	e := newEngine(t, flux.Config{})
	w := flux.New[tIn, tData]("concurrent").
		Step("a", func(c *tCtx) error { c.Data.Sum = c.Input.N; return nil }).
		Step("b", func(c *tCtx) error { c.Data.Sum *= 2; return nil }).
		Commit("c", func(c *tCtx) error { c.Data.Trail = append(c.Data.Trail, fmt.Sprint(c.Input.N)); return nil })
	results := make([]*flux.Result[tData], runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			res, err := flux.Execute(ctx, e, w, tIn{N: i})
			if err != nil {
				t.Errorf("run %d: %v", i, err)
				return
			}
			results[i] = res
		})
	}
	wg.Wait()
	ids := make(map[string]int, runs)
	for i, res := range results {
		if res == nil {
			continue
		}
		if res.Status != flux.StatusCompleted || res.Data.Sum != 2*i || !slices.Equal(res.Data.Trail, []string{fmt.Sprint(i)}) {
			t.Errorf("run %d: status %s, data %+v", i, res.Status, res.Data)
		}
		if j, dup := ids[res.ID]; dup {
			t.Errorf("runs %d and %d share ID %s", j, i, res.ID)
		}
		ids[res.ID] = i
		if i%50 == 0 {
			run := mustGet(t, e, res.ID)
			if want := fmt.Sprintf(`{"trail":["%d"],"sum":%d}`, i, 2*i); string(run.Data) != want {
				t.Errorf("stored run %d data %s, want %s", i, run.Data, want)
			}
		}
	}
	page, err := e.List(ctx, flux.Filter{Workflow: "concurrent", Status: []flux.Status{flux.StatusCompleted}, Limit: runs})
	if err != nil || len(page.Runs) != runs || page.Next != "" {
		t.Errorf("List: %d completed runs (next %q), err %v; want %d", len(page.Runs), page.Next, err, runs)
	}
}

// TestCommitIsDurableAroundItsHooks checks SPEC §4 through the hooks: when
// a commit's StepStart fires, storage already has every node before it done
// and the commit started; when its StepComplete fires, storage has it
// completed.
func TestCommitIsDurableAroundItsHooks(t *testing.T) {
	t.Parallel()
	store := flux.NewMemoryStorage()
	type seen struct {
		hook     string
		statuses []flux.Status
	}
	var mu sync.Mutex
	var got []seen
	look := func(hook string) func(flux.StepEvent) {
		return func(ev flux.StepEvent) {
			if ev.Kind != flux.KindCommit {
				return
			}
			run, err := store.Get(context.Background(), ev.RunID)
			if err != nil {
				t.Errorf("Get in %s hook: %v", hook, err)
				return
			}
			mu.Lock()
			got = append(got, seen{hook + " " + ev.Step, stepStatuses(run.Steps)})
			mu.Unlock()
		}
	}
	e := newEngine(t, flux.Config{Storage: store, Hooks: flux.Hooks{StepStart: look("StepStart"), StepComplete: look("StepComplete")}})
	cnt := &counters{}
	w := flux.New[tIn, tData]("fence").
		Step("a", trail(cnt)).
		Step("b", trail(cnt)).
		Commit("c", trail(cnt)).
		Step("d", trail(cnt))
	if _, err := flux.Execute(context.Background(), e, w, tIn{}); err != nil {
		t.Fatal(err)
	}
	C, R, P := flux.StatusCompleted, flux.StatusRunning, flux.StatusPending
	wantSeen := []seen{
		{"StepStart c", []flux.Status{C, C, R, P}},
		{"StepComplete c", []flux.Status{C, C, C, P}},
	}
	if !reflect.DeepEqual(got, wantSeen) {
		t.Errorf("storage seen from the commit's hooks:\n got  %v\n want %v", got, wantSeen)
	}
}

// TestExecuteWithCancelledContext starts a run with a context that is
// already cancelled: no handler runs and the run is stored resumable.
func TestExecuteWithCancelledContext(t *testing.T) {
	t.Parallel()
	e := newEngine(t, flux.Config{})
	cnt := &counters{}
	w := flux.New[tIn, tData]("dead-on-arrival").Step("a", trail(cnt)).Commit("b", trail(cnt))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := flux.Execute(ctx, e, w, tIn{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if got := cnt.get(); len(got) != 0 {
		t.Errorf("handlers ran with a cancelled context: %v", got)
	}
	if res != nil {
		run := mustGet(t, e, res.ID)
		if run.Status != flux.StatusRunning || run.Steps[0].Status != flux.StatusPending {
			t.Errorf("stored run %s, node a %s; want running and pending (resumable)", run.Status, run.Steps[0].Status)
		}
		res, err = flux.Resume(context.Background(), e, w, res.ID)
		if err != nil || res.Status != flux.StatusCompleted || !slices.Equal(res.Data.Trail, []string{"a", "b"}) {
			t.Errorf("Resume: %v, %+v", err, res)
		}
	}
}

// TestRetryStepBeyondUnfinishedNode asks RetryStep to start after a node the
// run never finished: there is no data snapshot to start from, so it is
// refused and the run is left as it was.
func TestRetryStepBeyondUnfinishedNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, flux.Config{})
	cnt := &counters{}
	var broken atomic.Bool
	broken.Store(true)
	w := flux.New[tIn, tData]("beyond").
		Step("a", func(c *tCtx) error {
			cnt.inc("a")
			if broken.Load() {
				return flux.Permanent(errTransient)
			}
			c.Data.Trail = append(c.Data.Trail, "a")
			return nil
		}).
		Step("b", trail(cnt)).
		Step("c", trail(cnt))
	res, err := flux.Execute(ctx, e, w, tIn{})
	if !errors.Is(err, errTransient) {
		t.Fatalf("first run: %v", err)
	}
	before := mustGet(t, e, res.ID)
	for _, from := range []string{"b", "c"} {
		_, err := flux.RetryStep(ctx, e, w, res.ID, from)
		if err == nil || !strings.Contains(err.Error(), `"a"`) {
			t.Errorf("RetryStep(%s) past failed node a: err = %v, want an error naming a", from, err)
		}
	}
	after := mustGet(t, e, res.ID)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("refused RetryStep changed the stored run:\n before %+v\n after  %+v", before, after)
	}
	if got := cnt.get(); got["b"] != 0 || got["c"] != 0 || got["a"] != 1 {
		t.Errorf("refused RetryStep ran handlers: %v", got)
	}
	broken.Store(false)
	res, err = flux.RetryStep(ctx, e, w, res.ID, "a")
	if err != nil || !slices.Equal(res.Data.Trail, []string{"a", "b", "c"}) {
		t.Errorf("RetryStep(a): %v, trail %v", err, res.Data.Trail)
	}
}
