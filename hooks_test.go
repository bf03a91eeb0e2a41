package flux_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flux-go/flux"
)

// event is one hook call, run-level or step-level.
type event struct {
	Hook     string
	RunID    string
	Workflow string
	Status   flux.Status // run events
	Step     string
	Index    int
	Kind     flux.Kind
	Attempt  int
	Delay    time.Duration
	Duration time.Duration
	Err      error
	At       time.Time // time.Now() when the hook ran (fake inside synctest)
}

// recorder records every hook call of an engine, in order.
type recorder struct {
	mu     sync.Mutex
	events []event
}

func (r *recorder) add(ev event) {
	ev.At = time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) hooks() flux.Hooks {
	run := func(name string) func(flux.RunEvent) {
		return func(e flux.RunEvent) {
			r.add(event{Hook: name, RunID: e.RunID, Workflow: e.Workflow, Status: e.Status, Index: -1, Duration: e.Duration, Err: e.Err})
		}
	}
	step := func(name string) func(flux.StepEvent) {
		return func(e flux.StepEvent) {
			r.add(event{Hook: name, RunID: e.RunID, Workflow: e.Workflow, Step: e.Step, Index: e.Index,
				Kind: e.Kind, Attempt: e.Attempt, Delay: e.Delay, Duration: e.Duration, Err: e.Err})
		}
	}
	return flux.Hooks{
		WorkflowStart:    run("WorkflowStart"),
		WorkflowComplete: run("WorkflowComplete"),
		WorkflowError:    run("WorkflowError"),
		StepStart:        step("StepStart"),
		StepComplete:     step("StepComplete"),
		StepSkipped:      step("StepSkipped"),
		StepRetry:        step("StepRetry"),
		StepError:        step("StepError"),
	}
}

func (r *recorder) forRun(id string) []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event
	for _, e := range r.events {
		if e.RunID == id {
			out = append(out, e)
		}
	}
	return out
}

func (r *recorder) forStep(id, step string) []event {
	var out []event
	for _, e := range r.forRun(id) {
		if e.Step == step {
			out = append(out, e)
		}
	}
	return out
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func hookNames(evs []event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Hook)
	}
	return out
}

// want is one expected hook call: err nil means the hook's Err must be nil,
// otherwise errors.Is(Err, err) must hold.
type want struct {
	hook    string
	step    string
	attempt int
	err     error
}

func (w want) String() string {
	return fmt.Sprintf("%s(%s#%d, %v)", w.hook, w.step, w.attempt, w.err)
}

func (e event) String() string {
	return fmt.Sprintf("%s(%s#%d, %v)", e.Hook, e.Step, e.Attempt, e.Err)
}

// checkSequence compares the hook calls of one run with the expected list,
// and checks that each carries the run ID, the workflow and, for step
// events, the node's index and kind.
func checkSequence(t *testing.T, got []event, runID, workflow string, nodes []flux.NodeInfo, wants []want) {
	t.Helper()
	ok := len(got) == len(wants)
	for i := range min(len(got), len(wants)) {
		g, w := got[i], wants[i]
		match := g.Hook == w.hook && g.Step == w.step && g.Attempt == w.attempt
		if w.err == nil {
			match = match && g.Err == nil
		} else {
			match = match && errors.Is(g.Err, w.err)
		}
		if !match {
			ok = false
			t.Errorf("hook %d: got %v, want %v", i, g, w)
		}
		if g.RunID != runID || g.Workflow != workflow {
			t.Errorf("hook %d (%v): run %q of %q, want %q of %q", i, g, g.RunID, g.Workflow, runID, workflow)
		}
		if g.Step != "" {
			idx := slices.IndexFunc(nodes, func(n flux.NodeInfo) bool { return n.Name == g.Step })
			if g.Index != idx || g.Kind != nodes[idx].Kind {
				t.Errorf("hook %d (%v): index %d kind %s, want %d %s", i, g, g.Index, g.Kind, idx, nodes[idx].Kind)
			}
		}
	}
	if !ok {
		t.Errorf("hook sequence:\n got  %v\n want %v", got, wants)
	}
}

// traceRecorder is a TraceSink that keeps event types and steps.
type traceRecorder struct {
	mu     sync.Mutex
	events []flux.TraceEvent
}

func (r *traceRecorder) Emit(ev flux.TraceEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *traceRecorder) forRun(id string) []flux.TraceEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []flux.TraceEvent
	for _, e := range r.events {
		if e.RunID == id {
			out = append(out, e)
		}
	}
	return out
}

var hookOfTrace = map[flux.EventType]string{
	flux.EventWorkflowStart:     "WorkflowStart",
	flux.EventWorkflowComplete:  "WorkflowComplete",
	flux.EventWorkflowError:     "WorkflowError",
	flux.EventWorkflowCancelled: "WorkflowError",
	flux.EventStepStart:         "StepStart",
	flux.EventStepComplete:      "StepComplete",
	flux.EventStepSkipped:       "StepSkipped",
	flux.EventStepRetry:         "StepRetry",
	flux.EventStepError:         "StepError",
}

// checkTraceMatchesHooks checks that the trace sink saw the same
// transitions, in the same order, as the hooks.
func checkTraceMatchesHooks(t *testing.T, trace []flux.TraceEvent, hooks []event) {
	t.Helper()
	if len(trace) != len(hooks) {
		t.Errorf("trace has %d events, hooks %d", len(trace), len(hooks))
		return
	}
	for i, te := range trace {
		h := hooks[i]
		if hookOfTrace[te.Type] != h.Hook || te.Step != h.Step || te.Attempt != h.Attempt || (te.Err == "") != (h.Err == nil) {
			t.Errorf("trace event %d %s(%s#%d, %q) differs from hook %v", i, te.Type, te.Step, te.Attempt, te.Err, h)
		}
	}
}

// TestHookSequenceOrder records every hook of the seed's order-fulfillment
// example, with two transient charge failures, and compares it with SPEC §6.
func TestHookSequenceOrder(t *testing.T) {
	t.Parallel()
	rec, trace := &recorder{}, &traceRecorder{}
	e := newEngine(t, flux.Config{Hooks: rec.hooks(), Trace: trace})
	cnt := &counters{}
	w := orderFlow(cnt, 2, flux.NoBackoff())
	res, err := flux.Execute(context.Background(), e, w, tIn{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := rec.forRun(res.ID)
	checkSequence(t, got, res.ID, "order-fulfillment", w.Describe().Nodes, []want{
		{"WorkflowStart", "", 0, nil},
		{"StepStart", "validate", 1, nil},
		{"StepComplete", "validate", 1, nil},
		{"StepStart", "charge", 1, nil},
		{"StepRetry", "charge", 1, errTransient},
		{"StepStart", "charge", 2, nil},
		{"StepRetry", "charge", 2, errTransient},
		{"StepStart", "charge", 3, nil},
		{"StepComplete", "charge", 3, nil},
		{"StepStart", "reserve", 1, nil},
		{"StepComplete", "reserve", 1, nil},
		{"StepStart", "notify", 1, nil},
		{"StepComplete", "notify", 1, nil},
		{"WorkflowComplete", "", 0, nil},
	})
	if len(got) > 0 && (got[0].Status != flux.StatusRunning || got[len(got)-1].Status != flux.StatusCompleted) {
		t.Errorf("run statuses in hooks: start %s, end %s; want running, completed", got[0].Status, got[len(got)-1].Status)
	}
	checkTraceMatchesHooks(t, trace.forRun(res.ID), got)
	if n := len(res.Steps[1].Attempts); n != 3 {
		t.Errorf("charge has %d attempts recorded, want 3", n)
	}
}

// TestHookSequenceFailure records the hooks of a run whose step fails after
// its retries: StepError, then WorkflowError with the *StepError.
func TestHookSequenceFailure(t *testing.T) {
	t.Parallel()
	rec, trace := &recorder{}, &traceRecorder{}
	e := newEngine(t, flux.Config{Hooks: rec.hooks(), Trace: trace})
	cnt := &counters{}
	w := flux.New[tIn, tData]("payment").
		Step("validate", trail(cnt)).
		Step("charge", func(*tCtx) error { return errTransient }, flux.Retries(1), flux.NoBackoff()).
		Commit("reserve", trail(cnt))
	res, err := flux.Execute(context.Background(), e, w, tIn{})
	if !errors.Is(err, errTransient) {
		t.Fatalf("err = %v, want errTransient", err)
	}
	got := rec.forRun(res.ID)
	checkSequence(t, got, res.ID, "payment", w.Describe().Nodes, []want{
		{"WorkflowStart", "", 0, nil},
		{"StepStart", "validate", 1, nil},
		{"StepComplete", "validate", 1, nil},
		{"StepStart", "charge", 1, nil},
		{"StepRetry", "charge", 1, errTransient},
		{"StepStart", "charge", 2, nil},
		{"StepError", "charge", 2, errTransient},
		{"WorkflowError", "", 0, errTransient},
	})
	last := got[len(got)-1]
	var se *flux.StepError
	if !errors.As(last.Err, &se) || se.Step != "charge" || se.Attempt != 2 || se.RunID != res.ID || last.Status != flux.StatusFailed {
		t.Errorf("WorkflowError event %+v, want a *StepError for charge attempt 2 and status failed", last)
	}
	checkTraceMatchesHooks(t, trace.forRun(res.ID), got)
}

// TestHookSequenceSkipped records the hooks of a run with a skipped commit
// between two steps.
func TestHookSequenceSkipped(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	e := newEngine(t, flux.Config{Hooks: rec.hooks()})
	cnt := &counters{}
	w := flux.New[tIn, tData]("skipping").
		Step("validate", trail(cnt)).
		Commit("notify", trail(cnt), flux.When(func(c *tCtx) bool { return c.Input.Notify })).
		Step("audit", trail(cnt))
	res, err := flux.Execute(context.Background(), e, w, tIn{Notify: false})
	if err != nil {
		t.Fatal(err)
	}
	checkSequence(t, rec.forRun(res.ID), res.ID, "skipping", w.Describe().Nodes, []want{
		{"WorkflowStart", "", 0, nil},
		{"StepStart", "validate", 1, nil},
		{"StepComplete", "validate", 1, nil},
		{"StepSkipped", "notify", 0, nil},
		{"StepStart", "audit", 1, nil},
		{"StepComplete", "audit", 1, nil},
		{"WorkflowComplete", "", 0, nil},
	})
}

// TestPanicInHook makes every hook panic: each panic is logged with its
// stack and the run completes as if there were no hooks.
func TestPanicInHook(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	var mu sync.Mutex
	calls := 0
	boom := func() {
		mu.Lock()
		calls++
		mu.Unlock()
		panic("hook bug")
	}
	runHook := func(flux.RunEvent) { boom() }
	stepHook := func(flux.StepEvent) { boom() }
	e := newEngine(t, flux.Config{
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelError})),
		Hooks: flux.Hooks{
			WorkflowStart: runHook, WorkflowComplete: runHook, WorkflowError: runHook,
			StepStart: stepHook, StepComplete: stepHook, StepSkipped: stepHook, StepRetry: stepHook, StepError: stepHook,
		},
		DefaultStepOptions: []flux.StepOption{flux.NoBackoff()},
	})
	cnt := &counters{}
	w := orderFlow(cnt, 1)
	res, err := flux.Execute(context.Background(), e, w, tIn{})
	if err != nil {
		t.Fatalf("run with panicking hooks: %v", err)
	}
	if res.Status != flux.StatusCompleted || !slices.Equal(res.Data.Trail, []string{"validate", "charge", "reserve", "notify"}) {
		t.Errorf("status %s, trail %v", res.Status, res.Data.Trail)
	}
	if run := mustGet(t, e, res.ID); run.Status != flux.StatusCompleted {
		t.Errorf("stored status %s, want completed", run.Status)
	}
	// WorkflowStart, 4×(StepStart, StepComplete), one more StepStart and a
	// StepRetry for charge, WorkflowComplete.
	if calls != 12 {
		t.Errorf("%d hook calls, want 12", calls)
	}
	logged := strings.Count(logs.String(), "hook panicked")
	if logged != calls {
		t.Errorf("%d hook panics logged, want %d:\n%s", logged, calls, logs)
	}
	if !strings.Contains(logs.String(), "hook bug") || !strings.Contains(logs.String(), "TestPanicInHook") {
		t.Errorf("log lacks the panic value or its stack:\n%s", logs)
	}
}

// TestHookDurations checks, on the fake clock, the durations that hooks and
// the result report: each attempt's own time, and the run's total.
func TestHookDurations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		e := openEngine(t, flux.Config{Hooks: rec.hooks()})
		defer e.Close()
		w := flux.New[tIn, tData]("durations").
			Step("slow", func(c *tCtx) error {
				time.Sleep(time.Duration(c.Attempt()) * time.Second)
				if c.Attempt() == 1 {
					return errTransient
				}
				return nil
			}, flux.Backoff(time.Minute, time.Minute)).
			Commit("quick", func(c *tCtx) error { time.Sleep(time.Millisecond); return nil })
		res, err := flux.Execute(context.Background(), e, w, tIn{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ev := range rec.forRun(res.ID) {
			if ev.Hook != "StepStart" && ev.Hook != "WorkflowStart" {
				got = append(got, fmt.Sprintf("%s %s %s", ev.Hook, ev.Step, ev.Duration))
			}
		}
		// The retry waits between 30s and 60s (jitter), so the run's total
		// is computed from the announced delay.
		delay := rec.forStep(res.ID, "slow")[1].Delay
		total := time.Second + delay + 2*time.Second + time.Millisecond
		want := []string{
			"StepRetry slow 1s",
			"StepComplete slow 2s",
			"StepComplete quick 1ms",
			fmt.Sprintf("WorkflowComplete  %s", total),
		}
		if !slices.Equal(got, want) {
			t.Errorf("durations:\n got  %q\n want %q", got, want)
		}
		if a := res.Steps[0].Attempts; len(a) != 2 || a[0].Duration != time.Second || a[1].Duration != 2*time.Second {
			t.Errorf("recorded attempts %+v, want 1s and 2s", a)
		}
		if res.Duration != total {
			t.Errorf("Result.Duration = %s, want %s", res.Duration, total)
		}
	})
}
