package flux

import (
	"fmt"

	"github.com/flux-go/flux/driver"
)

// Status is the state of a run or of one node of a run.
type Status = driver.Status

// Run and node statuses. Runs use pending, running, waiting, completed,
// failed and cancelled; nodes use pending, running, completed, failed and
// skipped. Status.Final reports whether a run has stopped; Status.Done
// whether a node needs no more work.
const (
	StatusPending   = driver.StatusPending
	StatusRunning   = driver.StatusRunning
	StatusWaiting   = driver.StatusWaiting
	StatusCompleted = driver.StatusCompleted
	StatusFailed    = driver.StatusFailed
	StatusCancelled = driver.StatusCancelled
	StatusSkipped   = driver.StatusSkipped
)

// Trigger names what asks for a run transition. Some transitions are legal
// only for one trigger: a failed run goes back to running only through
// Resume or RetryStep, a completed one only through RetryStep.
type Trigger uint8

// Triggers of run transitions.
const (
	TriggerExecute   Trigger = 1 << iota // Execute, recovery, a duplicate start
	TriggerResume                        // Resume
	TriggerRetryStep                     // RetryStep
)

const anyTrigger = TriggerExecute | TriggerResume | TriggerRetryStep

type edge struct{ from, to Status }

// runTransitions is the run state machine: each legal edge and the triggers
// allowed to take it.
var runTransitions = map[edge]Trigger{
	{StatusPending, StatusRunning}:   anyTrigger,
	{StatusPending, StatusCancelled}: anyTrigger,
	{StatusRunning, StatusCompleted}: anyTrigger,
	{StatusRunning, StatusFailed}:    anyTrigger,
	{StatusRunning, StatusCancelled}: anyTrigger,
	{StatusRunning, StatusWaiting}:   anyTrigger,
	{StatusWaiting, StatusRunning}:   anyTrigger,
	{StatusWaiting, StatusCancelled}: anyTrigger,
	{StatusFailed, StatusRunning}:    TriggerResume | TriggerRetryStep,
	{StatusCancelled, StatusRunning}: TriggerResume | TriggerRetryStep,
	{StatusCompleted, StatusRunning}: TriggerRetryStep,
}

// nodeTransitions is the node state machine. running→running records a
// failed attempt that will be retried, or the start of the next attempt.
// running→pending is an interrupted step (shutdown or cancel) that will run
// again. completed, failed and skipped go back to pending only when a run is
// replayed by Resume or RetryStep.
var nodeTransitions = map[edge]Trigger{
	{StatusPending, StatusRunning}:   anyTrigger,
	{StatusPending, StatusSkipped}:   anyTrigger,
	{StatusRunning, StatusRunning}:   anyTrigger,
	{StatusRunning, StatusCompleted}: anyTrigger,
	{StatusRunning, StatusFailed}:    anyTrigger,
	{StatusRunning, StatusPending}:   anyTrigger,
	{StatusFailed, StatusPending}:    TriggerResume | TriggerRetryStep,
	{StatusCompleted, StatusPending}: TriggerRetryStep,
	{StatusSkipped, StatusPending}:   TriggerRetryStep,
}

// CheckRunTransition returns nil if a run may go from one status to another
// for the given trigger, and an error wrapping [ErrIllegalTransition]
// otherwise.
func CheckRunTransition(from, to Status, by Trigger) error {
	return check("run", runTransitions, from, to, by)
}

// CheckNodeTransition is [CheckRunTransition] for the nodes of a run.
func CheckNodeTransition(from, to Status, by Trigger) error {
	return check("node", nodeTransitions, from, to, by)
}

func check(what string, table map[edge]Trigger, from, to Status, by Trigger) error {
	if table[edge{from, to}]&by != 0 {
		return nil
	}
	return fmt.Errorf("%w: %s %s → %s (trigger %d)", ErrIllegalTransition, what, from, to, by)
}
