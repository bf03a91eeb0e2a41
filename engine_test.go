package flux_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flux-go/flux"
)

// tIn and tData are the input and data of most test workflows.
type tIn struct {
	N      int    `json:"n"`
	Notify bool   `json:"notify"`
	Pad    string `json:"pad,omitempty"`
}

type tData struct {
	Trail []string `json:"trail,omitempty"`
	Sum   int      `json:"sum"`
	Big   string   `json:"big,omitempty"`
}

type tCtx = flux.Ctx[tIn, tData]

var errTransient = errors.New("transient failure")

// quiet is a logger that drops everything.
var quiet = slog.New(slog.DiscardHandler)

// logBuffer is an io.Writer for a slog handler, safe for concurrent runs.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newEngine returns an engine configured by cfg, with a quiet logger unless
// cfg has one, closed when the test ends. Inside a synctest bubble use
// openEngine and close it before the bubble ends.
func newEngine(t testing.TB, cfg flux.Config) *flux.Engine {
	t.Helper()
	e := openEngine(t, cfg)
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func openEngine(t testing.TB, cfg flux.Config) *flux.Engine {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	e, err := flux.NewEngine(cfg)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	return e
}

// counters counts handler executions per node, across goroutines.
type counters struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counters) inc(step string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = make(map[string]int)
	}
	c.n[step]++
}

func (c *counters) get() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// trail returns a handler that counts its run in cnt and appends its name
// to the data's trail.
func trail(cnt *counters) flux.Handler[tIn, tData] {
	return func(c *tCtx) error {
		cnt.inc(c.Step())
		c.Data.Trail = append(c.Data.Trail, c.Step())
		return nil
	}
}

func stepStatuses(steps []flux.StepState) []flux.Status {
	var out []flux.Status
	for _, s := range steps {
		out = append(out, s.Status)
	}
	return out
}

func mustGet(t *testing.T, e *flux.Engine, id string) *flux.Run {
	t.Helper()
	run, err := e.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return run
}

func TestDefinitionErrors(t *testing.T) {
	t.Parallel()
	ok := func(*tCtx) error { return nil }
	type otherIn struct{ X int }
	tests := []struct {
		name string
		w    *flux.Workflow[tIn, tData]
		says string
	}{
		{"empty workflow name", flux.New[tIn, tData]("").Step("a", ok), "workflow name is empty"},
		{"empty step name", flux.New[tIn, tData]("d").Step("", ok), "name is empty"},
		{"empty commit name", flux.New[tIn, tData]("d").Step("a", ok).Commit("", ok), "name is empty"},
		{"duplicate name", flux.New[tIn, tData]("d").Step("a", ok).Commit("a", ok), "duplicate"},
		{"nil handler", flux.New[tIn, tData]("d").Step("a", nil), "handler is nil"},
		{"no steps", flux.New[tIn, tData]("d"), "no steps"},
		{"When of other input type", flux.New[tIn, tData]("d").
			Step("a", ok, flux.When(func(*flux.Ctx[otherIn, tData]) bool { return true })), "When predicate"},
		{"When of other data type", flux.New[tIn, tData]("d").
			Step("a", ok, flux.When(func(*flux.Ctx[tIn, otherIn]) bool { return true })), "When predicate"},
		{"When(nil)", flux.New[tIn, tData]("d").Step("a", ok, flux.When[tIn, tData](nil)), "When(nil)"},
		{"negative Retries", flux.New[tIn, tData]("d").Step("a", ok, flux.Retries(-1)), "Retries(-1)"},
		{"negative Timeout", flux.New[tIn, tData]("d").Step("a", ok, flux.Timeout(-1)), "Timeout"},
		{"zero Backoff base", flux.New[tIn, tData]("d").Step("a", ok, flux.Backoff(0, 1)), "Backoff"},
		{"Backoff max below base", flux.New[tIn, tData]("d").Step("a", ok, flux.Backoff(2, 1)), "Backoff"},
		{"AtMostOnce on a step", flux.New[tIn, tData]("d").Step("a", ok, flux.AtMostOnce()), "AtMostOnce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, flux.Config{})
			if err := tt.w.Err(); !errors.Is(err, flux.ErrInvalidDefinition) {
				t.Fatalf("Err() = %v, want ErrInvalidDefinition", err)
			}
			res, err := flux.Execute(context.Background(), e, tt.w, tIn{})
			if !errors.Is(err, flux.ErrInvalidDefinition) {
				t.Fatalf("Execute: err = %v, want ErrInvalidDefinition", err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Execute: error %q does not say %q", err, tt.says)
			}
			if res != nil {
				t.Errorf("Execute: result %+v for an invalid definition, want nil", res)
			}
			if err := e.Register(tt.w); !errors.Is(err, flux.ErrInvalidDefinition) {
				t.Errorf("Register: err = %v, want ErrInvalidDefinition", err)
			}
			page, err := e.List(context.Background(), flux.Filter{})
			if err != nil || len(page.Runs) != 0 {
				t.Errorf("List after invalid definition: %d runs, err %v; want none", len(page.Runs), err)
			}
		})
	}
}

func TestValidDefinitionRegisters(t *testing.T) {
	t.Parallel()
	e := newEngine(t, flux.Config{})
	w := flux.New[tIn, tData]("valid").Step("a", func(*tCtx) error { return nil }).
		Commit("b", func(*tCtx) error { return nil }, flux.When(func(*tCtx) bool { return true }), flux.AtMostOnce())
	if err := w.Err(); err != nil {
		t.Fatalf("Err() = %v", err)
	}
	if err := e.Register(w); err != nil {
		t.Fatalf("Register: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	ok := func(*tCtx) error { return nil }
	w := flux.New[tIn, tData]("shape").
		Step("a", ok, flux.Retries(2), flux.Timeout(5e9), flux.Backoff(1e6, 4e6)).
		Commit("b", ok, flux.When(func(*tCtx) bool { return true }))
	d := w.Describe()
	if d.Name != "shape" || len(d.Nodes) != 2 {
		t.Fatalf("Describe() = %+v", d)
	}
	a, b := d.Nodes[0], d.Nodes[1]
	if a.Name != "a" || a.Kind != flux.KindStep || a.Retries == nil || *a.Retries != 2 || a.Timeout != 5e9 ||
		a.Backoff == nil || a.Backoff.Base != 1e6 || a.Backoff.Max != 4e6 || a.When {
		t.Errorf("node a = %+v", a)
	}
	if b.Name != "b" || b.Kind != flux.KindCommit || b.Retries != nil || !b.When {
		t.Errorf("node b = %+v", b)
	}
	same := flux.New[tIn, tData]("other").Step("a", ok).Commit("b", ok).Describe()
	kind := flux.New[tIn, tData]("shape").Step("a", ok).Step("b", ok).Describe()
	order := flux.New[tIn, tData]("shape").Commit("b", ok).Step("a", ok).Describe()
	if same.Fingerprint != d.Fingerprint {
		t.Errorf("fingerprint depends on options or workflow name: %s vs %s", same.Fingerprint, d.Fingerprint)
	}
	if kind.Fingerprint == d.Fingerprint || order.Fingerprint == d.Fingerprint {
		t.Errorf("fingerprint ignores node kinds or order: %s %s %s", d.Fingerprint, kind.Fingerprint, order.Fingerprint)
	}
}

func TestValidateFailureStoresNoRun(t *testing.T) {
	t.Parallel()
	errTooSmall := errors.New("n must be positive")
	var ran atomic.Int32
	w := flux.New[tIn, tData]("validated").
		Validate(func(in tIn) error {
			if in.N == -1 {
				panic("validator panicked")
			}
			if in.N <= 0 {
				return errTooSmall
			}
			return nil
		}).
		Step("a", func(*tCtx) error { ran.Add(1); return nil })
	e := newEngine(t, flux.Config{})
	ctx := context.Background()

	res, err := flux.Execute(ctx, e, w, tIn{N: 0})
	if !errors.Is(err, flux.ErrInvalidInput) || !errors.Is(err, errTooSmall) {
		t.Fatalf("err = %v, want ErrInvalidInput wrapping the validator's error", err)
	}
	if res != nil {
		t.Errorf("result %+v for invalid input, want nil", res)
	}
	res, err = flux.Execute(ctx, e, w, tIn{N: -1})
	var pe *flux.PanicError
	if !errors.Is(err, flux.ErrInvalidInput) || !errors.As(err, &pe) || pe.Value != "validator panicked" {
		t.Fatalf("panicking validator: err = %v, want ErrInvalidInput wrapping a *PanicError", err)
	}
	if res != nil {
		t.Errorf("result %+v for a panicking validator, want nil", res)
	}
	page, err := e.List(ctx, flux.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != 0 {
		t.Errorf("List: %d runs stored for invalid input, want 0", len(page.Runs))
	}
	if n := ran.Load(); n != 0 {
		t.Errorf("handler ran %d times for invalid input", n)
	}
	// Valid input still runs, so the validator is not refusing everything.
	if _, err := flux.Execute(ctx, e, w, tIn{N: 1}); err != nil {
		t.Fatalf("valid input: %v", err)
	}
	if page, _ := e.List(ctx, flux.Filter{}); len(page.Runs) != 1 {
		t.Errorf("List after one valid run: %d runs, want 1", len(page.Runs))
	}
}

func TestPayloadTooLarge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, flux.Config{MaxPayloadBytes: 200})
	var ran atomic.Int32
	w := flux.New[tIn, tData]("payload").
		Step("a", func(c *tCtx) error {
			ran.Add(1)
			c.Data.Sum = 1
			return nil
		}).
		Step("grow", func(c *tCtx) error {
			c.Data.Big = strings.Repeat("x", c.Input.N)
			return nil
		})

	res, err := flux.Execute(ctx, e, w, tIn{Pad: strings.Repeat("p", 300)})
	if !errors.Is(err, flux.ErrPayloadTooLarge) {
		t.Fatalf("oversized input: err = %v, want ErrPayloadTooLarge", err)
	}
	if res != nil {
		t.Errorf("oversized input: result %+v, want nil", res)
	}
	if page, _ := e.List(ctx, flux.Filter{}); len(page.Runs) != 0 {
		t.Errorf("oversized input stored %d runs, want 0", len(page.Runs))
	}
	if ran.Load() != 0 {
		t.Error("a handler ran for oversized input")
	}

	// Data that outgrows the limit fails the run, and the stored snapshot
	// stays the last one within the limit.
	res, err = flux.Execute(ctx, e, w, tIn{N: 300})
	if !errors.Is(err, flux.ErrPayloadTooLarge) {
		t.Fatalf("oversized data: err = %v, want ErrPayloadTooLarge", err)
	}
	run := mustGet(t, e, res.ID)
	if run.Status != flux.StatusFailed || len(run.Data) > 200 || !strings.Contains(string(run.Data), `"sum":1`) {
		t.Errorf("stored run after oversized data: status %s, data %s", run.Status, run.Data)
	}
	if got := len(run.Steps[1].Attempts); got != 1 {
		t.Errorf("oversized data was retried: %d attempts, want 1", got)
	}

	// Within the limit, the same workflow completes.
	if _, err := flux.Execute(ctx, e, w, tIn{N: 10}); err != nil {
		t.Fatalf("small data: %v", err)
	}
}

func TestUnknownRunAndStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, flux.Config{})
	w := flux.New[tIn, tData]("known").Step("a", func(*tCtx) error { return nil })
	if _, err := e.Get(ctx, "no-such-run"); !errors.Is(err, flux.ErrRunNotFound) {
		t.Errorf("Get(unknown) err = %v, want ErrRunNotFound", err)
	}
	if _, err := flux.Resume(ctx, e, w, "no-such-run"); !errors.Is(err, flux.ErrRunNotFound) {
		t.Errorf("Resume(unknown) err = %v, want ErrRunNotFound", err)
	}
	if _, err := flux.RetryStep(ctx, e, w, "no-such-run", "a"); !errors.Is(err, flux.ErrRunNotFound) {
		t.Errorf("RetryStep(unknown run) err = %v, want ErrRunNotFound", err)
	}
	if err := e.Cancel(ctx, "no-such-run"); !errors.Is(err, flux.ErrRunNotFound) {
		t.Errorf("Cancel(unknown) err = %v, want ErrRunNotFound", err)
	}
	res, err := flux.Execute(ctx, e, w, tIn{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = flux.RetryStep(ctx, e, w, res.ID, "nope")
	if !errors.Is(err, flux.ErrStepNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("RetryStep(unknown step) err = %v, want ErrStepNotFound naming it", err)
	}
}

func TestCtxAccessors(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	e := newEngine(t, flux.Config{
		Logger:             slog.New(slog.NewTextHandler(logs, nil)),
		DefaultStepOptions: []flux.StepOption{flux.NoBackoff()},
	})
	type seen struct {
		run, workflow, step, key string
		attempt                  int
		input                    int
	}
	var mu sync.Mutex
	var got []seen
	record := func(c *tCtx) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, seen{c.RunID(), c.Workflow(), c.Step(), c.IdempotencyKey(), c.Attempt(), c.Input.N})
	}
	w := flux.New[tIn, tData]("accessors").
		Step("a", func(c *tCtx) error {
			record(c)
			if c.Attempt() < 3 {
				return errTransient
			}
			c.Logger().Info("hello from a")
			return nil
		}).
		Commit("b", func(c *tCtx) error { record(c); return nil })
	res, err := flux.Execute(context.Background(), e, w, tIn{N: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d handler calls, want 4", len(got))
	}
	for i, s := range got {
		wantStep, wantAttempt := "a", i+1
		if i == 3 {
			wantStep, wantAttempt = "b", 1
		}
		if s.run != res.ID || s.workflow != "accessors" || s.step != wantStep || s.attempt != wantAttempt || s.input != 7 {
			t.Errorf("call %d saw %+v, want run %s step %s attempt %d", i, s, res.ID, wantStep, wantAttempt)
		}
	}
	if got[0].key == "" || got[0].key != got[1].key || got[1].key != got[2].key {
		t.Errorf("IdempotencyKey changes across attempts: %q %q %q", got[0].key, got[1].key, got[2].key)
	}
	if got[2].key == got[3].key {
		t.Errorf("IdempotencyKey %q is the same for two nodes", got[2].key)
	}
	line := ""
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "hello from a") {
			line = l
		}
	}
	for _, attr := range []string{"run_id=" + res.ID, "workflow=accessors", "step=a", "attempt=3"} {
		if !strings.Contains(line, attr) {
			t.Errorf("Logger() line %q lacks %s", line, attr)
		}
	}
}

func TestWhen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rec := &recorder{}
	e := newEngine(t, flux.Config{Hooks: rec.hooks()})
	cnt := &counters{}
	var predSaw []int
	var mu sync.Mutex
	w := flux.New[tIn, tData]("when").
		Step("prepare", func(c *tCtx) error { cnt.inc("prepare"); c.Data.Sum = c.Input.N; return nil }).
		Commit("notify", trail(cnt), flux.When(func(c *tCtx) bool {
			mu.Lock()
			predSaw = append(predSaw, c.Data.Sum)
			mu.Unlock()
			return c.Input.Notify
		})).
		Step("audit", trail(cnt))

	// When false: skipped, and the next node still runs.
	res, err := flux.Execute(ctx, e, w, tIn{N: 5, Notify: false})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stepStatuses(res.Steps), []flux.Status{flux.StatusCompleted, flux.StatusSkipped, flux.StatusCompleted}; !slices.Equal(got, want) {
		t.Errorf("When false: statuses %v, want %v", got, want)
	}
	if got := cnt.get(); got["notify"] != 0 || got["audit"] != 1 {
		t.Errorf("When false: handler calls %v, want notify 0 and audit 1", got)
	}
	if !slices.Equal(res.Data.Trail, []string{"audit"}) || res.Status != flux.StatusCompleted {
		t.Errorf("When false: status %s, trail %v", res.Status, res.Data.Trail)
	}
	if n := len(res.Steps[1].Attempts); n != 0 {
		t.Errorf("skipped node has %d attempts, want 0", n)
	}
	if run := mustGet(t, e, res.ID); run.Steps[1].Status != flux.StatusSkipped {
		t.Errorf("stored node status %s, want skipped", run.Steps[1].Status)
	}
	evs := rec.forStep(res.ID, "notify")
	if len(evs) != 1 || evs[0].Hook != "StepSkipped" || evs[0].Attempt != 0 || evs[0].Kind != flux.KindCommit || evs[0].Index != 1 {
		t.Errorf("When false: hooks for notify %+v, want exactly one StepSkipped", evs)
	}
	if len(predSaw) != 1 || predSaw[0] != 5 {
		t.Errorf("predicate saw data %v, want the data after prepare (Sum 5)", predSaw)
	}

	// When true: the node runs.
	res, err = flux.Execute(ctx, e, w, tIn{N: 6, Notify: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps[1].Status != flux.StatusCompleted || !slices.Equal(res.Data.Trail, []string{"notify", "audit"}) {
		t.Errorf("When true: status %s, trail %v", res.Steps[1].Status, res.Data.Trail)
	}
	evs = rec.forStep(res.ID, "notify")
	if hooks := hookNames(evs); !slices.Equal(hooks, []string{"StepStart", "StepComplete"}) {
		t.Errorf("When true: hooks for notify %v, want StepStart, StepComplete", hooks)
	}
}

func TestPanicInHandler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, flux.Config{})
	type boom struct{ code int }
	w := flux.New[tIn, tData]("panics").
		Step("explode", func(c *tCtx) error {
			c.Data.Sum = 99
			panic(boom{42})
		}, flux.Retries(1), flux.NoBackoff())
	res, err := flux.Execute(ctx, e, w, tIn{})
	if err == nil {
		t.Fatal("a panicking handler completed")
	}
	var pe *flux.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want a *PanicError inside", err, err)
	}
	if pe.Value != (boom{42}) {
		t.Errorf("PanicError.Value = %#v, want boom{42}", pe.Value)
	}
	if !strings.Contains(pe.Stack, "TestPanicInHandler") {
		t.Errorf("PanicError.Stack does not show the handler:\n%s", pe.Stack)
	}
	var se *flux.StepError
	if !errors.As(err, &se) || se.Step != "explode" || se.Attempt != 2 {
		t.Errorf("StepError = %+v, want step explode attempt 2", se)
	}
	if res == nil || res.Status != flux.StatusFailed || res.Data.Sum != 0 {
		t.Fatalf("result %+v, want failed with untouched data", res)
	}
	run := mustGet(t, e, res.ID)
	if run.Status != flux.StatusFailed || len(run.Steps[0].Attempts) != 2 {
		t.Fatalf("stored run status %s with %d attempts, want failed with 2", run.Status, len(run.Steps[0].Attempts))
	}
	for _, a := range run.Steps[0].Attempts {
		if !strings.Contains(a.Error, "panic") || !strings.Contains(a.Stack, "TestPanicInHandler") {
			t.Errorf("attempt %d: error %q, stack %q; want the panic and its stack", a.Number, a.Error, a.Stack)
		}
	}
	if !strings.Contains(run.Error, "panic") {
		t.Errorf("stored run error %q does not mention the panic", run.Error)
	}
}

func TestPanicInWhen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, flux.Config{})
	cnt := &counters{}
	w := flux.New[tIn, tData]("when-panics").
		Step("a", trail(cnt)).
		Step("b", trail(cnt), flux.When(func(c *tCtx) bool { panic("predicate bug") })).
		Step("c", trail(cnt))
	res, err := flux.Execute(ctx, e, w, tIn{})
	var pe *flux.PanicError
	if !errors.As(err, &pe) || pe.Value != "predicate bug" || pe.Stack == "" {
		t.Fatalf("err = %v, want a *PanicError with the value and a stack", err)
	}
	var se *flux.StepError
	if !errors.As(err, &se) || se.Step != "b" {
		t.Errorf("StepError %+v, want step b", se)
	}
	if res.Status != flux.StatusFailed {
		t.Errorf("status %s, want failed", res.Status)
	}
	if got := cnt.get(); got["a"] != 1 || got["b"] != 0 || got["c"] != 0 {
		t.Errorf("handler calls %v, want a only", got)
	}
	if run := mustGet(t, e, res.ID); run.Status != flux.StatusFailed || run.Steps[1].Status != flux.StatusFailed {
		t.Errorf("stored run %s, node b %s; want both failed", run.Status, run.Steps[1].Status)
	}
}

// TestFailedAttemptLeavesNoData checks that each attempt starts from the
// snapshot before the node: writes of failed attempts are gone.
func TestFailedAttemptLeavesNoData(t *testing.T) {
	t.Parallel()
	e := newEngine(t, flux.Config{})
	var mu sync.Mutex
	var starts [][]string
	w := flux.New[tIn, tData]("clean").
		Step("a", func(c *tCtx) error { c.Data.Trail = []string{"a"}; return nil }).
		Step("b", func(c *tCtx) error {
			mu.Lock()
			starts = append(starts, slices.Clone(c.Data.Trail))
			mu.Unlock()
			c.Data.Trail = append(c.Data.Trail, fmt.Sprintf("b%d", c.Attempt()))
			c.Data.Sum += 10
			if c.Attempt() < 3 {
				return errTransient
			}
			return nil
		}, flux.NoBackoff())
	res, err := flux.Execute(context.Background(), e, w, tIn{})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range starts {
		if !slices.Equal(s, []string{"a"}) {
			t.Errorf("attempt %d started with trail %v, want [a]", i+1, s)
		}
	}
	if !slices.Equal(res.Data.Trail, []string{"a", "b3"}) || res.Data.Sum != 10 {
		t.Errorf("data %+v, want trail [a b3] and sum 10", res.Data)
	}
}
