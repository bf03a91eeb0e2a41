package flux

import (
	"fmt"
	"time"

	"github.com/flux-go/flux/driver"
)

// waitNode executes sleep or wait node i: it ends it if its time passed or
// its signal is in the run's inbox, and otherwise writes the run waiting,
// with its lease given up, and stops.
func (r *runner[In, Data]) waitNode(i int, n *node[In, Data], last bool) error {
	st := &r.run.Steps[i]
	if st.Status == StatusPending {
		if err := r.setNode(i, StatusRunning); err != nil {
			return err
		}
		st.StartedAt = r.now()
	}
	start, attempt, spec := st.StartedAt, len(st.Attempts)+1, n.wait
	c, err := r.ctxOf(n)
	if err != nil {
		return r.failNode(i, attempt, start, err)
	}
	var due time.Time
	switch {
	case spec.until != nil:
		err = safeCall(func() error { due = spec.until(c); return nil })
	case spec.name == "":
		due = start.Add(spec.d)
	case spec.timeout > 0:
		due = start.Add(spec.timeout)
	}
	key := ""
	switch {
	case err != nil:
	case spec.key != nil:
		var k string
		err = safeCall(func() error { k = spec.key(c); return nil })
		key = eventKey(spec.name, k)
	case spec.name != "":
		key = signalKey(spec.name)
	}
	if err != nil {
		r.data = nil
		return r.failNode(i, attempt, start, Permanent(fmt.Errorf("%s %q: %w", n.kind, n.name, err)))
	}
	if key != r.run.WaitKey {
		r.run.WaitKey = key
		if spec.key != nil {
			// Events are delivered to the runs whose key is stored: it
			// is, before the inbox is read, so none sent from now on is
			// missed.
			if err := r.write(); err != nil {
				return err
			}
		}
	}
	if spec.name != "" {
		for k := range r.run.Signals {
			sig := &r.run.Signals[k]
			if sig.Node >= 0 || sig.Name != spec.name || (!due.IsZero() && !sig.SentAt.Before(due)) {
				continue // taken, another's, or sent after the timeout: the deadline wins
			}
			sig.Node = i
			r.consume = append(r.consume, driver.Consumed{Seq: sig.Seq, Node: i})
			return r.land(i, n, c, attempt, start, Received{Name: sig.Name, Payload: sig.Payload, SentAt: sig.SentAt}, last)
		}
	}
	if !due.IsZero() || spec.name == "" {
		if now := time.Now(); !now.Before(due) {
			return r.land(i, n, c, attempt, start, Received{Name: spec.name, TimedOut: spec.name != ""}, last)
		}
	}
	return r.sleep(i, due)
}

// land ends wait node i with what it received.
func (r *runner[In, Data]) land(i int, n *node[In, Data], c *Ctx[In, Data], attempt int, start time.Time, rec Received, last bool) error {
	if n.wait.land != nil {
		if err := safeCall(func() error { return n.wait.land(c, rec) }); err != nil {
			// The signal stays in the inbox, for a Resume.
			for k := range r.run.Signals {
				if r.run.Signals[k].Node == i {
					r.run.Signals[k].Node = -1
				}
			}
			r.consume, r.data = r.consume[:0], nil
			return r.failNode(i, attempt, start, Permanent(fmt.Errorf("%s %q: %w", n.kind, n.name, err)))
		}
	}
	r.run.WaitKey, r.run.WakeAt = "", time.Time{}
	// Recorded with the next write, which comes before anything else
	// happens: the signal is consumed in the write that completes the node.
	return r.complete(i, attempt, start, last)
}

// sleep writes the run waiting at node i until due (zero: until a
// signal), its lease given up, and stops executing it.
func (r *runner[In, Data]) sleep(i int, due time.Time) error {
	r.run.WakeAt = due
	if err := r.setRun(StatusWaiting, nil); err != nil {
		return err
	}
	r.release = true
	r.queueRun(EventWorkflowWaiting, nil)
	if err := r.write(); err != nil {
		return err
	}
	r.e.wakeBy(due)
	what := "until " + due.Format(time.RFC3339)
	if wi, _ := Waiting(r.run); wi.Signal != "" {
		what = fmt.Sprintf("for %q", wi.Signal)
		if !due.IsZero() {
			what += " until " + due.Format(time.RFC3339)
		}
	}
	return fmt.Errorf("%w: run %s waits at %q %s; an engine that registered %q continues it",
		ErrWaiting, r.run.ID, r.run.Steps[i].Name, what, r.w.name)
}
