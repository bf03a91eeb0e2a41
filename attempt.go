package flux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// worker calls a run's handlers on a goroutine of its own, so that the
// run's goroutine can give up on a handler that outlives its attempt (a
// timeout, Cancel, shutdown) and go on without it. A worker serves one run,
// attempt after attempt; an abandoned one exits when its handler returns,
// and the run starts another.
type worker[In, Data any] struct {
	calls chan call[In, Data]
	done  chan error
}

type call[In, Data any] struct {
	fn Handler[In, Data]
	c  *Ctx[In, Data]
}

func (w *worker[In, Data]) loop() {
	for c := range w.calls {
		w.done <- callHandler(c.fn, c.c)
	}
}

func (r *runner[In, Data]) stopWorker() {
	if r.work != nil {
		close(r.work.calls)
		r.work = nil
	}
	if r.timer != nil {
		r.timer.Stop()
	}
}

// attempt runs one attempt of node n on its own copy of the data. It leaves
// r.data nil unless the attempt succeeded.
func (r *runner[In, Data]) attempt(n *node[In, Data], i, attempt int, start time.Time) error {
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
		c = &r.ctxs[i]
	} else {
		c = new(Ctx[In, Data])
	}
	*c = Ctx[In, Data]{Input: r.in, Data: data, run: &r.info, step: n.name, attempt: attempt}
	c.ac.parent = r.ctx
	if timeout > 0 {
		c.ac.deadline = start.Add(timeout)
	}
	if r.ctx.Err() != nil {
		return &notStarted{context.Cause(r.ctx)}
	}
	err, returned := r.call(n.fn, c, timeout)
	if !returned {
		return err // abandoned: the handler keeps its copy of the data
	}
	c.ac.end(context.Canceled)
	if err != nil && timeout > 0 && errors.Is(err, context.DeadlineExceeded) && !time.Now().Before(c.ac.deadline) {
		// The handler returned its context's error at the deadline, just
		// before the run would have said the same.
		err = fmt.Errorf("%w after %s: %w", ErrTimeout, timeout, err)
	}
	if err == nil {
		r.data = data
	}
	return err
}

// call hands the handler to the run's worker and waits for its return, the
// attempt's deadline, or the end of the run's context, whichever comes
// first. If the handler did not return, it is abandoned: its context is
// cancelled, the worker is let go, and the error says why.
func (r *runner[In, Data]) call(fn Handler[In, Data], c *Ctx[In, Data], timeout time.Duration) (err error, returned bool) {
	if r.work == nil {
		r.work = &worker[In, Data]{calls: make(chan call[In, Data], 1), done: make(chan error, 1)}
		go r.work.loop()
	}
	r.work.calls <- call[In, Data]{fn, c}
	var deadline <-chan time.Time
	if timeout > 0 {
		d := time.Until(c.ac.deadline)
		if r.timer == nil {
			r.timer = time.NewTimer(d)
		} else {
			r.timer.Reset(d)
		}
		deadline = r.timer.C
	}
	var cause error
	select {
	case err := <-r.work.done:
		if deadline != nil {
			r.timer.Stop()
		}
		return err, true
	case <-deadline:
		cause = ErrTimeout
	case <-r.ctx.Done():
		cause = context.Cause(r.ctx)
		if deadline != nil {
			r.timer.Stop()
		}
	}
	select {
	case err := <-r.work.done: // it returned meanwhile
		return err, true
	default:
	}
	close(r.work.calls)
	r.work = nil
	c.ac.end(cause)
	if cause == ErrTimeout {
		return fmt.Errorf("%w after %s", ErrTimeout, timeout), false
	}
	return cause, false
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
