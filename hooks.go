package flux

import (
	"encoding/json"
	"time"
)

// Hooks are optional callbacks fired from the state machine's transitions,
// in the order the transitions happen, like net/http/httptrace.ClientTrace.
// Each fires after the write that records its transition landed, so what a
// hook sees is what storage holds; the two exceptions are for a run with a
// random ID, which is stored by its first checkpoint: its WorkflowStart and
// the StepStart of its first step's first attempt fire before anything was
// written. A transition whose write failed fires no hook. Any field may be
// nil. Hooks run synchronously on the run's goroutine, so they must be
// quick; a hook that panics is logged and the run goes on.
type Hooks struct {
	// WorkflowStart fires when a run enters running: first start, Resume,
	// RetryStep, recovery by another engine, or a wake from a sleep or a
	// wait (after WorkflowWaiting). So it may fire more than once per run;
	// count runs by WorkflowComplete and WorkflowError.
	WorkflowStart func(RunEvent)
	// WorkflowComplete fires when a run completed.
	WorkflowComplete func(RunEvent)
	// WorkflowError fires when a run failed or was cancelled; Err says why.
	WorkflowError func(RunEvent)
	// WorkflowWaiting fires when a run stopped to wait (a sleep, a signal,
	// an event), after the write that recorded it: it holds no engine
	// until it is woken.
	WorkflowWaiting func(RunEvent)

	// StepStart fires before each attempt of a node, once the attempt's
	// start is recorded (StepState.InFlight).
	StepStart func(StepEvent)
	// StepComplete fires after a node succeeded and that was recorded. A
	// commit's success is written at once; a step's in the write that
	// starts the next node, before any other handler runs.
	StepComplete func(StepEvent)
	// StepSkipped fires when a node's When predicate returned false, once
	// that was recorded.
	StepSkipped func(StepEvent)
	// StepRetry fires after a failed attempt that will be retried was
	// recorded; Err is the attempt's error and Delay the backoff before the
	// next one.
	StepRetry func(StepEvent)
	// StepError fires after a node's last attempt failed, with the run's
	// failure recorded.
	StepError func(StepEvent)
}

// RunEvent describes a run-level transition.
type RunEvent struct {
	RunID    string
	Workflow string
	Status   Status
	Duration time.Duration // since the run was created; set when it stops
	Err      error
}

// StepEvent describes a node-level transition.
type StepEvent struct {
	RunID    string
	Workflow string
	Step     string
	Index    int
	Kind     Kind
	Attempt  int // 1-based; 0 for a skipped node
	Duration time.Duration
	Delay    time.Duration // StepRetry only: backoff before the next attempt
	Err      error
}

// EventType names a trace event. The values are the NDJSON "type" field.
type EventType string

// Trace event types.
const (
	EventWorkflowStart     EventType = "workflow:start"
	EventWorkflowComplete  EventType = "workflow:complete"
	EventWorkflowError     EventType = "workflow:error"
	EventWorkflowCancelled EventType = "workflow:cancelled"
	// EventWorkflowInterrupted: the run stopped without finishing (engine
	// Close, the caller's context, a lost lease) and stays resumable.
	EventWorkflowInterrupted EventType = "workflow:interrupted"
	// EventWorkflowWaiting: the run waits (a sleep, a signal, an event),
	// holding no engine; it continues when woken.
	EventWorkflowWaiting EventType = "workflow:waiting"
	// EventWorkflowCompensating: a node failed for good after commits with
	// an Undo completed; their undos run, then the run fails.
	EventWorkflowCompensating EventType = "workflow:compensating"
	EventStepStart            EventType = "step:start"
	EventStepComplete         EventType = "step:complete"
	EventStepSkipped          EventType = "step:skipped"
	EventStepRetry            EventType = "step:retry"
	EventStepError            EventType = "step:error"
)

// TraceEvent is one state transition as a trace sink receives it. Package
// tracefile writes it as one NDJSON line with the original engine's field
// names.
type TraceEvent struct {
	Type       EventType
	Time       time.Time
	RunID      string
	Workflow   string
	Step       string // "" for workflow events
	Index      int    // node index; -1 for workflow events
	Commit     bool
	Attempt    int // 1-based attempt of step events
	MaxRetries int
	Duration   time.Duration
	Delay      time.Duration // step:retry: backoff before the next attempt
	Err        string
	Stack      string
	Status     Status
	Input      json.RawMessage // workflow:start
	Data       json.RawMessage // workflow:complete, workflow:error
}

// TraceSink receives trace events. Emit is called synchronously from the
// run's goroutine, for many runs at once, so implementations must be safe for
// concurrent use and must not block for long.
type TraceSink interface {
	Emit(TraceEvent)
}
