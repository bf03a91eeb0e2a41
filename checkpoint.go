package flux

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// changes are what a run's next write must record: its header (status,
// error, data, times) and the nodes that changed since the last write.
// Every change of a run's state goes through the runner's methods below,
// which keep this list; a store that writes only what changed reads it.
type changes struct {
	header bool
	every  bool  // the whole run: its first write, a restart
	nodes  []int // indexes, in the order they first changed
	buf    [4]int
}

func (c *changes) node(i int) {
	if c.nodes == nil {
		c.nodes = c.buf[:0]
	}
	if !slices.Contains(c.nodes, i) {
		c.nodes = append(c.nodes, i)
	}
}

func (c *changes) all() { c.every, c.header = true, true }

func (c *changes) reset() { c.header, c.every, c.nodes = false, false, c.nodes[:0] }

// setNode moves node i to status to: the one place a node's status
// changes. It checks the move against the state machine and records that
// the node changed.
func (r *runner[In, Data]) setNode(i int, to Status) error {
	st := &r.run.Steps[i]
	if err := CheckNodeTransition(st.Status, to, r.trig); err != nil {
		return fmt.Errorf("run %s node %q: %w", r.run.ID, st.Name, err)
	}
	st.Status = to
	r.changed.node(i)
	return nil
}

// setRun moves the run to status to, with the error that stopped it: the
// one place a run's status changes.
func (r *runner[In, Data]) setRun(to Status, cause error) error {
	if err := CheckRunTransition(r.run.Status, to, r.trig); err != nil {
		return fmt.Errorf("run %s: %w", r.run.ID, err)
	}
	r.run.Status = to
	if cause != nil {
		r.run.Error = cause.Error()
	}
	if to.Final() {
		r.run.FinishedAt = r.now()
	}
	r.changed.header = true
	return nil
}

// touch returns node i to change a field other than its status, recording
// that it changed.
func (r *runner[In, Data]) touch(i int) *StepState {
	r.changed.node(i)
	return &r.run.Steps[i]
}

// addAttempt appends a finished attempt to node i's record.
func (r *runner[In, Data]) addAttempt(i int, a Attempt) {
	st := r.touch(i)
	st.Attempts = append(st.Attempts, a)
}

// setData records the data snapshot after the last finished node.
func (r *runner[In, Data]) setData(snap []byte) {
	r.snap, r.run.Data = snap, snap
	r.changed.header = true
}

// beginAttempt records that an attempt of node i starts, in a write that
// also carries every change since the last one (nodes finished since, a
// commit's fence), and returns the attempt's start. Only the first attempt
// of the first step of a run with a random ID starts unrecorded: until it
// ends, the run is not stored. now is the clock's time.
func (r *runner[In, Data]) beginAttempt(i int, now time.Time) (time.Time, error) {
	st := r.touch(i)
	st.InFlight = now
	if r.unstored && !r.explicit && r.finished == 0 && st.Kind == KindStep && len(st.Attempts) == 0 {
		return now, nil
	}
	r.stamp = now
	if err := r.write(); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

// now returns the time of the transition being recorded, or the clock's.
// Reading the clock costs more than most of a step here.
func (r *runner[In, Data]) now() time.Time {
	if !r.stamp.IsZero() {
		return r.stamp
	}
	return time.Now()
}

// errExists is the first write of a run with a given ID that another start
// stored first.
var errExists = errors.New("flux: run exists")

// write records the run's changes. It is not cancelled with the run: the
// state it records must not be lost to a Cancel or a caller giving up. When
// it lands, the events of the transitions it recorded fire; when it fails,
// they never do.
func (r *runner[In, Data]) write() error { return r.writeCtx(r.wctx) }

func (r *runner[In, Data]) writeCtx(ctx context.Context) error {
	r.run.UpdatedAt = r.now()
	r.stamp = time.Time{}
	lease := r.e.lease
	if r.run.Status.Final() || r.release {
		lease = ReleaseLease
	}
	if r.unstored {
		r.changed.all()
	}
	if hook := r.e.checkpointHook; hook != nil {
		hook(r.run, &r.changed)
	}
	var err error
	if r.unstored {
		err = r.create(ctx, lease)
	} else {
		err = r.update(ctx, lease)
	}
	if err != nil {
		r.events = r.events[:0]
		return err
	}
	r.changed.reset()
	r.holding = lease > 0
	r.flush()
	return nil
}

// create is the run's first write.
func (r *runner[In, Data]) create(ctx context.Context, lease time.Duration) error {
	if lease < 0 {
		r.run.Owner = ""
	}
	err := r.e.store.Create(ctx, r.run, lease)
	switch {
	case errors.Is(err, ErrRunExists) && r.explicit:
		return errExists
	case errors.Is(err, ErrRunExists):
		return fmt.Errorf("%w: run %s was started elsewhere at the same time: %w", ErrRunActive, r.run.ID, err)
	case err != nil:
		return fmt.Errorf("flux: storing new run %s of %q: %w", r.run.ID, r.w.name, err)
	}
	r.unstored = false
	if r.run.Owner != "" {
		r.e.holdsLease(r.run.ID)
	}
	return nil
}

func (r *runner[In, Data]) update(ctx context.Context, lease time.Duration) error {
	err := r.e.store.Update(ctx, r.run, lease)
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrLeaseLost) {
		r.holding = false
	} else if errors.Is(err, ErrConflict) {
		if cur, gerr := r.e.store.Get(ctx, r.run.ID); gerr == nil {
			if cur.Status == StatusCancelled {
				r.holding = false
				return fmt.Errorf("flux: run %s was cancelled elsewhere: %w", r.run.ID, ErrCancelled)
			}
			if cur.Owner != r.e.owner {
				// Another owner took the run over (and may have finished it
				// and released it): this one is a zombie and must stop.
				r.holding = false
				return fmt.Errorf("flux: recording run %s: %w: %w", r.run.ID, ErrLeaseLost, err)
			}
		}
	}
	return fmt.Errorf("flux: recording run %s: %w", r.run.ID, err)
}

// queued is an event waiting for the write that records its transition.
type queued struct {
	typ        EventType
	i, attempt int
	d, delay   time.Duration
	err        error
}

func (r *runner[In, Data]) queueStep(typ EventType, i, attempt int, d, delay time.Duration, err error) {
	r.events = append(r.events, queued{typ: typ, i: i, attempt: attempt, d: d, delay: delay, err: err})
}

func (r *runner[In, Data]) queueRun(typ EventType, err error) {
	r.events = append(r.events, queued{typ: typ, i: -1, err: err})
}

// flush fires the events of the transitions the last write recorded.
func (r *runner[In, Data]) flush() {
	for _, q := range r.events {
		if q.i < 0 {
			r.runEvent(q.typ, q.err)
		} else {
			r.stepEvent(q.typ, q.i, q.attempt, q.d, q.delay, q.err)
		}
	}
	r.events = r.events[:0]
}
