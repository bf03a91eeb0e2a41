package flux

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/flux-go/flux/driver"
)

// Sentinel errors. Every error Flux returns for one of these conditions wraps
// the matching sentinel, so callers test them with [errors.Is]. Those a store
// returns are package driver's, under the same names.
var (
	// ErrInvalidDefinition reports a mistake in a workflow definition: an
	// empty or duplicate step name, a nil handler, no steps, or an option of
	// the wrong type.
	ErrInvalidDefinition = errors.New("flux: invalid workflow definition")
	// ErrInvalidInput reports input rejected by the workflow's Validate
	// function or input that cannot be encoded as JSON. No run is stored.
	ErrInvalidInput = errors.New("flux: invalid workflow input")
	// ErrRunNotFound reports an unknown run ID.
	ErrRunNotFound = driver.ErrRunNotFound
	// ErrStepNotFound reports a step name that the workflow does not have.
	ErrStepNotFound = errors.New("flux: step not found")
	// ErrCommitted reports a replay that would execute a commit that already
	// completed. Pass [Force] to replay it anyway.
	ErrCommitted = errors.New("flux: commit already completed")
	// ErrCommitOutcomeUnknown reports a commit marked [AtMostOnce] that was
	// interrupted after it started: whether its side effect landed is unknown
	// and a person must decide (see [RetryStep] with [Force]).
	ErrCommitOutcomeUnknown = errors.New("flux: commit outcome unknown")
	// ErrDefinitionChanged reports a run that cannot continue because the
	// workflow's definition changed under the nodes it already finished.
	ErrDefinitionChanged = errors.New("flux: workflow definition changed")
	// ErrLeaseLost reports that another owner took over the run: this engine
	// stops executing it.
	ErrLeaseLost = driver.ErrLeaseLost
	// ErrRunActive reports a run that is already executing, in this engine or
	// under another owner's live lease.
	ErrRunActive = driver.ErrRunActive
	// ErrPayloadTooLarge reports an input or data snapshot larger than
	// Config.MaxPayloadBytes. Nothing is written.
	ErrPayloadTooLarge = errors.New("flux: payload too large")
	// ErrCorrupt reports a stored run or trace line that cannot be decoded.
	// The error names the run or line; other runs stay readable.
	ErrCorrupt = driver.ErrCorrupt
	// ErrConflict reports a compare-and-set write that lost: the stored run's
	// version is not the one the writer read.
	ErrConflict = driver.ErrConflict
	// ErrRunExists is returned by Storage.Create when the run ID is taken.
	ErrRunExists = driver.ErrRunExists
	// ErrCancelled is the cause of a run stopped by Engine.Cancel.
	ErrCancelled = errors.New("flux: run cancelled")
	// ErrClosed reports use of an engine or a store after its Close. Runs
	// interrupted by Engine.Close stay resumable.
	ErrClosed = driver.ErrClosed
	// ErrTimeout is the cause of an attempt that exceeded its Timeout.
	ErrTimeout = errors.New("flux: step attempt timed out")
	// ErrRunFinished reports an operation that needs an unfinished run, such
	// as Engine.Cancel of a completed or failed run.
	ErrRunFinished = driver.ErrRunFinished
	// ErrScheduleNotFound reports an unknown schedule name.
	ErrScheduleNotFound = driver.ErrScheduleNotFound
	// ErrStepNotReached reports a RetryStep from a node the run has not
	// reached: a node before it has not finished, so there is no data to
	// start from. Resume the run, or RetryStep an earlier node.
	ErrStepNotReached = errors.New("flux: step not reached")
	// ErrWrongWorkflow reports a run ID that belongs to another workflow than
	// the one given: from Resume, RetryStep, or a start with an existing
	// RunID.
	ErrWrongWorkflow = errors.New("flux: run belongs to another workflow")
	// ErrIllegalTransition reports a state change that the state machine
	// forbids. It indicates a bug, in Flux or in a storage adapter.
	ErrIllegalTransition = errors.New("flux: illegal state transition")
)

// StepError is the error of a run that failed in a step: it names the step
// and the attempt, and wraps the handler's error.
type StepError struct {
	RunID    string
	Workflow string
	Step     string
	Index    int
	Attempt  int
	Err      error
}

// Error names the workflow, run, step and attempt, and the handler's error.
func (e *StepError) Error() string {
	return fmt.Sprintf("flux: workflow %q run %s: step %q failed on attempt %d: %v",
		e.Workflow, e.RunID, e.Step, e.Attempt, e.Err)
}

// Unwrap returns the handler's error.
func (e *StepError) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying, such as a business-rule failure
// ("out of stock"): the step fails at once whatever its Retries. Permanent(nil)
// is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether err, or an error it wraps, was marked with
// [Permanent].
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// PanicError is the error of a handler, When predicate or hook that panicked.
// It carries the panic value and the goroutine's stack.
type PanicError struct {
	Value any
	Stack string
}

// Error gives the panic value; the stack is in Stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("panic: %v", e.Value)
}

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

func newPanicError(v any) *PanicError {
	return &PanicError{Value: v, Stack: string(debug.Stack())}
}

// stackOf returns the stack carried by err, if it came from a panic.
func stackOf(err error) string {
	var p *PanicError
	if errors.As(err, &p) {
		return p.Stack
	}
	return ""
}
