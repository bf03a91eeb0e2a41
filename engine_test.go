package flux_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
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
