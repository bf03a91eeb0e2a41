package flux_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/flux-go/flux"
)

// versioned returns a workflow named "versioned" whose nodes are given by
// name; a name starting with "!" is a commit, "fail" fails permanently while
// *failing is true. Each node appends its name to Data.Trail.
func versioned(failing *bool, names ...string) *flux.Workflow[tIn, tData] {
	w := flux.New[tIn, tData]("versioned")
	for _, n := range names {
		h := func(c *tCtx) error {
			if c.Step() == "fail" && *failing {
				return flux.Permanent(errors.New("not yet"))
			}
			c.Data.Trail = append(c.Data.Trail, c.Step())
			return nil
		}
		if name, ok := strings.CutPrefix(n, "!"); ok {
			w.Commit(name, h)
		} else {
			w.Step(n, h)
		}
	}
	return w
}

// failedRun executes v1 (a, fail, !c) until "fail" fails and returns the
// run's ID.
func failedRun(t *testing.T, e *flux.Engine, failing *bool) string {
	t.Helper()
	*failing = true
	res, err := flux.Execute(context.Background(), e, versioned(failing, "a", "fail", "!c"), tIn{})
	if err == nil || res == nil || res.Status != flux.StatusFailed {
		t.Fatalf("v1 run: %v, %+v; want it failed at \"fail\"", err, res)
	}
	*failing = false
	return res.ID
}

// A run may continue on a changed definition when the nodes it already
// started are an unchanged prefix of the new one.
func TestResumeOnDefinitionWithUnchangedPrefix(t *testing.T) {
	t.Parallel()
	e := newEngine(t, flux.Config{})
	var failing bool
	id := failedRun(t, e, &failing)

	v2 := versioned(&failing, "a", "fail", "!c", "d") // a node appended
	res, err := flux.Resume(context.Background(), e, v2, id)
	if err != nil {
		t.Fatalf("Resume on v2: %v", err)
	}
	if want := []string{"a", "fail", "c", "d"}; !slices.Equal(res.Data.Trail, want) {
		t.Errorf("trail %v, want %v (a not run again, d run)", res.Data.Trail, want)
	}
	run, err := e.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Steps) != 4 || run.Steps[3].Name != "d" || run.Fingerprint != v2.Describe().Fingerprint {
		t.Errorf("stored run has steps %v and fingerprint %s; want v2's 4 nodes and fingerprint %s",
			run.Steps, run.Fingerprint, v2.Describe().Fingerprint)
	}
}

// A definition that changed under the nodes a run already started is
// refused with ErrDefinitionChanged naming the difference, and the stored
// run is left as it was.
func TestResumeOnChangedDefinition(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		nodes []string
		want  []string // in the error message
	}{
		{"renamed", []string{"a2", "fail", "!c"}, []string{"node 0", `"a"`, `"a2"`}},
		{"inserted", []string{"a", "x", "fail", "!c"}, []string{"node 1", `"fail"`, `"x"`}},
		{"kind changed", []string{"!a", "fail", "!c"}, []string{"node 0", `step "a"`, `commit "a"`}},
		{"shortened", []string{"a"}, []string{`"fail"`, "gone"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, flux.Config{})
			var failing bool
			id := failedRun(t, e, &failing)
			before, err := e.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			_, err = flux.Resume(context.Background(), e, versioned(&failing, tc.nodes...), id)
			if !errors.Is(err, flux.ErrDefinitionChanged) {
				t.Fatalf("Resume: %v, want ErrDefinitionChanged", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %s", err, w)
				}
			}
			after, err := e.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if after.Version != before.Version || after.Status != flux.StatusFailed || after.Owner != "" {
				t.Errorf("refused Resume changed the run: version %d→%d, status %s, owner %q",
					before.Version, after.Version, after.Status, after.Owner)
			}
		})
	}
}

// A duplicate start of an interrupted run follows the same rule.
func TestDuplicateStartOnChangedDefinition(t *testing.T) {
	t.Parallel()
	e := newEngine(t, flux.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	v1 := flux.New[tIn, tData]("dup").
		Step("a", func(c *tCtx) error { return nil }).
		Step("b", func(c *tCtx) error { cancel(); <-c.Done(); return c.Err() })
	if _, err := flux.Execute(ctx, e, v1, tIn{}, flux.RunID("dup-1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted start: %v, want context.Canceled", err)
	}
	v2 := flux.New[tIn, tData]("dup").
		Step("z", func(c *tCtx) error { return nil }).
		Step("b", func(c *tCtx) error { return nil })
	_, err := flux.Execute(context.Background(), e, v2, tIn{}, flux.RunID("dup-1"))
	if !errors.Is(err, flux.ErrDefinitionChanged) || !strings.Contains(err.Error(), `"z"`) {
		t.Fatalf("duplicate start on a changed definition: %v, want ErrDefinitionChanged naming z", err)
	}
}

// A Data type that JSON cannot encode is a definition mistake, reported
// before any run.
func TestDataTypeMustEncode(t *testing.T) {
	t.Parallel()
	type badData struct{ C chan int }
	w := flux.New[tIn, badData]("bad-data").Step("a", func(c *flux.Ctx[tIn, badData]) error { return nil })
	if err := w.Err(); !errors.Is(err, flux.ErrInvalidDefinition) || !strings.Contains(err.Error(), "JSON") {
		t.Fatalf("Err() = %v, want ErrInvalidDefinition about JSON", err)
	}
	e := newEngine(t, flux.Config{})
	if _, err := flux.Execute(context.Background(), e, w, tIn{}); !errors.Is(err, flux.ErrInvalidDefinition) {
		t.Fatalf("Execute: %v, want ErrInvalidDefinition", err)
	}
	page, err := e.List(context.Background(), flux.Filter{})
	if err != nil || len(page.Runs) != 0 {
		t.Fatalf("List after a refused start: %d runs, %v; want none", len(page.Runs), err)
	}
}

// Recovery of a run whose definition changed under it fails the run with
// the reason, instead of claiming it again and again.
func TestRecoveryOfRunOnChangedDefinitionFailsIt(t *testing.T) {
	t.Parallel()
	store := flux.NewMemoryStorage()
	a := openEngine(t, flux.Config{Storage: store, ID: "a"})
	ctx, cancel := context.WithCancel(context.Background())
	v1 := flux.New[tIn, tData]("drift").
		Step("a", func(c *tCtx) error { return nil }).
		Step("b", func(c *tCtx) error { cancel(); <-c.Done(); return c.Err() })
	if _, err := flux.Execute(ctx, a, v1, tIn{}, flux.RunID("drift-1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted start: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	failed := make(chan flux.RunEvent, 4)
	b := newEngine(t, flux.Config{Storage: store, ID: "b", Hooks: flux.Hooks{
		WorkflowError: func(ev flux.RunEvent) { failed <- ev },
	}})
	v2 := flux.New[tIn, tData]("drift").
		Step("a2", func(c *tCtx) error { return nil }).
		Step("b", func(c *tCtx) error { return nil })
	if err := b.Register(v2); err != nil {
		t.Fatal(err)
	}
	// Register starts the recovery loop; wait for it to settle the run.
	var run *flux.Run
	for run == nil || run.Status == flux.StatusRunning {
		b.RecoverNow()
		got, err := b.Get(context.Background(), "drift-1")
		if err != nil {
			t.Fatal(err)
		}
		run = got
	}
	if run.Status != flux.StatusFailed || !strings.Contains(run.Error, "definition changed") || run.Owner != "" {
		t.Fatalf("run %s, error %q, owner %q; want failed by recovery naming the definition change, lease released",
			run.Status, run.Error, run.Owner)
	}
	if n := b.RecoverNow(); n != 0 {
		t.Errorf("RecoverNow claimed %d runs again, want none", n)
	}
	if ev := <-failed; ev.RunID != "drift-1" || !errors.Is(ev.Err, flux.ErrDefinitionChanged) {
		t.Errorf("WorkflowError hook got %+v, want drift-1 with ErrDefinitionChanged", ev)
	}
}
