package flux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"
)

// worker calls handlers on a goroutine of its own, so that the run's
// goroutine can give up on a handler that outlives its attempt (a timeout,
// Cancel, shutdown) and go on without it. A worker serves one run at a time,
// attempt after attempt; the engine keeps idle ones for the next runs. An
// abandoned worker exits when its handler returns, and the run takes
// another.
type worker struct {
	calls chan caller
	done  chan error
	timer *time.Timer // fires at armed or before: see arm
	armed time.Time
}

// caller is an attempt to run: a *Ctx with its handler.
type caller interface{ call() error }

func (w *worker) loop() {
	for c := range w.calls {
		w.done <- c.call()
	}
}

// maxIdleWorkers bounds the workers an engine keeps for later runs.
const maxIdleWorkers = 256

// getWorker returns an idle worker, or starts one.
func (e *Engine) getWorker() *worker {
	select {
	case w := <-e.idle:
		return w
	default:
	}
	w := &worker{calls: make(chan caller, 1), done: make(chan error, 1)}
	go w.loop()
	return w
}

// putWorker keeps w, whose last handler returned, for a later run.
func (e *Engine) putWorker(w *worker) {
	select {
	case e.idle <- w:
	default:
		close(w.calls)
	}
}

// stopWorkers ends the idle workers; Close calls it once no run is left.
func (e *Engine) stopWorkers() {
	for {
		select {
		case w := <-e.idle:
			close(w.calls)
		default:
			return
		}
	}
}

func (r *runner[In, Data]) stopWorker() {
	if r.work != nil {
		r.e.putWorker(r.work)
		r.work = nil
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
	// c is zero: set its fields one by one, cheaper than copying a whole
	// Ctx over it.
	c.Input, c.Data, c.run, c.step, c.attempt, c.fn = r.in, data, &r.info, n.name, attempt, n.fn
	c.ac.parent = r.ctx
	if timeout > 0 {
		c.ac.deadline = start.Add(timeout)
	}
	if r.ctx.Err() != nil {
		return &notStarted{context.Cause(r.ctx)}
	}
	err, returned := r.call(c, timeout)
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

// call hands the attempt to the run's worker and waits for its return, the
// attempt's deadline, or the end of the run's context, whichever comes
// first. If the handler did not return, it is abandoned: its context is
// cancelled, the worker is let go, and the error says why.
func (r *runner[In, Data]) call(c *Ctx[In, Data], timeout time.Duration) (err error, returned bool) {
	if r.work == nil {
		r.work = r.e.getWorker()
	}
	w := r.work
	w.calls <- c
	// Most handlers return at once: let the worker run one now, on this
	// thread, and take its result without parking (half the cost of a
	// hand-off through the scheduler, measured).
	runtime.Gosched()
	select {
	case err := <-w.done:
		return err, true
	default:
	}
	var deadline <-chan time.Time
	if timeout > 0 {
		deadline = w.arm(c.ac.deadline, timeout)
	}
	var cause error
wait:
	for {
		select {
		case err := <-w.done:
			return err, true
		case <-deadline:
			if now := time.Now(); now.Before(c.ac.deadline) {
				// It was set for an earlier deadline: set it again.
				w.timer.Reset(c.ac.deadline.Sub(now))
				w.armed = c.ac.deadline
				continue
			}
			cause = ErrTimeout
			break wait
		case <-r.ctx.Done():
			cause = context.Cause(r.ctx)
			break wait
		}
	}
	select {
	case err := <-w.done: // it returned meanwhile
		return err, true
	default:
	}
	close(w.calls) // it exits once its handler returns
	r.work = nil
	c.ac.end(cause)
	if cause == ErrTimeout {
		return fmt.Errorf("%w after %s", ErrTimeout, timeout), false
	}
	return cause, false
}

// arm makes the worker's timer fire no later than deadline, timeout from
// now, and returns its channel. A timer set for an earlier deadline (an
// earlier attempt's) is kept: it can only fire early, and call then sets it
// again. So quick attempts cost no timer operation at all.
func (w *worker) arm(deadline time.Time, timeout time.Duration) <-chan time.Time {
	switch {
	case w.timer == nil:
		w.timer = time.NewTimer(timeout)
	case deadline.Before(w.armed):
		w.timer.Reset(timeout)
	default:
		return w.timer.C
	}
	w.armed = deadline
	return w.timer.C
}

// notStarted is the error of an attempt whose handler was not called
// because the run had already stopped.
type notStarted struct{ cause error }

func (e *notStarted) Error() string { return "not started: " + e.cause.Error() }
func (e *notStarted) Unwrap() error { return e.cause }

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
