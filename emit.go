package flux

import (
	"context"
	"log/slog"
	"time"
)

// Events are emitted from the runner's transitions, after the write that
// recorded them (checkpoint.go), so what hooks, sinks and logs see is what
// happened; see Hooks for the two events of a run with a random ID that
// come before its first write.

func (r *runner[In, Data]) runEvent(typ EventType, err error) {
	r.e.emitRun(r.ctx, r.run, typ, err)
}

func (r *runner[In, Data]) stepEvent(typ EventType, i, attempt int, d, delay time.Duration, err error) {
	n := r.w.nodes[i]
	r.e.emitStep(r.ctx, r.run, typ, i, n.kind, r.e.resolve(&n.opts).retries, attempt, d, delay, err)
}

func (e *Engine) emitRun(ctx context.Context, run *Run, typ EventType, err error) {
	var d time.Duration
	if !run.FinishedAt.IsZero() {
		d = run.FinishedAt.Sub(run.CreatedAt)
	}
	var hook func(RunEvent)
	level := slog.LevelDebug
	switch typ {
	case EventWorkflowStart:
		hook = e.hooks.WorkflowStart
	case EventWorkflowComplete:
		hook = e.hooks.WorkflowComplete
	case EventWorkflowInterrupted:
		// No hook: the run did not end, it stays resumable.
		level = slog.LevelInfo
	case EventWorkflowWaiting:
		hook = e.hooks.WorkflowWaiting
	case EventWorkflowCompensating:
		// No hook: WorkflowError fires once, when the undos ran.
		level = slog.LevelWarn
	default:
		hook, level = e.hooks.WorkflowError, slog.LevelError
	}
	if hook != nil {
		e.callHook(ctx, string(typ), func() {
			hook(RunEvent{RunID: run.ID, Workflow: run.Workflow, Status: run.Status, Duration: d, Err: err})
		})
	}
	if e.trace != nil {
		ev := TraceEvent{Type: typ, Time: time.Now(), RunID: run.ID, Workflow: run.Workflow, Index: -1, Duration: d, Status: run.Status}
		if err != nil {
			ev.Err, ev.Stack = err.Error(), stackOf(err)
		}
		if typ == EventWorkflowStart {
			ev.Input = run.Input
		} else {
			ev.Data = run.Data
		}
		e.emitTrace(ctx, ev)
	}
	if e.log.Enabled(ctx, level) {
		attrs := []slog.Attr{slog.String("run_id", run.ID), slog.String("workflow", run.Workflow), slog.String("status", string(run.Status))}
		if err != nil {
			attrs = append(attrs, slog.Any("error", err))
		}
		e.log.LogAttrs(ctx, level, "flux: "+string(typ), attrs...)
	}
}

func (e *Engine) emitStep(ctx context.Context, run *Run, typ EventType, i int, kind Kind, maxRetries, attempt int, d, delay time.Duration, err error) {
	var hook func(StepEvent)
	level := slog.LevelDebug
	switch typ {
	case EventStepStart:
		hook = e.hooks.StepStart
	case EventStepComplete:
		hook = e.hooks.StepComplete
	case EventStepSkipped:
		hook = e.hooks.StepSkipped
	case EventStepRetry:
		hook, level = e.hooks.StepRetry, slog.LevelWarn
	case EventStepError:
		hook, level = e.hooks.StepError, slog.LevelError
	}
	step := run.Steps[i].Name
	if hook != nil {
		e.callHook(ctx, string(typ), func() {
			hook(StepEvent{RunID: run.ID, Workflow: run.Workflow, Step: step, Index: i, Kind: kind,
				Attempt: attempt, Duration: d, Delay: delay, Err: err})
		})
	}
	if e.trace != nil {
		ev := TraceEvent{Type: typ, Time: time.Now(), RunID: run.ID, Workflow: run.Workflow, Step: step, Index: i,
			Commit: kind == KindCommit, Attempt: attempt, MaxRetries: maxRetries, Duration: d, Delay: delay, Status: run.Steps[i].Status}
		if err != nil {
			ev.Err, ev.Stack = err.Error(), stackOf(err)
		}
		e.emitTrace(ctx, ev)
	}
	if e.log.Enabled(ctx, level) {
		attrs := []slog.Attr{slog.String("run_id", run.ID), slog.String("workflow", run.Workflow),
			slog.String("step", step), slog.Int("attempt", attempt)}
		if err != nil {
			attrs = append(attrs, slog.Any("error", err))
		}
		if delay > 0 {
			attrs = append(attrs, slog.Duration("retry_in", delay))
		}
		e.log.LogAttrs(ctx, level, "flux: "+string(typ), attrs...)
	}
}

// callHook runs a hook, logging a panic instead of letting it reach the run.
func (e *Engine) callHook(ctx context.Context, name string, fn func()) {
	if err := safeCall(func() error { fn(); return nil }); err != nil {
		e.log.LogAttrs(ctx, slog.LevelError, "flux: hook panicked; the run goes on", slog.String("hook", name),
			slog.Any("error", err), slog.String("stack", stackOf(err)))
	}
}

// emitTrace hands ev to the trace sink; a sink that panics is logged and the
// run goes on.
func (e *Engine) emitTrace(ctx context.Context, ev TraceEvent) {
	defer func() {
		if v := recover(); v != nil {
			err := newPanicError(v)
			e.log.LogAttrs(ctx, slog.LevelError, "flux: trace sink panicked; the run goes on",
				slog.String("event", string(ev.Type)), slog.Any("error", err), slog.String("stack", err.Stack))
		}
	}()
	e.trace.Emit(ev)
}
