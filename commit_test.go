package flux_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/flux-go/flux"
)

// A run stopped after a commit's fence was written but before its handler
// was called leaves the commit not started: even an AtMostOnce commit then
// runs on Resume instead of failing as outcome-unknown.
func TestStopBeforeCommitHandlerLeavesCommitNotStarted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var charged atomic.Int32
	e := newEngine(t, flux.Config{Hooks: flux.Hooks{
		StepComplete: func(ev flux.StepEvent) {
			if ev.Step == "prepare" {
				cancel() // after the write that records the commit's start
			}
		},
	}})
	w := flux.New[tIn, tData]("fence").
		Step("prepare", func(c *tCtx) error { c.Data.Sum = 1; return nil }).
		Commit("charge", func(c *tCtx) error { charged.Add(1); return nil }, flux.AtMostOnce())
	res, err := flux.Execute(ctx, e, w, tIn{}, flux.RunID("fence-1"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute: %v, want context.Canceled", err)
	}
	if charged.Load() != 0 {
		t.Fatalf("charge ran %d times before the stop", charged.Load())
	}
	run, err := e.Get(context.Background(), res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != flux.StatusRunning || run.Steps[1].Status != flux.StatusPending || len(run.Steps[1].Attempts) != 0 {
		t.Fatalf("stored run %s with charge %s after %d attempts; want running, charge pending with none",
			run.Status, run.Steps[1].Status, len(run.Steps[1].Attempts))
	}
	res, err = flux.Resume(context.Background(), e, w, res.ID)
	if err != nil || res.Status != flux.StatusCompleted || charged.Load() != 1 || res.Data.Sum != 1 {
		t.Fatalf("Resume: %v, status %s, charged %d times, data %+v; want completed, charged once",
			err, res.Status, charged.Load(), res.Data)
	}
}
