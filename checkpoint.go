package flux

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flux-go/flux/driver"
)

// changes are what a run's next write must record beside its header: the
// nodes that changed since the last write, those whose data is dropped,
// and the data of those that completed. Every change of a run's state goes
// through the runner's methods below, which keep this list; Checkpoint
// writes it.
type changes struct {
	every    bool  // every node: the run's nodes were fitted to a changed definition
	nodes    []int // indexes, in the order they first changed
	resets   []int // nodes that left completed: their data is dropped
	replaced []int // nodes that are new at their index: the stored ones are dropped
	data     []driver.NodeData
	patches  []driver.Patch // what data's patches point to: never grown past its capacity
	buf      [4]int
	dataBuf  [2]driver.NodeData
}

func (c *changes) node(i int) {
	if c.nodes == nil {
		c.nodes = c.buf[:0]
	}
	if !slices.Contains(c.nodes, i) {
		c.nodes = append(c.nodes, i)
	}
}

func (c *changes) reset() {
	c.every, c.nodes, c.resets, c.replaced, c.data, c.patches = false, c.nodes[:0], c.resets[:0], c.replaced[:0], c.data[:0], c.patches[:0]
}

// setNode moves node i to status to: the one place a node's status
// changes. It checks the move against the state machine and records that
// the node changed.
func (r *runner[In, Data]) setNode(i int, to Status) error {
	st := &r.run.Steps[i]
	from := st.Status
	if err := CheckNodeTransition(from, to, r.trig); err != nil {
		return fmt.Errorf("run %s node %q: %w", r.run.ID, st.Name, err)
	}
	st.Status = to
	r.changed.node(i)
	sum := &r.run.Summary
	switch {
	case from.Done() && !to.Done():
		sum.Done--
	case !from.Done() && to.Done():
		sum.Done++
	}
	if from == StatusCompleted {
		r.changed.resets = append(r.changed.resets, i)
	}
	if to != StatusPending {
		sum.Node = st.Name
	}
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
	r.run.Summary.Add(a)
}

// setData records the data after node i, which just completed: the run's
// data from now on, and the node's data record for the next write, as a
// patch from the data before it, or whole when the patches written since
// the last whole one outweigh it.
func (r *runner[In, Data]) setData(i int, snap []byte) {
	d := driver.NodeData{Index: i}
	p := driver.Diff(r.snap, snap)
	c := &r.changed
	if r.patched < 0 || r.patched+p.Size() > len(snap) {
		d.Snapshot, r.patched = snap, 0
	} else {
		// Patches is reused from write to write. (Should it grow, the
		// pointers into its old array still hold their patches.)
		if c.patches == nil {
			c.patches = make([]driver.Patch, 0, len(r.run.Steps))
		}
		c.patches = append(c.patches, p)
		d.Patch, r.patched = &c.patches[len(c.patches)-1], r.patched+p.Size()
	}
	if c.data == nil {
		c.data = c.dataBuf[:0]
	}
	c.data = append(c.data, d)
	r.snap, r.run.Data = snap, snap
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
		lease = driver.ReleaseLease
	}
	if hook := r.e.checkpointHook; hook != nil {
		hook(r.run, &r.changed)
	}
	var err error
	if r.unstored {
		err = r.create(ctx, lease)
	} else {
		err = r.checkpoint(ctx, lease)
	}
	if err != nil {
		r.events = r.events[:0]
		return err
	}
	for _, i := range r.changed.nodes {
		r.saved[i] = len(r.run.Steps[i].Attempts)
	}
	if r.changed.every {
		for i := range r.run.Steps {
			r.saved[i] = len(r.run.Steps[i].Attempts)
		}
	}
	r.changed.reset()
	r.consume = r.consume[:0]
	r.holding = lease > 0
	r.flush()
	return nil
}

// create is the run's first write.
func (r *runner[In, Data]) create(ctx context.Context, lease time.Duration) error {
	if lease < 0 {
		r.run.Owner = ""
	}
	head := *r.run
	head.Data = r.w.zero // the data before the first node; the nodes' follow
	w, err := r.e.store.Create(ctx, driver.CreateParams{Run: &head, Data: r.changed.data, Lease: lease})
	switch {
	case errors.Is(err, ErrRunExists) && r.explicit:
		return errExists
	case errors.Is(err, ErrRunExists):
		return fmt.Errorf("%w: run %s was started elsewhere at the same time: %w", ErrRunActive, r.run.ID, err)
	case err != nil:
		return fmt.Errorf("flux: storing new run %s of %q: %w", r.run.ID, r.w.name, err)
	}
	r.unstored = false
	r.run.Version, r.run.LeaseUntil = w.Version, w.LeaseUntil
	if r.run.Owner != "" {
		r.e.holdsLease(r.run.ID)
	}
	return nil
}

// checkpoint writes the changes since the last write: the header, and the
// nodes that changed with their new attempts and data.
func (r *runner[In, Data]) checkpoint(ctx context.Context, lease time.Duration) error {
	run := r.run
	r.header = driver.Header{Status: run.Status, Error: run.Error, Fingerprint: run.Fingerprint,
		UpdatedAt: run.UpdatedAt, FinishedAt: run.FinishedAt, Summary: run.Summary, Nodes: len(run.Steps),
		WakeAt: run.WakeAt, WaitKey: run.WaitKey, SignalSeq: run.SignalSeq}
	p := driver.CheckpointParams{ID: run.ID, Owner: run.Owner, Version: run.Version, Lease: lease, Header: &r.header,
		Consume: r.consume}
	nodes := r.changed.nodes
	if r.changed.every {
		nodes = r.allNodes()
	}
	p.Nodes = r.nodeBuf[:0]
	for _, i := range nodes {
		st := &run.Steps[i]
		n := driver.NodeChange{Index: i, Name: st.Name, Kind: st.Kind, Status: st.Status,
			StartedAt: st.StartedAt, FinishedAt: st.FinishedAt, InFlight: st.InFlight,
			Attempts: st.Attempts[min(r.saved[i], len(st.Attempts)):], Reset: slices.Contains(r.changed.resets, i),
			Replace: slices.Contains(r.changed.replaced, i)}
		for k := range r.changed.data {
			if r.changed.data[k].Index == i {
				n.Data = &r.changed.data[k]
			}
		}
		p.Nodes = append(p.Nodes, n)
	}
	r.nodeBuf = p.Nodes
	w, err := r.e.store.Checkpoint(ctx, p)
	if err == nil {
		run.Version, run.LeaseUntil = w.Version, w.LeaseUntil
		if lease < 0 {
			run.Owner = ""
		}
		return nil
	}
	if errors.Is(err, ErrLeaseLost) {
		r.holding = false
		return r.lostLease(fmt.Errorf("flux: recording run %s: %w", run.ID, err))
	} else if errors.Is(err, ErrConflict) {
		if cur, gerr := r.e.store.Get(ctx, run.ID); gerr == nil {
			if cur.Status == StatusCancelled {
				r.holding = false
				return fmt.Errorf("flux: run %s was cancelled elsewhere: %w", run.ID, ErrCancelled)
			}
			if cur.Owner != r.e.owner {
				// Another owner took the run over (and may have finished it
				// and released it): this one is a zombie and must stop.
				r.holding = false
				return r.lostLease(fmt.Errorf("flux: recording run %s: %w: %w", run.ID, ErrLeaseLost, err))
			}
		}
	}
	return fmt.Errorf("flux: recording run %s: %w", run.ID, err)
}

// lostLease tells, as the heartbeat does when it finds the lease taken,
// that the run stopped here because another owner took it: a
// workflow:interrupted event whose error wraps ErrLeaseLost.
func (r *runner[In, Data]) lostLease(err error) error {
	r.runEvent(EventWorkflowInterrupted, err)
	return err
}

// allNodes returns the indexes of every node.
func (r *runner[In, Data]) allNodes() []int {
	all := make([]int, len(r.run.Steps))
	for i := range all {
		all[i] = i
	}
	return all
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
