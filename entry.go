package flux

import (
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Result is the outcome of a run, typed.
type Result[Data any] struct {
	ID       string
	Workflow string
	Status   Status
	Data     Data
	Steps    []StepState
	// Err is why the run did not complete, as returned by Execute.
	Err       error
	StartedAt time.Time
	Duration  time.Duration
}

// RunOption configures one start of a run.
type RunOption func(*runOptions)

type runOptions struct{ id string }

// RunID gives the run this ID instead of a random one, making the start
// idempotent: a second start with the same ID returns the existing run, or
// continues it if it was interrupted, and never runs a completed node again.
// Queue consumers pass the message's stable key.
func RunID(id string) RunOption { return func(o *runOptions) { o.id = id } }

// RetryOption configures RetryStep.
type RetryOption func(*retryOptions)

type retryOptions struct{ force bool }

// Force lets RetryStep replay commits that already completed.
func Force() RetryOption { return func(o *retryOptions) { o.force = true } }

// Execute runs workflow w with input in on engine e and returns when the
// run completed, failed, was cancelled or was interrupted. err is nil
// exactly when the run completed. res is non-nil whenever a run was created,
// so the caller always has its ID; a failed run's error is a *StepError
// wrapping the handler's error.
//
// The input must survive a JSON round trip: input that Validate refuses, or
// that does not encode, or whose encoding does not decode back into In, is
// refused with an error wrapping ErrInvalidInput and no run is stored.
//
// Cancelling ctx interrupts the run without failing it: it stays resumable
// by [Resume], a duplicate start, or recovery.
//
// A run started with [RunID] is stored before any node runs, so a second
// start with that ID, here or in another process, never executes it twice;
// a second start of a run that ended returns it as it ended, with its error.
// A run with a random ID is stored by its first checkpoint (one durable
// write fewer); until then [Engine.Get] does not find it, and a crash
// before it leaves nothing to recover.
func Execute[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], in In, opts ...RunOption) (*Result[Data], error) {
	if err := w.Err(); err != nil {
		return nil, err
	}
	var o runOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	input, err := w.encodeInput(in)
	if err != nil {
		return nil, err
	}
	if err := e.checkSize("input", input); err != nil {
		return nil, err
	}
	ckey, err := w.concurrencyKey(in)
	if err != nil {
		return nil, err
	}
	if err := w.registerWaits(e); err != nil {
		return nil, err
	}
	now := time.Now()
	id, explicit := o.id, o.id != ""
	if !explicit {
		id = newIDAt(now)
	}
	rctx, a, err := e.begin(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := CheckRunTransition(StatusPending, StatusRunning, TriggerExecute); err != nil {
		e.end(id, a, false)
		return nil, err
	}
	f := new(fresh[In, Data])
	run := &f.run
	*run = Run{
		ID: id, Workflow: w.name, Fingerprint: w.fingerprint(), Status: StatusRunning,
		Input: input, Data: w.zero, Steps: make([]StepState, len(w.nodes)),
		CreatedAt: now, UpdatedAt: now, Owner: e.owner, Summary: Summary{Nodes: len(w.nodes)},
		ConcurrencyKey: ckey,
	}
	// One backing array for every node's first attempt.
	attempts := make([]Attempt, len(w.nodes))
	for i, n := range w.nodes {
		run.Steps[i] = StepState{Name: n.name, Kind: n.kind, Status: StatusPending, Attempts: attempts[i : i : i+1]}
	}
	r := &f.r
	r.init(rctx, e, w, run, in, TriggerExecute)
	r.data = &f.data
	r.unstored, r.explicit = true, explicit
	if explicit {
		// The run is created by the write before its first node runs: its
		// start is told once that write landed.
		r.queueRun(EventWorkflowStart, nil)
	} else {
		// A random ID is stored by the run's first checkpoint; its start
		// is told now, before anything was written.
		r.runEvent(EventWorkflowStart, nil)
	}
	res, err := r.execute()
	if explicit && errors.Is(err, errExists) {
		// Started before, here or elsewhere: continue or return that run.
		return continueRun(rctx, e, w, a, id, TriggerExecute, startOptions{})
	}
	e.end(id, a, r.leased())
	return res, err
}

// Resume continues an interrupted, failed or cancelled run from where it
// stopped: completed and skipped nodes are kept, a failed node runs again
// (its earlier attempts stay in its record). A completed run is returned as
// it is.
func Resume[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], id string) (*Result[Data], error) {
	if err := w.Err(); err != nil {
		return nil, err
	}
	rctx, a, err := e.begin(ctx, id)
	if err != nil {
		return nil, err
	}
	return continueRun(rctx, e, w, a, id, TriggerResume, startOptions{})
}

// RetryStep replays run id from the node named step: it restores Data to
// the snapshot before that node and runs it and every node after it; their
// earlier attempts stay in their records, and attempt numbers go on from
// them. A completed commit at or after step makes it return ErrCommitted
// naming the commit, unless [Force] is given. A node before step that has
// not finished gives ErrStepNotReached.
func RetryStep[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], id, step string, opts ...RetryOption) (*Result[Data], error) {
	if err := w.Err(); err != nil {
		return nil, err
	}
	var o retryOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	from := w.index(step)
	if from < 0 {
		return nil, fmt.Errorf("%w: workflow %q has no step %q", ErrStepNotFound, w.name, step)
	}
	rctx, a, err := e.begin(ctx, id)
	if err != nil {
		return nil, err
	}
	return continueRun(rctx, e, w, a, id, TriggerRetryStep, startOptions{from: from, step: step, force: o.force})
}

// continueRun is every start of a stored run by a caller: it prepares the
// run, executes it if there is anything to do, and unregisters it.
func continueRun[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], a *activeRun, id string, trig Trigger, o startOptions) (*Result[Data], error) {
	if err := w.registerWaits(e); err != nil {
		e.end(id, a, false)
		return nil, err
	}
	r, res, err := prepare(ctx, e, w, id, trig, o)
	if r == nil {
		e.end(id, a, false)
		return res, err
	}
	res, err = r.execute()
	e.end(id, a, r.leased())
	return res, err
}

// encodeInput validates in and returns its JSON, refusing input that does
// not come back from it as In: what a recovered run would see.
func (w *Workflow[In, Data]) encodeInput(in In) (json.RawMessage, error) {
	if w.validate != nil {
		if err := safeCall(func() error { return w.validate(in) }); err != nil {
			return nil, fmt.Errorf("%w for workflow %q: %w", ErrInvalidInput, w.name, err)
		}
	}
	input, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("%w for workflow %q: cannot encode as JSON: %w", ErrInvalidInput, w.name, err)
	}
	if !w.checkInput {
		return input, nil
	}
	var back In
	if err := json.Unmarshal(input, &back); err != nil {
		return nil, fmt.Errorf("%w for workflow %q: its JSON %s does not decode back into %T, so the run could not be recovered: %w",
			ErrInvalidInput, w.name, abbreviate(input), back, err)
	}
	return input, nil
}

// mayNotRoundTrip reports whether the JSON of a value of type t might not
// decode back into t. encoding/json decodes its own encoding of booleans,
// numbers, strings, slices, arrays, maps, pointers, empty interfaces and
// structs of them; what else a type holds (its own MarshalJSON or
// MarshalText, a non-empty interface) may not, so Execute checks the input
// of such types by decoding it.
func mayNotRoundTrip(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	for _, m := range []reflect.Type{
		reflect.TypeFor[json.Marshaler](), reflect.TypeFor[json.Unmarshaler](),
		reflect.TypeFor[encoding.TextMarshaler](), reflect.TypeFor[encoding.TextUnmarshaler](),
	} {
		if t.Implements(m) || reflect.PointerTo(t).Implements(m) {
			return true
		}
	}
	switch t.Kind() {
	case reflect.Interface:
		return t.NumMethod() > 0
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return mayNotRoundTrip(t.Elem(), seen)
	case reflect.Map:
		return mayNotRoundTrip(t.Key(), seen) || mayNotRoundTrip(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() || f.Anonymous {
				if mayNotRoundTrip(f.Type, seen) {
					return true
				}
			}
		}
	case reflect.Chan, reflect.Func, reflect.Complex64, reflect.Complex128, reflect.UnsafePointer:
		return true
	}
	return false
}

// abbreviate returns b as text, cut to 100 bytes.
func abbreviate(b []byte) string {
	if len(b) > 100 {
		return string(b[:100]) + "…"
	}
	return string(b)
}

// stoppedResult is the result of a run that already stopped, with the error
// it stopped with: a *StepError for a run that failed in a node.
func stoppedResult[In, Data any](w *Workflow[In, Data], run *Run) (*Result[Data], error) {
	res := &Result[Data]{ID: run.ID, Workflow: run.Workflow, Status: run.Status, Steps: run.Steps, StartedAt: run.CreatedAt}
	if len(run.Data) > 0 {
		_ = json.Unmarshal(run.Data, &res.Data)
	}
	if !run.FinishedAt.IsZero() {
		res.Duration = run.FinishedAt.Sub(run.CreatedAt)
	}
	res.Err = stoppedError(run)
	return res, res.Err
}

// stoppedError rebuilds the error a stopped run ended with from its record.
func stoppedError(run *Run) error {
	switch run.Status {
	case StatusCompleted:
		return nil
	case StatusCancelled:
		return fmt.Errorf("flux: run %s: %w", run.ID, ErrCancelled)
	}
	for i, s := range run.Steps {
		if s.Status == StatusFailed && len(s.Attempts) > 0 {
			a := s.Attempts[len(s.Attempts)-1]
			return &StepError{RunID: run.ID, Workflow: run.Workflow, Step: s.Name, Index: i, Attempt: a.Number,
				Err: &recordedError{a.Error}}
		}
	}
	msg := run.Error
	if msg == "" {
		msg = fmt.Sprintf("flux: run %s of %q is %s", run.ID, run.Workflow, run.Status)
	}
	return &recordedError{msg}
}

// recordedError is an error read back from a run's record. errors.Is
// matches the Flux sentinels whose text it contains, so a run read back
// from storage is tested as the one that just failed.
type recordedError struct{ msg string }

func (e *recordedError) Error() string { return e.msg }

func (e *recordedError) Is(target error) bool {
	for _, s := range recordedSentinels {
		if target == s {
			return strings.Contains(e.msg, s.Error())
		}
	}
	return false
}

var recordedSentinels = []error{
	ErrTimeout, ErrCancelled, ErrCommitOutcomeUnknown, ErrDefinitionChanged, ErrCorrupt,
	ErrPayloadTooLarge, ErrInvalidInput, ErrClosed,
}

// registerWaits registers a workflow that has sleeps or waits with the
// engine that executes it, so that the engine wakes its runs.
func (w *Workflow[In, Data]) registerWaits(e *Engine) error {
	if !w.waits || e.slots <= 0 {
		return nil
	}
	e.mu.Lock()
	_, ok := e.registry[w.name]
	e.mu.Unlock()
	if ok {
		return nil
	}
	return e.Register(w)
}
