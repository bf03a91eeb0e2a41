package flux

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Ctx is the context of one attempt of a step or commit. It is a
// context.Context, cancelled when the attempt times out (cause ErrTimeout),
// when the run is cancelled (ErrCancelled), when the engine shuts down
// (ErrClosed), and when the attempt ends; pass it to every call the handler
// makes.
//
// Data points to the attempt's own copy of the run's data, restored from
// the snapshot taken before the node: a failed or timed-out attempt leaves
// nothing behind, and a handler that ignores cancellation cannot touch the
// run's data after its attempt ended. Input is shared and must be treated
// as read-only.
type Ctx[In, Data any] struct {
	Input In
	Data  *Data

	run     *runInfo
	step    string
	attempt int
	ac      attemptContext
	fn      Handler[In, Data] // the handler this attempt calls
}

// call runs the attempt's handler, turning a panic into a *PanicError. It
// makes a Ctx a caller, which an untyped worker goroutine can run.
func (c *Ctx[In, Data]) call() (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	return c.fn(c)
}

// attemptContext is the context.Context of an attempt. The underlying
// cancelable context is made only when the handler first uses it, so
// handlers that never look at their context cost no allocation for it.
type attemptContext struct {
	parent   context.Context
	deadline time.Time // of the attempt's Timeout; zero for none
	mu       sync.Mutex
	ctx      context.Context
	cancel   context.CancelCauseFunc
	cause    error // set when cancelled before ctx was made
}

func (a *attemptContext) get() context.Context {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx == nil {
		a.ctx, a.cancel = context.WithCancelCause(a.parent)
		if a.cause != nil && a.cause != context.DeadlineExceeded {
			a.cancel(a.cause)
		} else if !a.deadline.IsZero() {
			// Err is DeadlineExceeded after the deadline, for this context
			// and every context made from it; the cause is ErrTimeout.
			var stop context.CancelFunc
			cancel := a.cancel
			a.ctx, stop = context.WithDeadlineCause(a.ctx, a.deadline, ErrTimeout)
			a.cancel = func(cause error) { cancel(cause); stop() }
		}
	}
	return a.ctx
}

// end cancels the attempt's context with cause. For the watchdog's
// ErrTimeout it waits for the context's own deadline, which has passed by
// then, so that Err is DeadlineExceeded rather than Canceled.
func (a *attemptContext) end(cause error) {
	a.mu.Lock()
	if cause == ErrTimeout && !a.deadline.IsZero() {
		ctx := a.ctx
		if ctx == nil {
			a.cause = context.DeadlineExceeded
		}
		a.mu.Unlock()
		if ctx != nil {
			<-ctx.Done()
		}
		return
	}
	defer a.mu.Unlock()
	if a.cancel != nil {
		a.cancel(cause)
	} else if a.cause == nil {
		a.cause = cause
	}
}

// Deadline returns the end of the attempt's Timeout, or the deadline of the
// context the run was started with if that is earlier.
func (c *Ctx[In, Data]) Deadline() (time.Time, bool) {
	d, ok := c.ac.parent.Deadline()
	if dl := c.ac.deadline; !dl.IsZero() && (!ok || dl.Before(d)) {
		return dl, true
	}
	return d, ok
}

// Done implements context.Context.
func (c *Ctx[In, Data]) Done() <-chan struct{} { return c.ac.get().Done() }

// Err implements context.Context. After the attempt's Timeout it is
// context.DeadlineExceeded; its cause (context.Cause) is ErrTimeout.
func (c *Ctx[In, Data]) Err() error { return c.ac.get().Err() }

// Value implements context.Context.
func (c *Ctx[In, Data]) Value(key any) any { return c.ac.get().Value(key) }

// runInfo is what every Ctx of one run shares.
type runInfo struct {
	id, workflow string
	logger       *slog.Logger
}

// RunID returns the ID of the run.
func (c *Ctx[In, Data]) RunID() string { return c.run.id }

// Workflow returns the workflow's name.
func (c *Ctx[In, Data]) Workflow() string { return c.run.workflow }

// Step returns the name of the node being executed.
func (c *Ctx[In, Data]) Step() string { return c.step }

// Attempt returns the 1-based number of this attempt of the node. A node
// re-run after a crash continues the count.
func (c *Ctx[In, Data]) Attempt() int { return c.attempt }

// IdempotencyKey returns a key that is the same for this run and node across
// attempts, recoveries and processes. Hand it to payment, mail and other
// APIs that deduplicate requests, so a commit that runs again after a crash
// has one effect.
func (c *Ctx[In, Data]) IdempotencyKey() string {
	return c.run.id + "/" + c.step
}

// Logger returns the engine's logger with the run ID, workflow, step and
// attempt as attributes.
func (c *Ctx[In, Data]) Logger() *slog.Logger {
	return c.run.logger.With(
		slog.String("run_id", c.run.id),
		slog.String("workflow", c.run.workflow),
		slog.String("step", c.step),
		slog.Int("attempt", c.attempt))
}
