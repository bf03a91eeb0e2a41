package flux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/flux-go/flux/driver"
)

// runner executes one run of a typed workflow. It lives on the goroutine of
// the entry point that started the run (Execute, Resume, RetryStep, or a
// recovery goroutine), and that goroutine alone owns the run's state from
// start to end. Handlers run on a worker goroutine and report back on a
// channel (attempt.go); every change of state goes through checkpoint.go,
// which checks it against the state machine, records it, and writes it.
type runner[In, Data any] struct {
	e    *Engine
	w    *Workflow[In, Data]
	run  *Run
	in   In
	ctx  context.Context // the run's: ends on Cancel, Close, a lost lease, or the caller giving up
	wctx context.Context // ctx without its end, for writes: a recorded state must not be lost to it
	info runInfo
	trig Trigger
	// data is the live value after the last finished node, or nil when it
	// must be decoded from snap (after a failed attempt, or on resume).
	data *Data
	snap json.RawMessage
	base int // attempts of the current node before this execution

	// Writing (checkpoint.go).
	unstored bool  // not created yet: the run's first write creates it
	explicit bool  // its ID was given: it is created before any node runs
	holding  bool  // the store has the run leased to this engine
	release  bool  // the next write gives the lease up: the run stays resumable by anyone
	finished int   // nodes finished by this execution
	saved    []int // attempts of each node the store has
	patched  int   // bytes of data patches written since the last whole snapshot; -1 before one
	stamp    time.Time
	changed  changes
	header   driver.Header
	nodeBuf  []driver.NodeChange
	consume  []driver.Consumed // signals taken by wait nodes since the last write
	events   []queued
	evbuf    [4]queued

	// Attempts (attempt.go).
	work *worker         // calls the handlers, while the run has one
	ctxs []Ctx[In, Data] // of first attempts, one per node
	res  Result[Data]
}

func newRunner[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], run *Run, in In, trig Trigger) *runner[In, Data] {
	r := new(runner[In, Data])
	r.init(ctx, e, w, run, in, trig)
	return r
}

func (r *runner[In, Data]) init(ctx context.Context, e *Engine, w *Workflow[In, Data], run *Run, in In, trig Trigger) {
	*r = runner[In, Data]{e: e, w: w, run: run, in: in, ctx: ctx, wctx: context.WithoutCancel(ctx), trig: trig, snap: run.Data,
		holding: true, patched: -1, saved: make([]int, len(run.Steps))}
	for i := range run.Steps {
		r.saved[i] = len(run.Steps[i].Attempts)
	}
	r.info = runInfo{id: run.ID, workflow: w.name, logger: e.log}
	r.events = r.evbuf[:0]
}

// fresh is what a new run needs, in one allocation.
type fresh[In, Data any] struct {
	r    runner[In, Data]
	run  Run
	data Data
}

// execute runs the run's nodes in order until it ends, fails, or stops.
func (r *runner[In, Data]) execute() (*Result[Data], error) {
	err := r.nodes()
	r.stopWorker()
	return r.result(), err
}

func (r *runner[In, Data]) nodes() error {
	for i := range r.w.regular {
		st := &r.run.Steps[i]
		if st.Status.Done() {
			continue
		}
		if st.Status == StatusFailed {
			// Failed while the run runs: it was compensating when its
			// engine stopped. The undos go on.
			return r.compensate(r.stepErrorOf(i))
		}
		if r.e.draining.Load() && st.Status == StatusPending {
			// Shutdown: the attempt before has ended; the run stops here,
			// resumable, its lease given back.
			return r.interrupt(i, 0, time.Now(), ErrClosed)
		}
		if err := r.node(i); err != nil {
			return err
		}
	}
	if r.run.Status == StatusRunning { // no node was left to finish it
		return r.finish()
	}
	return nil
}

// finish completes the run: its last regular node is done. The undos it
// has are skipped: nothing failed.
func (r *runner[In, Data]) finish() error {
	for j := r.w.regular; j < len(r.w.nodes); j++ {
		if r.run.Steps[j].Status == StatusPending {
			if err := r.skip(j, false); err != nil {
				return err
			}
		}
	}
	if err := r.setRun(StatusCompleted, nil); err != nil {
		return err
	}
	r.queueRun(EventWorkflowComplete, nil)
	return r.write()
}

// leased reports whether, after execute, the store still has the run leased
// to this engine: its last write failed, and the recovery loop takes it up.
func (r *runner[In, Data]) leased() bool { return r.holding && !r.unstored }

// node executes node i until it completes, is skipped, or fails.
func (r *runner[In, Data]) node(i int) error {
	n, st := r.w.nodes[i], &r.run.Steps[i]
	last := i == r.w.regular-1
	if st.Status == StatusPending && n.when != nil {
		run, err := r.when(n)
		if err != nil {
			return r.failNode(i, len(st.Attempts)+1, time.Now(), err)
		}
		if !run {
			return r.skip(i, last)
		}
	}
	if n.wait != nil {
		return r.waitNode(i, n, last)
	}
	if st.Status == StatusRunning && n.kind == KindCommit && n.opts.atMostOnce {
		// Started by an earlier execution, which stopped before it ended.
		err := fmt.Errorf("%w: commit %q of run %s started but was interrupted; it is AtMostOnce, so it is not run again: check its effect, then RetryStep it with flux.Force() or leave the run failed",
			ErrCommitOutcomeUnknown, n.name, r.run.ID)
		return r.failNode(i, len(st.Attempts)+1, time.Now(), Permanent(err))
	}
	r.base = len(st.Attempts)
	now := r.now() // the previous node's completion, if it just happened
	if st.Status == StatusPending {
		if err := r.setNode(i, StatusRunning); err != nil {
			return err
		}
		st.StartedAt = now
	}
	start, err := r.beginAttempt(i, now)
	if err != nil {
		return err
	}
	for attempt := r.base + 1; ; attempt++ {
		r.stepEvent(EventStepStart, i, attempt, 0, 0, nil)
		err := r.attempt(n, i, attempt, start)
		if err == nil {
			return r.complete(i, attempt, start, last)
		}
		var stop bool
		if start, stop, err = r.failed(i, attempt, start, err); stop {
			return err
		}
	}
}

// failed handles failed attempt number attempt of node i. It returns stop
// and the node's error if no attempt follows; otherwise it records the
// attempt, waits out the backoff, and returns the next attempt's start.
func (r *runner[In, Data]) failed(i, attempt int, start time.Time, err error) (time.Time, bool, error) {
	n, st := r.w.nodes[i], &r.run.Steps[i]
	if cause := context.Cause(r.ctx); cause != nil {
		var ns *notStarted
		if errors.As(err, &ns) {
			// The run stopped before the handler was called: nothing
			// happened, so nothing is recorded, and a commit that never
			// ran is not started.
			attempt = 0
			if n.kind.Effect() && len(st.Attempts) == 0 {
				if err := r.setNode(i, StatusPending); err != nil {
					return start, true, err
				}
			}
		}
		return start, true, r.interrupt(i, attempt, start, cause)
	}
	if n.opts.atMostOnce && errors.Is(err, ErrTimeout) {
		err = Permanent(fmt.Errorf("%w: AtMostOnce commit %q timed out, so whether it took effect is unknown: %w",
			ErrCommitOutcomeUnknown, n.name, err))
	}
	opts := r.e.resolve(&n.opts)
	k := attempt - r.base - 1 // retries so far in this execution
	if IsPermanent(err) || k >= opts.retries {
		return start, true, r.failNode(i, attempt, start, err)
	}
	delay := opts.backoff.delay(k)
	d := time.Since(start)
	r.addAttempt(i, Attempt{Number: attempt, StartedAt: start, Duration: d, Error: err.Error(), Stack: stackOf(err)})
	r.touch(i).InFlight = time.Time{}
	if delay == 0 {
		// The next attempt starts at once: one write records both.
		return r.retry(i, attempt, d, 0, err)
	}
	r.queueStep(EventStepRetry, i, attempt, d, delay, err)
	if err := r.write(); err != nil {
		return start, true, err
	}
	t := time.NewTimer(delay)
	select {
	case <-t.C:
	case <-r.ctx.Done():
		t.Stop()
		return start, true, r.interrupt(i, 0, start, context.Cause(r.ctx))
	}
	next, err := r.beginAttempt(i, time.Now())
	return next, err != nil, err
}

// retry records failed attempt number attempt of node i and the start of
// the next one in one write, then tells of the retry.
func (r *runner[In, Data]) retry(i, attempt int, d, delay time.Duration, cause error) (time.Time, bool, error) {
	r.queueStep(EventStepRetry, i, attempt, d, delay, cause)
	next, err := r.beginAttempt(i, time.Now())
	return next, err != nil, err
}

// ctxOf returns a context for code of node n that runs on the run's
// goroutine (When predicates, waits), on the data so far.
func (r *runner[In, Data]) ctxOf(n *node[In, Data]) (*Ctx[In, Data], error) {
	if r.data == nil {
		r.data = new(Data)
		if err := json.Unmarshal(r.snap, r.data); err != nil {
			r.data = nil
			return nil, Permanent(fmt.Errorf("%w: run %s: data snapshot does not decode: %w", ErrCorrupt, r.run.ID, err))
		}
	}
	c := &Ctx[In, Data]{Input: r.in, Data: r.data, run: &r.info, step: n.name}
	c.ac.parent = r.ctx
	return c, nil
}

// when evaluates n's predicate on the data so far.
func (r *runner[In, Data]) when(n *node[In, Data]) (bool, error) {
	c, err := r.ctxOf(n)
	if err != nil {
		return false, err
	}
	var ok bool
	err = safeCall(func() error { ok = n.when(c); return nil })
	if err != nil {
		r.data = nil
		return false, Permanent(fmt.Errorf("When predicate of %q: %w", n.name, err))
	}
	return ok, nil
}

// complete records node i's success with the new data snapshot. A commit's
// success, and the last node's, are written at once; a step's rides on the
// next write, which comes before any other handler runs.
func (r *runner[In, Data]) complete(i, attempt int, start time.Time, last bool) error {
	n := r.w.nodes[i]
	snap, err := json.Marshal(r.data)
	if err == nil {
		err = r.e.checkSize("data", snap)
	}
	if err != nil {
		r.data = nil
		return r.failNode(i, attempt, start, Permanent(fmt.Errorf("encoding data after %q: %w", n.name, err)))
	}
	if err := r.setNode(i, StatusCompleted); err != nil {
		return err
	}
	now := time.Now()
	r.stamp = now
	r.addAttempt(i, Attempt{Number: attempt, StartedAt: start, Duration: now.Sub(start)})
	st := r.touch(i)
	st.FinishedAt, st.InFlight = now, time.Time{}
	r.setData(i, snap)
	r.finished++
	r.queueStep(EventStepComplete, i, attempt, now.Sub(start), 0, nil)
	if last {
		return r.finish()
	}
	if n.kind.Effect() {
		// Durable before anything else happens, its events included.
		return r.write()
	}
	return nil
}

func (r *runner[In, Data]) skip(i int, last bool) error {
	if err := r.setNode(i, StatusSkipped); err != nil {
		return err
	}
	r.stamp = time.Now()
	r.touch(i).FinishedAt = r.stamp
	r.finished++
	r.queueStep(EventStepSkipped, i, 0, 0, 0, nil)
	if last {
		return r.finish()
	}
	return nil
}

// failNode records node i's last failed attempt and fails the run.
func (r *runner[In, Data]) failNode(i, attempt int, start time.Time, cause error) error {
	st := &r.run.Steps[i]
	if st.Status == StatusPending {
		if err := r.setNode(i, StatusRunning); err != nil {
			return err
		}
		st.StartedAt = start
	}
	if err := r.setNode(i, StatusFailed); err != nil {
		return err
	}
	d := time.Since(start)
	r.addAttempt(i, Attempt{Number: attempt, StartedAt: start, Duration: d, Error: cause.Error(), Stack: stackOf(cause)})
	st.FinishedAt, st.InFlight = time.Now(), time.Time{}
	serr := &StepError{RunID: r.run.ID, Workflow: r.w.name, Step: st.Name, Index: i, Attempt: attempt, Err: cause}
	if i < r.w.regular && r.undoes() {
		// The undos of the commits that completed run first; the run
		// fails after them.
		r.queueStep(EventStepError, i, attempt, d, 0, cause)
		if err := r.write(); err != nil {
			return err
		}
		return r.compensate(serr)
	}
	if err := r.setRun(StatusFailed, serr); err != nil {
		return err
	}
	r.queueStep(EventStepError, i, attempt, d, 0, cause)
	r.queueRun(EventWorkflowError, serr)
	if err := r.write(); err != nil {
		return err
	}
	return serr
}

// interrupt handles a run whose context ended during node i: by Cancel (the
// run is cancelled), or by shutdown or the caller (the run stays running,
// resumable, and its lease is released). An attempt cut off is recorded as
// interrupted; an interrupted step goes back to pending, an interrupted
// commit stays running, "started", for recovery.
func (r *runner[In, Data]) interrupt(i, attempt int, start time.Time, cause error) error {
	if errors.Is(cause, ErrLeaseLost) {
		r.holding = false
		r.runEvent(EventWorkflowInterrupted, cause)
		return fmt.Errorf("flux: run %s stopped: %w", r.run.ID, cause)
	}
	st := r.touch(i)
	st.InFlight = time.Time{}
	if attempt > 0 {
		r.addAttempt(i, Attempt{Number: attempt, StartedAt: start, Duration: time.Since(start), Interrupted: true,
			Error: "interrupted: " + cause.Error()})
	}
	if st.Kind == KindStep && st.Status == StatusRunning {
		if err := r.setNode(i, StatusPending); err != nil {
			return err
		}
	}
	// The run's context is done; the record must still be written.
	ctx, cancel := context.WithTimeout(r.wctx, 10*time.Second)
	defer cancel()
	if errors.Is(cause, ErrCancelled) {
		if err := r.setRun(StatusCancelled, ErrCancelled); err != nil {
			return err
		}
		r.queueRun(EventWorkflowCancelled, ErrCancelled)
		if err := r.writeCtx(ctx); err != nil {
			return err
		}
		return fmt.Errorf("flux: run %s: %w", r.run.ID, ErrCancelled)
	}
	r.release = true
	r.queueRun(EventWorkflowInterrupted, cause)
	if err := r.writeCtx(ctx); err != nil {
		return err
	}
	return fmt.Errorf("flux: run %s interrupted at %q, resumable: %w", r.run.ID, st.Name, cause)
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
