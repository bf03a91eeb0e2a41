package flux

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flux-go/flux/driver"
)

// Start stores a pending run of workflow w with input in and returns its ID
// as soon as the run is durable; engines that registered w execute it in
// the background (see Config.Workers), this one first: Start registers w
// here unless Config.Workers is negative. [Wait] returns its result.
//
// With [RunID] a second Start of the same ID returns the same run, as it
// is: nothing is stored twice, whatever became of it. The input is checked
// as [Execute] checks it; nothing is stored when it is refused.
func Start[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], in In, opts ...RunOption) (string, error) {
	if err := w.Err(); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", context.Cause(ctx)
	}
	var o runOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	input, err := w.encodeInput(in)
	if err != nil {
		return "", err
	}
	if err := e.checkSize("input", input); err != nil {
		return "", err
	}
	if e.slots > 0 {
		if err := e.Register(w); err != nil {
			return "", err
		}
	} else if e.isClosed() {
		return "", ErrClosed
	}
	ckey, err := w.concurrencyKey(in)
	if err != nil {
		return "", err
	}
	now := time.Now()
	id := o.id
	if id == "" {
		id = newIDAt(now)
	}
	run := &Run{
		ID: id, Workflow: w.name, Fingerprint: w.fingerprint(), Status: StatusPending,
		Input: input, Data: w.zero, Steps: make([]StepState, len(w.nodes)), CreatedAt: now, UpdatedAt: now,
		ConcurrencyKey: ckey,
	}
	for i, n := range w.nodes {
		run.Steps[i] = StepState{Name: n.name, Kind: n.kind, Status: StatusPending}
	}
	_, err = e.store.Create(ctx, driver.CreateParams{Run: run})
	switch {
	case errors.Is(err, ErrRunExists) && o.id != "":
		stored, gerr := e.store.Get(ctx, id)
		if gerr != nil {
			return "", fmt.Errorf("flux: run %s exists, and reading it failed: %w", id, gerr)
		}
		if stored.Workflow != w.name {
			return "", fmt.Errorf("%w: run %s is a run of %q, not %q", ErrWrongWorkflow, id, stored.Workflow, w.name)
		}
		return id, nil
	case err != nil:
		return "", fmt.Errorf("flux: storing new run %s of %q: %w", id, w.name, err)
	}
	e.nudge()
	return id, nil
}

// Shutdown stops the engine gracefully: it takes no more runs, lets each
// run executing here finish the attempt it is in and stop before its next
// node (resumable, its lease given back, for any engine to continue), and
// closes the engine once they all stopped or ctx ends, whichever is first:
// the runs still executing then are stopped as [Engine.Close] stops them.
// It returns ctx's error if ctx ended first. Call Close for a second
// signal: it stops at once.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.draining.Store(true)
	for {
		e.mu.Lock()
		n, ended := len(e.active), e.ended
		e.mu.Unlock()
		if n == 0 {
			return e.Close()
		}
		select {
		case <-ended:
		case <-ctx.Done():
			_ = e.Close()
			return context.Cause(ctx)
		}
	}
}

// Wait waits for run id of workflow w to end, wherever it executes, and
// returns its result as [Execute] would have: err is nil exactly when it
// completed. It returns ctx's error if ctx ends first, an error wrapping
// ErrRunNotFound for an unknown run and ErrWrongWorkflow for a run of
// another workflow. A run that ends here is seen at once; one that ends in
// another process, within a second.
func Wait[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], id string) (*Result[Data], error) {
	pause := time.Millisecond
	for {
		e.mu.Lock()
		ended := e.ended // closed when a run ends here after this read
		e.mu.Unlock()
		run, err := e.store.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if run.Workflow != w.name {
			return nil, fmt.Errorf("%w: run %s is a run of %q, not %q", ErrWrongWorkflow, id, run.Workflow, w.name)
		}
		if run.Status.Final() {
			return stoppedResult(w, run)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, context.Cause(ctx)
		case <-ended:
		case <-t.C:
			pause = min(2*pause, time.Second)
		}
		t.Stop()
	}
}

// Draining reports whether Shutdown was called: the engine takes no more
// runs. A readiness probe should say not ready.
func (e *Engine) Draining() bool { return e.draining.Load() }

// isClosed reports whether Close was called.
func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}
