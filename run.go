package flux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
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
// run completed, failed, was cancelled or was interrupted. err is nil exactly when the run completed. res is non-nil
// whenever a run was created, so the caller always has its ID; a failed
// run's error is a *StepError wrapping the handler's error.
//
// Cancelling ctx interrupts the run without failing it: it stays resumable
// by [Resume], a duplicate start, or recovery.
//
// A run started with [RunID] is stored before any node runs, so a second
// start with that ID, here or in another process, never executes it twice.
// A run with a random ID is stored by its first checkpoint (one durable
// write fewer); until then [Engine.Get] does not find it, and a crash
// before it leaves nothing to recover.
func Execute[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], in In, opts ...RunOption) (*Result[Data], error) {
	if err := w.Err(); err != nil {
		return nil, err
	}
	var id string
	if len(opts) > 0 {
		var o runOptions
		for _, opt := range opts {
			opt(&o)
		}
		id = o.id
	}
	if w.validate != nil {
		if err := safeCall(func() error { return w.validate(in) }); err != nil {
			return nil, fmt.Errorf("%w for workflow %q: %w", ErrInvalidInput, w.name, err)
		}
	}
	input, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("%w for workflow %q: cannot encode as JSON: %w", ErrInvalidInput, w.name, err)
	}
	if err := e.checkSize("input", input); err != nil {
		return nil, err
	}
	data := new(Data)
	snap := w.zero
	explicit := id != ""
	if !explicit {
		id = newID()
	}
	now := time.Now()
	run := &Run{
		ID: id, Workflow: w.name, Fingerprint: w.fingerprint(), Status: StatusPending,
		Input: input, Data: snap, Steps: make([]StepState, len(w.nodes)),
		CreatedAt: now, UpdatedAt: now, Owner: e.id,
	}
	// One backing array for every node's first attempt.
	attempts := make([]Attempt, len(w.nodes))
	for i, n := range w.nodes {
		run.Steps[i] = StepState{Name: n.name, Kind: n.kind, Status: StatusPending, Attempts: attempts[i : i : i+1]}
	}
	rctx, a, err := e.begin(ctx, id)
	if err != nil {
		return nil, err
	}
	defer e.end(id, a)
	if err := CheckRunTransition(run.Status, StatusRunning, TriggerExecute); err != nil {
		return nil, err
	}
	run.Status = StatusRunning
	r := &runner[In, Data]{e: e, w: w, run: run, in: in, ctx: rctx, data: data, snap: snap, trig: TriggerExecute, cur: -1}
	if explicit {
		// A chosen ID may be started twice (a redelivered message, two
		// workers): the run is stored before any node runs, so only one
		// start executes it.
		err = e.store.Create(ctx, run, e.lease)
		if errors.Is(err, ErrRunExists) {
			return continueExisting(rctx, e, w, id)
		}
		if err != nil {
			return nil, fmt.Errorf("flux: storing new run of %q: %w", w.name, err)
		}
		e.holdsLease(id)
	} else {
		// Nobody else knows a random ID: the run is stored by its first
		// checkpoint, one durable write fewer. A run that dies before it
		// has no record and nothing to recover.
		r.unstored = true
	}
	r.info = runInfo{id: id, workflow: w.name, logger: e.log}
	r.runEvent(EventWorkflowStart, nil)
	return r.execute()
}

// continueExisting handles a start whose run ID exists: it returns the run
// if it stopped, and otherwise claims and continues it.
func continueExisting[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], id string) (*Result[Data], error) {
	run, err := e.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if run.Workflow != w.name {
		return nil, fmt.Errorf("%w: run ID %s belongs to workflow %q, not %q", ErrRunExists, id, run.Workflow, w.name)
	}
	if run.Status.Final() {
		return stoppedResult(w, run)
	}
	return claimAndRun(ctx, e, w, run, TriggerExecute)
}

// Resume continues an interrupted, failed or cancelled run from where it
// stopped: completed and skipped nodes are kept, a failed node runs again.
// A completed run is returned as it is.
func Resume[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], id string) (*Result[Data], error) {
	if err := w.Err(); err != nil {
		return nil, err
	}
	run, err := e.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if run.Workflow != w.name {
		return nil, fmt.Errorf("%w: run %s is of workflow %q, not %q", ErrRunNotFound, id, run.Workflow, w.name)
	}
	if run.Status == StatusCompleted {
		return stoppedResult(w, run)
	}
	rctx, a, err := e.begin(ctx, id)
	if err != nil {
		return nil, err
	}
	defer e.end(id, a)
	return claimAndRun(rctx, e, w, run, TriggerResume)
}

// RetryStep replays run id from the node named step: it restores Data to
// the snapshot before that node and runs it and every node after it. A
// completed commit at or after step makes it return ErrCommitted naming the
// commit, unless [Force] is given.
func RetryStep[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], id, step string, opts ...RetryOption) (*Result[Data], error) {
	if err := w.Err(); err != nil {
		return nil, err
	}
	var o retryOptions
	for _, opt := range opts {
		opt(&o)
	}
	from := w.index(step)
	if from < 0 {
		return nil, fmt.Errorf("%w: workflow %q has no step %q", ErrStepNotFound, w.name, step)
	}
	run, err := e.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if run.Workflow != w.name {
		return nil, fmt.Errorf("%w: run %s is of workflow %q, not %q", ErrRunNotFound, id, run.Workflow, w.name)
	}
	rctx, a, err := e.begin(ctx, id)
	if err != nil {
		return nil, err
	}
	defer e.end(id, a)
	if !o.force {
		for i := from; i < len(run.Steps); i++ {
			if s := run.Steps[i]; s.Kind == KindCommit && s.Status == StatusCompleted {
				return nil, fmt.Errorf("%w: RetryStep(%q) would run commit %q of run %s again; pass flux.Force() to allow it",
					ErrCommitted, step, s.Name, id)
			}
		}
	}
	for i := range from {
		if i >= len(run.Steps) || !run.Steps[i].Status.Done() {
			return nil, fmt.Errorf("flux: RetryStep(%q): run %s has not finished node %q before it, so there is no data to start from; Resume the run or RetryStep an earlier node",
				step, id, w.nodes[i].name)
		}
	}
	if run, err = e.store.Claim(ctx, ClaimParams{ID: id, Owner: e.id, Lease: e.lease}); err != nil {
		return nil, err
	}
	for i := from; i < len(run.Steps); i++ {
		if s := run.Steps[i]; s.Status != StatusPending {
			if err := CheckNodeTransition(s.Status, StatusPending, TriggerRetryStep); err != nil {
				return nil, err
			}
		}
	}
	if err := reconcile(w, run, from); err != nil {
		return nil, err
	}
	if from > 0 {
		run.Data = run.Steps[from-1].Data
	} else {
		run.Data = w.zero
	}
	return startClaimed(rctx, e, w, run, TriggerRetryStep)
}

// claimAndRun takes the lease of a stored run and continues it.
func claimAndRun[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], run *Run, trig Trigger) (*Result[Data], error) {
	if err := reconcile(w, run.Clone(), len(run.Steps)); err != nil {
		return nil, err
	}
	claimed, err := e.store.Claim(ctx, ClaimParams{ID: run.ID, Owner: e.id, Lease: e.lease})
	if err != nil {
		return nil, err
	}
	if claimed.Status == StatusCompleted || (trig == TriggerExecute && claimed.Status.Final()) {
		// Its owner finished it between the read and the claim: give the
		// lease back and return the run as it stopped.
		if err := e.store.Update(context.WithoutCancel(ctx), claimed.Clone(), ReleaseLease); err != nil {
			e.log.Warn("flux: releasing the lease of a finished run failed", "run_id", run.ID, "error", err)
		}
		return stoppedResult(w, claimed)
	}
	if err := reconcile(w, claimed, len(claimed.Steps)); err != nil {
		return nil, err
	}
	if trig == TriggerResume {
		for i := range claimed.Steps {
			if s := &claimed.Steps[i]; s.Status == StatusFailed {
				if err := CheckNodeTransition(s.Status, StatusPending, trig); err != nil {
					return nil, err
				}
				s.Status = StatusPending
			}
		}
	}
	return startClaimed(ctx, e, w, claimed, trig)
}

// recoverRun continues a run that the recovery loop claimed.
func (w *Workflow[In, Data]) recoverRun(ctx context.Context, e *Engine, run *Run) error {
	rctx, a, err := e.begin(ctx, run.ID)
	if err != nil {
		return err
	}
	defer e.end(run.ID, a)
	if err := reconcile(w, run, len(run.Steps)); err != nil {
		// It cannot go on with this definition. Failing it, rather than
		// claiming it again every lease, shows it to a person, who can
		// Resume it with a definition that fits.
		return e.failUnrecoverable(rctx, run, err)
	}
	res, err := startClaimed(rctx, e, w, run, TriggerExecute)
	if res == nil && errors.Is(err, ErrCorrupt) { // its input does not decode
		return e.failUnrecoverable(rctx, run, err)
	}
	return err
}

// failUnrecoverable marks a claimed run that recovery cannot continue as
// failed with cause, and releases its lease.
func (e *Engine) failUnrecoverable(ctx context.Context, run *Run, cause error) error {
	if err := CheckRunTransition(run.Status, StatusFailed, TriggerExecute); err != nil {
		return errors.Join(cause, err)
	}
	run.Status, run.Error = StatusFailed, "recovery: "+cause.Error()
	run.UpdatedAt = time.Now()
	run.FinishedAt = run.UpdatedAt
	if err := e.store.Update(context.WithoutCancel(ctx), run, ReleaseLease); err != nil {
		return errors.Join(cause, err)
	}
	e.emitRun(ctx, run, EventWorkflowError, cause)
	return cause
}

// startClaimed executes a run whose lease this engine holds.
func startClaimed[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], run *Run, trig Trigger) (*Result[Data], error) {
	var in In
	if err := json.Unmarshal(run.Input, &in); err != nil {
		return nil, fmt.Errorf("%w: run %s: input does not decode as %T: %w", ErrCorrupt, run.ID, in, err)
	}
	e.holdsLease(run.ID)
	r := &runner[In, Data]{e: e, w: w, run: run, in: in, ctx: ctx, snap: run.Data, trig: trig, cur: -1}
	r.info = runInfo{id: run.ID, workflow: w.name, logger: e.log}
	if run.Status != StatusRunning {
		if err := CheckRunTransition(run.Status, StatusRunning, trig); err != nil {
			return nil, err
		}
		run.Status, run.Error, run.FinishedAt = StatusRunning, "", time.Time{}
		if err := r.persist(); err != nil {
			return r.result(), err
		}
	}
	r.runEvent(EventWorkflowStart, nil)
	return r.execute()
}

// reconcile fits run.Steps to the definition w, keeping the state of the
// first keep nodes. The nodes among them that already started must be, in
// order, an unchanged prefix of w; the others are rebuilt from w as pending.
func reconcile[In, Data any](w *Workflow[In, Data], run *Run, keep int) error {
	keep = min(keep, len(run.Steps))
	last := -1
	for i := range keep {
		if run.Steps[i].Status != StatusPending {
			last = i
		}
	}
	for i := 0; i <= last; i++ {
		s := run.Steps[i]
		if i >= len(w.nodes) {
			return fmt.Errorf("%w: run %s started %d nodes but workflow %q now has %d; %s %q is gone",
				ErrDefinitionChanged, run.ID, last+1, w.name, len(w.nodes), s.Kind, s.Name)
		}
		if n := w.nodes[i]; n.name != s.Name || n.kind != s.Kind {
			return fmt.Errorf("%w: node %d of run %s was %s %q, the definition now has %s %q there",
				ErrDefinitionChanged, i, run.ID, s.Kind, s.Name, n.kind, n.name)
		}
	}
	if keep == len(run.Steps) && run.Fingerprint == w.fingerprint() {
		return nil
	}
	steps := make([]StepState, len(w.nodes))
	copy(steps, run.Steps[:last+1])
	for i := last + 1; i < len(w.nodes); i++ {
		steps[i] = StepState{Name: w.nodes[i].name, Kind: w.nodes[i].kind, Status: StatusPending}
	}
	run.Steps, run.Fingerprint = steps, w.fingerprint()
	return nil
}

// stoppedResult is the result of a run that already stopped.
func stoppedResult[In, Data any](w *Workflow[In, Data], run *Run) (*Result[Data], error) {
	r := &runner[In, Data]{w: w, run: run, snap: run.Data}
	res := r.result()
	if run.Status == StatusCompleted {
		return res, nil
	}
	res.Err = fmt.Errorf("flux: run %s of %q is %s: %s", run.ID, run.Workflow, run.Status, run.Error)
	return res, res.Err
}

// runner executes one run of a typed workflow.
type runner[In, Data any] struct {
	e    *Engine
	w    *Workflow[In, Data]
	run  *Run
	in   In
	ctx  context.Context
	info runInfo
	trig Trigger
	// data is the live value after the last finished node, or nil when it
	// must be decoded from snap (after a failed attempt, or on resume).
	data *Data
	snap json.RawMessage
	// The worker/watchdog hand-off; see execute.
	out        chan struct{} // signalled when the run stops; r.err is its error
	err        error
	token      atomic.Uint64 // odd while an attempt is in flight
	deadline   atomic.Int64  // of the attempt in flight, unix ns
	timer      *time.Timer
	cur, base  int // node in progress, and its attempts before this execution
	curAttempt int
	curStart   time.Time
	curTimeout time.Duration
	curCtx     *attemptContext
	wctx       context.Context // r.ctx without its cancellation, for writes
	ctxs       []Ctx[In, Data] // of first attempts, one per node
	stamp      time.Time       // of the transition the next write records
	res        Result[Data]
	// unstored is set until the run's first write creates it.
	unstored bool
	// deferred is a StepComplete waiting for the next write.
	deferred deferredEvent
	// release makes the next write give up the lease: the run was
	// interrupted and stays resumable by anyone.
	release bool
}

// node executes node i until it completes, is skipped, or fails.
func (r *runner[In, Data]) node(i int) error {
	n, st := r.w.nodes[i], &r.run.Steps[i]
	last := i == len(r.w.nodes)-1
	if r.cur != i { // first entry into this node in this execution
		if st.Status == StatusPending && n.when != nil {
			run, err := r.when(n, i)
			if err != nil {
				return r.failNode(i, n, 1, time.Now(), err)
			}
			if !run {
				return r.skip(i, last)
			}
		}
		if st.Status == StatusRunning && n.kind == KindCommit && n.opts.atMostOnce {
			err := fmt.Errorf("%w: commit %q of run %s started but was interrupted; it is AtMostOnce, so it is not run again: check its effect, then RetryStep it with flux.Force() or leave the run failed",
				ErrCommitOutcomeUnknown, n.name, r.run.ID)
			return r.failNode(i, n, len(st.Attempts)+1, time.Now(), Permanent(err))
		}
		r.cur, r.base = i, len(st.Attempts)
	}
	var start time.Time // of the next attempt, when already known
	if st.Status == StatusPending {
		if err := CheckNodeTransition(st.Status, StatusRunning, r.trig); err != nil {
			return err
		}
		now := time.Now()
		st.Status, st.StartedAt = StatusRunning, now
		if n.kind == KindCommit {
			// The fence: everything before the commit is durable already;
			// make its start durable before its side effect can happen.
			r.stamp = now
			if err := r.persist(); err != nil {
				return err
			}
		} else {
			start = now
		}
	}
	for {
		attempt := len(st.Attempts) + 1
		if start.IsZero() {
			start = time.Now()
		}
		r.stepEvent(EventStepStart, i, attempt, 0, 0, nil)
		err := r.attempt(n, attempt, start)
		if err == nil {
			return r.complete(i, attempt, start, last)
		}
		if stop, err := r.failed(i, attempt, start, err); stop {
			return err
		}
		start = time.Time{}
	}
}

// failed handles failed attempt number attempt of node i. It returns true
// and the node's error if no attempt follows; otherwise it records the
// attempt and waits out the backoff.
func (r *runner[In, Data]) failed(i, attempt int, start time.Time, err error) (bool, error) {
	n, st := r.w.nodes[i], &r.run.Steps[i]
	if cause := context.Cause(r.ctx); cause != nil {
		var ns *notStarted
		if errors.As(err, &ns) && len(st.Attempts) == 0 {
			// The run stopped before the handler's first call: nothing
			// can have happened, so even a commit is simply not started.
			attempt = 0
			if n.kind == KindCommit {
				if err := CheckNodeTransition(st.Status, StatusPending, r.trig); err != nil {
					return true, err
				}
				st.Status = StatusPending
			}
		}
		return true, r.interrupt(i, n, attempt, start, cause)
	}
	if n.opts.atMostOnce && errors.Is(err, ErrTimeout) {
		err = Permanent(fmt.Errorf("%w: AtMostOnce commit %q timed out, so whether it took effect is unknown: %w",
			ErrCommitOutcomeUnknown, n.name, err))
	}
	opts := r.e.resolve(&n.opts)
	k := attempt - r.base - 1 // retries so far in this execution
	if IsPermanent(err) || k >= opts.retries {
		return true, r.failNode(i, n, attempt, start, err)
	}
	delay := opts.backoff.delay(k)
	d := time.Since(start)
	st.Attempts = append(st.Attempts, Attempt{Number: attempt, StartedAt: start, Duration: d, Error: err.Error(), Stack: stackOf(err)})
	r.stepEvent(EventStepRetry, i, attempt, d, delay, err)
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			return true, r.interrupt(i, n, 0, start, context.Cause(r.ctx))
		}
	}
	return false, nil
}

// execute runs the run's nodes on a worker goroutine and waits for it.
//
// Handlers run inline on the worker. A handler that outlives its attempt
// (timeout, Cancel, shutdown) is abandoned: a watchdog claims the attempt
// and continues the run on its own goroutine, and the stuck worker exits
// when its handler returns, without touching the run. Attempts are claimed
// by compare-and-swap on r.token, so exactly one side goes on.
func (r *runner[In, Data]) execute() (*Result[Data], error) {
	r.out = make(chan struct{}, 1)
	go func() { r.err = r.exec(); r.out <- struct{}{} }()
	select {
	case <-r.out:
	case <-r.ctx.Done():
		r.onCancel()
		<-r.out
	}
	if r.timer != nil {
		r.timer.Stop()
	}
	return r.result(), r.err
}

func (r *runner[In, Data]) exec() error {
	for i := range r.w.nodes {
		if r.run.Steps[i].Status.Done() {
			continue
		}
		if err := r.node(i); err != nil {
			return err
		}
	}
	if r.run.Status == StatusRunning { // no node left to finish it
		return r.finishRun(StatusCompleted, nil)
	}
	return nil
}

// attempt runs one attempt of node n on its own copy of the data. It leaves
// r.data nil unless the attempt succeeded. If a watchdog abandons the
// attempt, the calling goroutine exits when the handler returns.
func (r *runner[In, Data]) attempt(n *node[In, Data], attempt int, start time.Time) error {
	data := r.data
	r.data = nil
	if data == nil {
		data = new(Data)
		if err := json.Unmarshal(r.snap, data); err != nil {
			return Permanent(fmt.Errorf("%w: run %s: data snapshot does not decode as %T: %w", ErrCorrupt, r.run.ID, data, err))
		}
	}
	timeout := r.e.resolve(&n.opts).timeout
	var c *Ctx[In, Data]
	if attempt == r.base+1 {
		// First attempts use one array per run: fewer allocations. Each
		// element serves one attempt only, as a handler may keep its Ctx.
		if r.ctxs == nil {
			r.ctxs = make([]Ctx[In, Data], len(r.w.nodes))
		}
		c = &r.ctxs[r.cur]
	} else {
		c = new(Ctx[In, Data])
	}
	*c = Ctx[In, Data]{Input: r.in, Data: data, run: &r.info, step: n.name, attempt: attempt}
	c.ac.parent = r.ctx
	r.curAttempt, r.curStart, r.curCtx, r.curTimeout = attempt, start, &c.ac, timeout
	if timeout > 0 {
		c.ac.deadline = start.Add(timeout)
		r.deadline.Store(c.ac.deadline.UnixNano())
	} else {
		// A late firing of an earlier attempt's timer must not end this one.
		r.deadline.Store(math.MaxInt64)
	}
	if timeout > 0 && r.timer == nil {
		// Made idle before the attempt is marked in flight, so that a
		// watchdog that takes the run over sees it (no data race on r.timer).
		r.timer = time.AfterFunc(time.Duration(math.MaxInt64), r.onDeadline)
	}
	g := r.token.Add(1) // odd: an attempt is in flight
	if timeout > 0 {
		// One timer per run, reset for each attempt: much cheaper than
		// context.WithTimeout.
		r.timer.Reset(timeout)
	}
	var err error
	if r.ctx.Err() == nil { // else onCancel may have looked before g was set
		err = callHandler(n.fn, c)
	} else {
		err = &notStarted{context.Cause(r.ctx)}
	}
	if !r.token.CompareAndSwap(g, g+1) {
		runtime.Goexit() // a watchdog took the attempt over
	}
	if r.timer != nil {
		r.timer.Stop()
	}
	c.ac.end(context.Canceled)
	if err != nil && timeout > 0 && errors.Is(err, context.DeadlineExceeded) && !time.Now().Before(c.ac.deadline) {
		// The handler returned its context's error at the deadline, just
		// before the watchdog would have said the same.
		err = fmt.Errorf("%w after %s: %w", ErrTimeout, timeout, err)
	}
	if err == nil {
		r.data = data
	}
	return err
}

// notStarted is the error of an attempt whose handler was not called
// because the run had already stopped.
type notStarted struct{ cause error }

func (e *notStarted) Error() string { return "not started: " + e.cause.Error() }
func (e *notStarted) Unwrap() error { return e.cause }

func callHandler[In, Data any](fn Handler[In, Data], c *Ctx[In, Data]) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	return fn(c)
}

// onDeadline is the watchdog of attempt timeouts.
func (r *runner[In, Data]) onDeadline() {
	g := r.token.Load()
	if g%2 == 0 || time.Now().UnixNano() < r.deadline.Load() {
		return // nothing in flight, or a late firing for an earlier attempt
	}
	if r.token.CompareAndSwap(g, g+1) {
		r.curCtx.end(ErrTimeout)
		r.takeOver(fmt.Errorf("%w after %s", ErrTimeout, r.curTimeout))
	}
}

// onCancel is the watchdog of the run's context: Cancel, shutdown, or the
// caller giving up.
func (r *runner[In, Data]) onCancel() {
	g := r.token.Load()
	if g%2 == 1 && r.token.CompareAndSwap(g, g+1) {
		cause := context.Cause(r.ctx)
		r.curCtx.end(cause)
		r.takeOver(cause)
	}
}

// takeOver continues the run after abandoning its current attempt.
func (r *runner[In, Data]) takeOver(err error) {
	r.data = nil // the abandoned handler keeps its copy
	stop, ferr := r.failed(r.cur, r.curAttempt, r.curStart, err)
	if !stop {
		ferr = r.exec()
	}
	r.err = ferr
	r.out <- struct{}{}
}

// when evaluates n's predicate on the data so far.
func (r *runner[In, Data]) when(n *node[In, Data], i int) (bool, error) {
	if r.data == nil {
		r.data = new(Data)
		if err := json.Unmarshal(r.snap, r.data); err != nil {
			r.data = nil
			return false, Permanent(fmt.Errorf("%w: run %s: data snapshot does not decode: %w", ErrCorrupt, r.run.ID, err))
		}
	}
	c := &Ctx[In, Data]{Input: r.in, Data: r.data, run: &r.info, step: n.name}
	c.ac.parent = r.ctx
	var ok bool
	err := safeCall(func() error { ok = n.when(c); return nil })
	if err != nil {
		r.data = nil
		return false, Permanent(fmt.Errorf("When predicate of %q: %w", n.name, err))
	}
	return ok, nil
}

// complete records node i's success with the new data snapshot, durably,
// then tells hooks and sinks. The last node completes the run in the same
// write.
func (r *runner[In, Data]) complete(i, attempt int, start time.Time, last bool) error {
	st, n := &r.run.Steps[i], r.w.nodes[i]
	snap, err := json.Marshal(r.data)
	if err == nil {
		err = r.e.checkSize("data", snap)
	}
	if err != nil {
		r.data = nil
		return r.failNode(i, n, attempt, start, Permanent(fmt.Errorf("encoding data after %q: %w", n.name, err)))
	}
	if err := CheckNodeTransition(st.Status, StatusCompleted, r.trig); err != nil {
		return err
	}
	now := time.Now()
	r.stamp = now
	st.Attempts = append(st.Attempts, Attempt{Number: attempt, StartedAt: start, Duration: now.Sub(start)})
	st.Status, st.FinishedAt, st.Data = StatusCompleted, now, snap
	r.snap, r.run.Data = snap, snap
	if last {
		if err := r.setRunStatus(StatusCompleted, nil); err != nil {
			return err
		}
	}
	if n.kind == KindStep && !last {
		if next := r.w.nodes[i+1]; next.kind == KindCommit && next.when == nil && r.run.Steps[i+1].Status == StatusPending {
			// The commit that follows writes its fence at once; this step's
			// checkpoint rides in that same write, and its StepComplete
			// fires right after it.
			r.deferred = deferredEvent{i: i, attempt: attempt, d: now.Sub(start), set: true}
			return nil
		}
	}
	if err := r.persist(); err != nil {
		return err
	}
	r.stepEvent(EventStepComplete, i, attempt, now.Sub(start), 0, nil)
	if last {
		r.runEvent(EventWorkflowComplete, nil)
	}
	return nil
}

// deferredEvent is a step's StepComplete held until its checkpoint is
// written.
type deferredEvent struct {
	i, attempt int
	d          time.Duration
	set        bool
}

func (r *runner[In, Data]) skip(i int, last bool) error {
	st := &r.run.Steps[i]
	if err := CheckNodeTransition(st.Status, StatusSkipped, r.trig); err != nil {
		return err
	}
	r.stamp = time.Now()
	st.Status, st.FinishedAt, st.Data = StatusSkipped, r.stamp, r.snap
	if last {
		if err := r.setRunStatus(StatusCompleted, nil); err != nil {
			return err
		}
	}
	if err := r.persist(); err != nil {
		return err
	}
	r.stepEvent(EventStepSkipped, i, 0, 0, 0, nil)
	if last {
		r.runEvent(EventWorkflowComplete, nil)
	}
	return nil
}

// failNode records node i's last failed attempt and fails the run.
func (r *runner[In, Data]) failNode(i int, n *node[In, Data], attempt int, start time.Time, cause error) error {
	st := &r.run.Steps[i]
	if st.Status == StatusPending {
		if err := CheckNodeTransition(st.Status, StatusRunning, r.trig); err != nil {
			return err
		}
		st.Status, st.StartedAt = StatusRunning, start
	}
	if err := CheckNodeTransition(st.Status, StatusFailed, r.trig); err != nil {
		return err
	}
	d := time.Since(start)
	st.Attempts = append(st.Attempts, Attempt{Number: attempt, StartedAt: start, Duration: d, Error: cause.Error(), Stack: stackOf(cause)})
	st.Status, st.FinishedAt = StatusFailed, time.Now()
	serr := &StepError{RunID: r.run.ID, Workflow: r.w.name, Step: n.name, Index: i, Attempt: attempt, Err: cause}
	if err := r.setRunStatus(StatusFailed, serr); err != nil {
		return err
	}
	if err := r.persist(); err != nil {
		return err
	}
	r.stepEvent(EventStepError, i, attempt, d, 0, cause)
	r.runEvent(EventWorkflowError, serr)
	return serr
}

// interrupt handles a run whose context ended during node i: by Cancel (the
// run is cancelled), or by shutdown or the caller (the run stays running,
// resumable, and its lease is released). An interrupted step goes back to
// pending; an interrupted commit stays running, "started", for recovery.
func (r *runner[In, Data]) interrupt(i int, n *node[In, Data], attempt int, start time.Time, cause error) error {
	if errors.Is(cause, ErrLeaseLost) {
		r.runEvent(EventWorkflowInterrupted, cause)
		return fmt.Errorf("flux: run %s stopped: %w", r.run.ID, cause)
	}
	st := &r.run.Steps[i]
	if attempt > 0 {
		st.Attempts = append(st.Attempts, Attempt{Number: attempt, StartedAt: start, Duration: time.Since(start), Error: "interrupted: " + cause.Error()})
	}
	if n.kind == KindStep {
		if err := CheckNodeTransition(st.Status, StatusPending, r.trig); err != nil {
			return err
		}
		st.Status = StatusPending
	}
	// The caller's context is done; the record must still be written.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 10*time.Second)
	defer cancel()
	if errors.Is(cause, ErrCancelled) {
		if err := r.setRunStatus(StatusCancelled, ErrCancelled); err != nil {
			return err
		}
		if err := r.persistCtx(ctx); err != nil {
			return err
		}
		r.runEvent(EventWorkflowCancelled, ErrCancelled)
		return fmt.Errorf("flux: run %s: %w", r.run.ID, ErrCancelled)
	}
	r.release = true
	if err := r.persistCtx(ctx); err != nil {
		return err
	}
	r.runEvent(EventWorkflowInterrupted, cause)
	return fmt.Errorf("flux: run %s interrupted at %q, resumable: %w", r.run.ID, n.name, cause)
}

// finishRun completes a run with no node left to run.
func (r *runner[In, Data]) finishRun(to Status, cause error) error {
	if err := r.setRunStatus(to, cause); err != nil {
		return err
	}
	if err := r.persist(); err != nil {
		return err
	}
	r.runEvent(EventWorkflowComplete, nil)
	return nil
}

func (r *runner[In, Data]) setRunStatus(to Status, cause error) error {
	if err := CheckRunTransition(r.run.Status, to, r.trig); err != nil {
		return err
	}
	r.run.Status = to
	if cause != nil {
		r.run.Error = cause.Error()
	}
	if to.Final() {
		r.run.FinishedAt = r.now()
	}
	return nil
}

// now returns the time of the transition being recorded, or the clock's.
// Reading the clock costs more than most of a step here.
func (r *runner[In, Data]) now() time.Time {
	if !r.stamp.IsZero() {
		return r.stamp
	}
	return time.Now()
}

// persist records the run. The write is not cancelled with the run: the
// state it records must not be lost to a Cancel or a caller giving up.
func (r *runner[In, Data]) persist() error {
	if r.wctx == nil {
		r.wctx = context.WithoutCancel(r.ctx)
	}
	return r.persistCtx(r.wctx)
}

// persistCtx writes the run with ctx, which callers make uncancellable: a
// recorded state must not be lost to a Cancel or a caller giving up.
func (r *runner[In, Data]) persistCtx(ctx context.Context) error {
	r.run.UpdatedAt = r.now()
	r.stamp = time.Time{}
	lease := r.e.lease
	if r.run.Status.Final() || r.release {
		lease = ReleaseLease
	}
	if r.unstored {
		return r.create(ctx, lease)
	}
	err := r.e.store.Update(ctx, r.run, lease)
	if errors.Is(err, ErrConflict) {
		if cur, gerr := r.e.store.Get(ctx, r.run.ID); gerr == nil {
			if cur.Status == StatusCancelled {
				return fmt.Errorf("flux: run %s was cancelled elsewhere: %w", r.run.ID, ErrCancelled)
			}
			if cur.Owner != r.e.id {
				// Another owner took the run over (and may have finished it
				// and released it): this one is a zombie and must stop.
				return fmt.Errorf("flux: recording run %s: %w: %w", r.run.ID, ErrLeaseLost, err)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("flux: recording run %s: %w", r.run.ID, err)
	}
	r.flushDeferred()
	return nil
}

// create is the run's first write.
func (r *runner[In, Data]) create(ctx context.Context, lease time.Duration) error {
	if lease < 0 {
		r.run.Owner = ""
	}
	err := r.e.store.Create(ctx, r.run, lease)
	if errors.Is(err, ErrRunExists) {
		return fmt.Errorf("%w: run %s was started elsewhere at the same time: %w", ErrRunActive, r.run.ID, err)
	}
	if err != nil {
		return fmt.Errorf("flux: storing new run %s of %q: %w", r.run.ID, r.w.name, err)
	}
	r.unstored = false
	if r.run.Owner != "" {
		r.e.holdsLease(r.run.ID)
	}
	r.flushDeferred()
	return nil
}

// flushDeferred fires a StepComplete held for the write that just landed.
func (r *runner[In, Data]) flushDeferred() {
	if ev := r.deferred; ev.set {
		r.deferred = deferredEvent{}
		r.stepEvent(EventStepComplete, ev.i, ev.attempt, ev.d, 0, nil)
	}
}

func (r *runner[In, Data]) result() *Result[Data] {
	res := &r.res
	*res = Result[Data]{
		ID: r.run.ID, Workflow: r.run.Workflow, Status: r.run.Status, Steps: r.run.Steps,
		StartedAt: r.run.CreatedAt,
	}
	if r.data != nil {
		res.Data = *r.data
	} else if len(r.snap) > 0 {
		_ = json.Unmarshal(r.snap, &res.Data)
	}
	if !r.run.FinishedAt.IsZero() {
		res.Duration = r.run.FinishedAt.Sub(r.run.CreatedAt)
	} else {
		res.Duration = time.Since(r.run.CreatedAt)
	}
	return res
}

// resolved are a node's options with the engine's defaults filled in.
type resolved struct {
	retries int
	timeout time.Duration
	backoff backoff
}

func (e *Engine) resolve(o *stepOptions) resolved {
	r := resolved{*e.defaults.retries, *e.defaults.timeout, *e.defaults.backoff}
	if o.retries != nil {
		r.retries = *o.retries
	}
	if o.timeout != nil {
		r.timeout = *o.timeout
	}
	if o.backoff != nil {
		r.backoff = *o.backoff
	}
	return r
}

func (e *Engine) checkSize(what string, b []byte) error {
	if e.maxBytes > 0 && len(b) > e.maxBytes {
		return fmt.Errorf("%w: %s is %d bytes, over the limit of %d (Config.MaxPayloadBytes)", ErrPayloadTooLarge, what, len(b), e.maxBytes)
	}
	return nil
}

// delay returns the backoff before retry k+1 (k from 0): base·2^k capped at
// max, drawn from its upper half.
func (b *backoff) delay(k int) time.Duration {
	if b.base <= 0 {
		return 0
	}
	d := b.base << min(k, 32)
	if d > b.max || d <= 0 {
		d = b.max
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// safeCall runs fn, turning a panic into a *PanicError.
func safeCall(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	return fn()
}
