package flux

import (
	"errors"
	"fmt"
)

// Compensation (sagas). A commit may declare an undo with the [Undo]
// option. The undo is a node of its own, kind KindUndo, named
// UndoName(commit); the undos come after the workflow's other nodes, in
// reverse order of their commits. When a node fails for good after some
// commits with an undo completed, the run does not fail at once: the undos
// of the completed commits run, latest commit first, each recorded and
// executed once like a commit (retried by the commit's options), even
// across a crash; then the run fails with the original error. When the run
// completes, its undos are skipped.
//
// A run whose undos ran is not resumed (ErrCompensated): its effects were
// undone, so start a new run, or RetryStep it with Force.

// ErrCompensated is returned by [Resume] for a run whose undos ran.
var ErrCompensated = errors.New("flux: run was compensated")

// Undo declares fn as the compensation of a commit: it runs if a later node
// of the run fails for good. Its type parameters must be the workflow's.
func Undo[In, Data any](fn Handler[In, Data]) StepOption {
	return func(o *stepOptions) {
		if fn == nil {
			o.err = errors.New("Undo(nil)")
			return
		}
		o.undo = fn
	}
}

// UndoName is the name of the undo node of the commit named commit.
func UndoName(commit string) string { return "undo:" + commit }

// undoes reports whether an undo of a completed commit is still to run:
// a failure now compensates.
func (r *runner[In, Data]) undoes() bool {
	for j := r.w.regular; j < len(r.w.nodes); j++ {
		if !r.run.Steps[j].Status.Done() && r.run.Steps[r.w.nodes[j].of].Status == StatusCompleted {
			return true
		}
	}
	return false
}

// compensate runs the undos of the completed commits, in order (the latest
// commit's first), skips the others, and fails the run with serr. An undo
// that fails for good fails the run with its own error.
func (r *runner[In, Data]) compensate(serr *StepError) error {
	r.runEvent(EventWorkflowCompensating, serr)
	for j := r.w.regular; j < len(r.w.nodes); j++ {
		if r.run.Steps[j].Status.Done() {
			continue
		}
		if r.run.Steps[r.w.nodes[j].of].Status != StatusCompleted {
			if err := r.skip(j, false); err != nil {
				return err
			}
			continue
		}
		if err := r.node(j); err != nil {
			return err
		}
	}
	if err := r.setRun(StatusFailed, serr); err != nil {
		return err
	}
	r.queueRun(EventWorkflowError, serr)
	if err := r.write(); err != nil {
		return err
	}
	return serr
}

// stepErrorOf rebuilds the error of failed node i from its record.
func (r *runner[In, Data]) stepErrorOf(i int) *StepError {
	st := r.run.Steps[i]
	serr := &StepError{RunID: r.run.ID, Workflow: r.w.name, Step: st.Name, Index: i, Err: errors.New("failed")}
	if n := len(st.Attempts); n > 0 {
		serr.Attempt, serr.Err = st.Attempts[n-1].Number, errors.New(st.Attempts[n-1].Error)
	}
	return serr
}

// compensated reports whether an undo of run started or ran.
func compensated(run *Run) bool {
	for _, s := range run.Steps {
		if s.Kind == KindUndo && s.Status != StatusPending && s.Status != StatusSkipped {
			return true
		}
	}
	return false
}

// checkCompensated refuses a Resume of a compensated run.
func checkCompensated(run *Run) error {
	if run.Status == StatusFailed && compensated(run) {
		return fmt.Errorf("%w: the undos of run %s ran, so its effects were undone; start a new run, or RetryStep it with flux.Force()",
			ErrCompensated, run.ID)
	}
	return nil
}
