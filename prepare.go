package flux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/flux-go/flux/driver"
)

// The one path by which a stored run starts executing: a duplicate start,
// Resume, RetryStep and recovery all come through fromClaim. Every decision
// to execute is made on the copy of the run that the claim returned; a read
// before the claim only lets a start that would be refused, or that has
// nothing to do, return without writing.

// startOptions are what a start of a stored run asks beyond its trigger.
type startOptions struct {
	from     int    // RetryStep: index of the node to replay from
	step     string // RetryStep: its name, for errors
	force    bool   // RetryStep: replay completed commits
	recovery bool   // the recovery loop: fail a run it can never continue
}

// prepare takes stored run id for a start of w by trig. It returns a runner
// holding the run's lease, ready to execute it; or the result of a run that
// needs no execution (a duplicate start of a run that ended, a Resume of a
// completed run); or an error, having given back any lease it took.
func prepare[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], id string, trig Trigger, o startOptions) (*runner[In, Data], *Result[Data], error) {
	peek, err := e.store.Get(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if done, _, err := checkStart(w, peek, trig, o); done || err != nil {
		if err != nil {
			return nil, nil, err
		}
		res, err := stoppedResult(w, peek)
		return nil, res, err
	}
	claimed, err := e.store.Claim(ctx, driver.ClaimParams{ID: id, Owner: e.owner, Lease: e.lease})
	if err != nil {
		return nil, nil, err
	}
	return fromClaim(ctx, e, w, claimed, trig, o)
}

// fromClaim decides, on a run this engine just claimed, whether and how it
// executes, and prepares its runner. A refused or finished run's lease is
// given back.
func fromClaim[In, Data any](ctx context.Context, e *Engine, w *Workflow[In, Data], run *Run, trig Trigger, o startOptions) (*runner[In, Data], *Result[Data], error) {
	e.holdsLease(run.ID)
	run.Summary = driver.Summarize(run.Steps)
	var in In
	r := newRunner(ctx, e, w, run, in, trig)
	if err := r.recordCrash(); err != nil {
		e.release(run)
		return nil, nil, err
	}
	done, in, err := checkStart(w, run, trig, o)
	if err != nil && o.recovery && errors.Is(err, ErrDefinitionChanged) {
		// It cannot go on with this definition. Failing it, rather than
		// claiming it again every lease, shows it to a person, who can
		// Resume it with a definition that fits.
		return nil, nil, r.failUnrecoverable(err)
	}
	if done || err != nil {
		e.release(run)
		if err != nil {
			return nil, nil, err
		}
		res, err := stoppedResult(w, run)
		return nil, res, err
	}
	r.in = in
	if err := r.restart(o); err != nil {
		e.release(run)
		return nil, nil, err
	}
	return r, nil, nil
}

// checkStart decides, on a copy of a run, what a start by trig does: refuse
// it (an error), return the run as it stopped (done), or execute it, with
// its input decoded. It changes nothing.
func checkStart[In, Data any](w *Workflow[In, Data], run *Run, trig Trigger, o startOptions) (done bool, in In, err error) {
	if run.Workflow != w.name {
		return false, in, fmt.Errorf("%w: run %s is of workflow %q, not %q", ErrWrongWorkflow, run.ID, run.Workflow, w.name)
	}
	switch {
	case trig == TriggerExecute && run.Status.Final(), trig == TriggerResume && run.Status == StatusCompleted:
		return true, in, nil
	}
	if trig == TriggerResume {
		if err := checkCompensated(run); err != nil {
			return false, in, err
		}
	}
	keep := len(run.Steps)
	if trig == TriggerRetryStep {
		keep = o.from
		if !o.force {
			for i := o.from; i < len(run.Steps); i++ {
				if s := run.Steps[i]; s.Kind.Effect() && s.Status == StatusCompleted {
					return false, in, fmt.Errorf("%w: RetryStep(%q) would run commit %q of run %s again; pass flux.Force() to allow it",
						ErrCommitted, o.step, s.Name, run.ID)
				}
			}
		}
		for i := range o.from {
			if i >= len(run.Steps) || !run.Steps[i].Status.Done() {
				return false, in, fmt.Errorf("%w: RetryStep(%q): run %s has not finished node %q before it, so there is no data to start from; Resume the run or RetryStep an earlier node",
					ErrStepNotReached, o.step, run.ID, w.nodes[i].name)
			}
		}
		for i := o.from; i < len(run.Steps); i++ {
			if s := run.Steps[i]; s.Status != StatusPending {
				if err := CheckNodeTransition(s.Status, StatusPending, trig); err != nil {
					return false, in, err
				}
			}
		}
	}
	if err := checkPrefix(w, run, keep); err != nil {
		return false, in, err
	}
	if run.Status != StatusRunning {
		if err := CheckRunTransition(run.Status, StatusRunning, trig); err != nil {
			return false, in, err
		}
	}
	if err := json.Unmarshal(run.Input, &in); err != nil {
		return false, in, fmt.Errorf("%w: the stored input of run %s does not decode as %T (did the workflow's input type change?): %w",
			ErrDefinitionChanged, run.ID, in, err)
	}
	return false, in, nil
}

// checkPrefix checks that the nodes among the first keep of run that
// started are, in order, an unchanged prefix of the definition w.
func checkPrefix[In, Data any](w *Workflow[In, Data], run *Run, keep int) error {
	keep = min(keep, len(run.Steps))
	last := lastStarted(run, keep)
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
	return nil
}

// lastStarted is the index of the last node among the first keep that is
// not pending, or -1.
func lastStarted(run *Run, keep int) int {
	last := -1
	for i := range keep {
		if run.Steps[i].Status != StatusPending {
			last = i
		}
	}
	return last
}

// recordCrash records the attempt that the run's previous owner left in
// flight when it stopped without recording its end (a crash, a lost
// lease): an interrupted attempt, whose duration is unknown. An
// interrupted step goes back to pending; an interrupted commit stays
// running, "started".
func (r *runner[In, Data]) recordCrash() error {
	for i := range r.run.Steps {
		s := &r.run.Steps[i]
		if s.InFlight.IsZero() {
			continue
		}
		r.addAttempt(i, Attempt{Number: len(s.Attempts) + 1, StartedAt: s.InFlight, Interrupted: true,
			Error: "interrupted: the engine executing the run stopped (crashed or lost its lease) before the attempt ended"})
		r.touch(i).InFlight = time.Time{}
		if s.Kind == KindStep && s.Status == StatusRunning {
			if err := r.setNode(i, StatusPending); err != nil {
				return err
			}
		}
	}
	return nil
}

// restart applies a checked start to the claimed run: it fits the nodes to
// the definition, resets the nodes a Resume or RetryStep runs again (their
// attempts stay), and takes the run back to running. The runner's first
// write records all of it.
func (r *runner[In, Data]) restart(o startOptions) error {
	run := r.run
	keep := len(run.Steps)
	if r.trig == TriggerRetryStep {
		keep = o.from
	}
	r.fitNodes(keep)
	undoing := compensated(run) // a Resume goes on with the undos
	for i := range run.Steps {
		s := &run.Steps[i]
		reset := (r.trig == TriggerRetryStep && i >= o.from) || (r.trig == TriggerResume && s.Status == StatusFailed && !undoing)
		if reset && s.Status != StatusPending {
			if err := r.setNode(i, StatusPending); err != nil {
				return err
			}
			s.StartedAt, s.FinishedAt = time.Time{}, time.Time{}
		}
	}
	if r.trig == TriggerRetryStep {
		// The data before the node replayed: what the nodes before it left.
		data, err := r.e.store.NodeData(r.ctx, driver.NodeDataParams{ID: run.ID, Index: o.from - 1})
		if err != nil {
			return fmt.Errorf("flux: RetryStep(%q): reading the data before it: %w", o.step, err)
		}
		run.Data, r.snap = data, data
	}
	if run.Status != StatusRunning {
		if err := r.setRun(StatusRunning, nil); err != nil {
			return err
		}
		run.Error, run.FinishedAt = "", time.Time{}
	}
	r.queueRun(EventWorkflowStart, nil)
	return nil
}

// fitNodes fits the run's nodes to the definition, keeping the state of the
// first keep nodes, which checkPrefix accepted. The other nodes are rebuilt
// from the definition as pending: one it still has at its place keeps its
// attempts; one that is new there replaces the stored one.
func (r *runner[In, Data]) fitNodes(keep int) {
	run, w := r.run, r.w
	if keep >= len(run.Steps) && run.Fingerprint == w.fingerprint() {
		return
	}
	keep = min(keep, len(run.Steps))
	last := lastStarted(run, keep)
	steps := make([]StepState, len(w.nodes))
	saved := make([]int, len(w.nodes))
	copy(steps, run.Steps[:last+1])
	copy(saved, r.saved[:last+1])
	for i := last + 1; i < len(w.nodes); i++ {
		n := w.nodes[i]
		steps[i] = StepState{Name: n.name, Kind: n.kind, Status: StatusPending}
		if i < len(run.Steps) && run.Steps[i].Name == n.name && run.Steps[i].Kind == n.kind {
			old := run.Steps[i]
			steps[i].Status, steps[i].Attempts = old.Status, old.Attempts
			steps[i].StartedAt, steps[i].FinishedAt = old.StartedAt, old.FinishedAt
			saved[i] = r.saved[i]
		} else if i < len(run.Steps) {
			r.changed.replaced = append(r.changed.replaced, i)
		}
	}
	run.Steps, run.Fingerprint, r.saved = steps, w.fingerprint(), saved
	run.Summary = driver.Summarize(steps)
	r.changed.every = true
}

// failUnrecoverable marks a claimed run that recovery cannot continue as
// failed with cause, and releases its lease.
func (r *runner[In, Data]) failUnrecoverable(cause error) error {
	if err := r.setRun(StatusFailed, fmt.Errorf("recovery: %w", cause)); err != nil {
		r.e.release(r.run)
		return errors.Join(cause, err)
	}
	r.queueRun(EventWorkflowError, cause)
	if err := r.write(); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}
