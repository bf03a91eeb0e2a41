package jsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/flux-go/flux/driver"
	"github.com/nats-io/nats.go/jetstream"
)

// Create implements [driver.Store].
func (s *Store) Create(ctx context.Context, p driver.CreateParams) (driver.Written, error) {
	if err := s.live(); err != nil {
		return driver.Written{}, err
	}
	src := p.Run
	if src == nil || src.ID == "" {
		return driver.Written{}, errors.New("jsstore: Create needs a run with an ID")
	}
	rec := &record{Head: *src, Input: clone(src.Input), Initial: clone(src.Data)}
	rec.Head.Input, rec.Head.Data, rec.Head.Steps, rec.Head.Signals = nil, nil, nil, nil
	rec.setWake(src.Status, src.WakeAt, rec.Head.SignalSeq)
	rec.Steps = make([]driver.StepState, len(src.Steps))
	for i, st := range src.Steps {
		st.Attempts = slices.Clone(st.Attempts)
		rec.Steps[i] = st
	}
	rec.Data = make([]nodeData, len(src.Steps))
	for _, d := range p.Data {
		if d.Index < 0 || d.Index >= len(rec.Data) {
			return driver.Written{}, fmt.Errorf("jsstore: creating run %s: data of node %d, which it does not have", src.ID, d.Index)
		}
		rec.Data[d.Index] = keepData(&d)
	}
	for _, sg := range src.Signals {
		rec.Payloads = append(rec.Payloads, clone(sg.Payload))
		sg.Payload = nil
		rec.Signals = append(rec.Signals, sg)
	}
	rec.Head.Summary = driver.Summarize(rec.Steps)
	rec.Head.Version, rec.Head.LeaseUntil = 1, time.Time{}
	if src.Owner != "" {
		rec.Head.LeaseUntil = s.now(ctx).Add(p.Lease)
	}
	part := s.part(src.ID)
	if wk := rec.waitKey(); wk != "" {
		if _, err := part.kv.Put(ctx, waitKeyKey(wk, src.ID), nil); err != nil {
			return driver.Written{}, fmt.Errorf("jsstore: indexing run %s under wait key %q: %w", src.ID, wk, err)
		}
	}
	var rev uint64 // expected: no run; a deleted one's marker
	for attempt := 0; ; attempt++ {
		b, seq, err := s.writeBytes(ctx, part, src.ID, rec, rev, "")
		if err == nil {
			change := strconv.FormatUint(seq, 10) + ":" + strconv.FormatInt(s.now(ctx).UnixNano(), 10)
			s.lastWrites.set(src.ID, lastWrite{rev: seq, data: b, change: change}, !rec.Head.Status.Final())
			break
		}
		if !isConflict(err) {
			return driver.Written{}, err
		}
		st, rerr := s.read(ctx, part, src.ID)
		switch {
		case rerr != nil:
			return driver.Written{}, rerr
		case st.rec != nil || st.err != nil || attempt >= maxAttempts:
			return driver.Written{}, fmt.Errorf("%w: %s", driver.ErrRunExists, src.ID)
		}
		rev = st.rev
	}
	if !rec.Head.Status.Final() {
		s.hintRevs.set(part.bucket+"/"+hintKey(src.Workflow, src.ID), 0, true) // a new key
		s.reindex(ctx, part, rec, 0)
	}
	if driver.NeedsOwner(rec.Head.Status, rec.Head.Owner) {
		s.wake()
	}
	return driver.Written{Version: 1, LeaseUntil: rec.Head.LeaseUntil}, nil
}

// check refuses a write by owner at version unless the run is owner's or
// free, at that version.
func (r *record) check(owner string, version int64) error {
	h := &r.Head
	switch {
	case h.Owner != owner && h.Owner != "":
		return fmt.Errorf("%w: run %s is owned by %s", driver.ErrLeaseLost, h.ID, h.Owner)
	case h.Version != version:
		return fmt.Errorf("%w: run %s is at version %d, not %d", driver.ErrConflict, h.ID, h.Version, version)
	}
	return nil
}

// written records a write with the given lease mode at now.
func (r *record) written(lease time.Duration, now time.Time) driver.Written {
	h := &r.Head
	h.Version++
	switch {
	case lease < 0:
		h.Owner, h.LeaseUntil = "", time.Time{}
	case lease > 0 && h.Owner != "":
		h.LeaseUntil = now.Add(lease)
	}
	return driver.Written{Version: h.Version, LeaseUntil: h.LeaseUntil}
}

// Checkpoint implements [driver.Store]. It rewrites the run's record:
// its cost grows with the run's size.
func (s *Store) Checkpoint(ctx context.Context, p driver.CheckpointParams) (driver.Written, error) {
	var w driver.Written
	_, err := s.mutate(ctx, p.ID, true, func(r *record, now time.Time) error {
		if err := r.check(p.Owner, p.Version); err != nil {
			return err
		}
		nodes := len(r.Steps)
		if p.Header != nil {
			nodes = p.Header.Nodes
		}
		for _, n := range p.Nodes {
			if n.Index < 0 || n.Index >= nodes {
				return fmt.Errorf("jsstore: checkpoint of run %s changes node %d of %d", p.ID, n.Index, nodes)
			}
		}
		if h := p.Header; h != nil {
			r.Head.Status, r.Head.Error, r.Head.Fingerprint = h.Status, h.Error, h.Fingerprint
			r.Head.UpdatedAt, r.Head.FinishedAt, r.Head.Summary = h.UpdatedAt, h.FinishedAt, h.Summary
			r.Head.WaitKey = h.WaitKey
			r.setWake(h.Status, h.WakeAt, h.SignalSeq)
			if h.Nodes != len(r.Steps) {
				r.Steps = slices.Grow(r.Steps[:min(h.Nodes, len(r.Steps))], h.Nodes)[:h.Nodes]
				r.Data = slices.Grow(r.Data[:min(h.Nodes, len(r.Data))], h.Nodes)[:h.Nodes]
			}
		}
		for _, n := range p.Nodes {
			st := &r.Steps[n.Index]
			if n.Replace {
				st.Attempts, r.Data[n.Index] = nil, nodeData{}
			}
			st.Name, st.Kind, st.Status = n.Name, n.Kind, n.Status
			st.StartedAt, st.FinishedAt, st.InFlight = n.StartedAt, n.FinishedAt, n.InFlight
			st.Attempts = append(st.Attempts, n.Attempts...)
			if len(st.Attempts) == 0 {
				st.Attempts = nil
			}
			if n.Reset {
				r.Data[n.Index] = nodeData{}
			}
			if n.Data != nil {
				r.Data[n.Index] = keepData(n.Data)
			}
		}
		r.consume(p.Consume)
		w = r.written(p.Lease, now)
		return nil
	})
	if err != nil {
		return driver.Written{}, err
	}
	if p.Lease < 0 && p.Header != nil && !p.Header.Status.Final() {
		s.wake()
	}
	return w, nil
}

// consume marks the signals that cs name consumed.
func (r *record) consume(cs []driver.Consumed) {
	for _, c := range cs {
		for i := range r.Signals {
			if r.Signals[i].Seq == c.Seq {
				r.Signals[i].Node = c.Node
			}
		}
	}
}

// get reads run id: its record, or an error wrapping ErrRunNotFound or
// ErrCorrupt.
func (s *Store) get(ctx context.Context, id string) (*record, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	st, err := s.read(ctx, s.part(id), id)
	switch {
	case err != nil:
		return nil, err
	case st.err != nil:
		return nil, st.err
	case st.rec == nil:
		return nil, fmt.Errorf("%w: %q", driver.ErrRunNotFound, id)
	}
	return st.rec, nil
}

// Get implements [driver.Store].
func (s *Store) Get(ctx context.Context, id string) (*driver.Run, error) {
	r, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	return r.whole()
}

// NodeData implements [driver.Store].
func (s *Store) NodeData(ctx context.Context, p driver.NodeDataParams) (json.RawMessage, error) {
	r, err := s.get(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	if p.Index < -1 || p.Index >= len(r.Steps) {
		return nil, fmt.Errorf("jsstore: run %s has no node %d", p.ID, p.Index)
	}
	data, err := driver.Rebuild(r.Initial, r.datas(p.Index))
	if err != nil {
		return nil, driver.Corrupt(p.ID, "%v", err)
	}
	return data, nil
}

// Claim implements [driver.Store].
func (s *Store) Claim(ctx context.Context, p driver.ClaimParams) (*driver.Run, error) {
	var claimed *driver.Run
	_, err := s.mutate(ctx, p.ID, false, func(r *record, now time.Time) error {
		claimed = nil // from an attempt that lost
		h := &r.Head
		if !claimable(h, p.Owner, now) {
			return fmt.Errorf("%w: run %s is leased by %s until %s", driver.ErrRunActive, p.ID, h.Owner, h.LeaseUntil.Format(time.RFC3339Nano))
		}
		whole, err := r.whole()
		if err != nil {
			return err
		}
		h.Owner, h.LeaseUntil = p.Owner, now.Add(p.Lease)
		h.Version++
		whole.Owner, whole.LeaseUntil, whole.Version = h.Owner, h.LeaseUntil, h.Version
		claimed = whole
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// errLost ends the write of Extend of a run the owner does not hold.
var errLost = errors.New("jsstore: lease lost")

// extendWorkers bounds the runs one Extend renews at once.
const extendWorkers = 16

// Extend implements [driver.Store]. It writes each run's record, several
// at once.
func (s *Store) Extend(ctx context.Context, p driver.ExtendParams) ([]string, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	lostSet := make([]bool, len(p.IDs))
	errs := make([]error, len(p.IDs))
	sem := make(chan struct{}, extendWorkers)
	var wg sync.WaitGroup
	for i, id := range p.IDs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := s.mutate(ctx, id, false, func(r *record, now time.Time) error {
				if r.Head.Owner != p.Owner || p.Owner == "" {
					return errLost
				}
				r.Head.LeaseUntil = now.Add(p.Lease)
				return nil
			})
			switch {
			case err == nil:
			case errors.Is(err, errLost), errors.Is(err, driver.ErrRunNotFound), errors.Is(err, driver.ErrCorrupt):
				lostSet[i] = true
			default:
				errs[i] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var lost []string
	for i, id := range p.IDs {
		if lostSet[i] {
			lost = append(lost, id)
		}
	}
	return lost, nil
}

// Release implements [driver.Store].
func (s *Store) Release(ctx context.Context, p driver.ReleaseParams) error {
	unfinished := false
	_, err := s.mutate(ctx, p.ID, false, func(r *record, now time.Time) error {
		if r.Head.Owner != p.Owner || p.Owner == "" {
			return fmt.Errorf("%w: run %s is owned by %q, not %q", driver.ErrLeaseLost, p.ID, r.Head.Owner, p.Owner)
		}
		r.written(driver.ReleaseLease, now)
		unfinished = !r.Head.Status.Final() // set by the last attempt, the one written
		return nil
	})
	if err == nil && unfinished {
		s.wake()
	}
	return err
}

// Cancel implements [driver.Store].
func (s *Store) Cancel(ctx context.Context, p driver.CancelParams) error {
	_, err := s.mutate(ctx, p.ID, true, func(r *record, now time.Time) error {
		h := &r.Head
		switch h.Status {
		case driver.StatusCancelled:
			return errNoWrite
		case driver.StatusCompleted, driver.StatusFailed:
			return fmt.Errorf("%w: cannot cancel run %s: it is %s", driver.ErrRunFinished, p.ID, h.Status)
		}
		h.Status, h.Error, h.UpdatedAt, h.FinishedAt = driver.StatusCancelled, p.Error, p.At, p.At
		h.WakeAt, r.Never = time.Time{}, false
		for i := range r.Steps {
			r.Steps[i].InFlight = time.Time{}
		}
		h.Summary = driver.Summarize(r.Steps)
		r.written(driver.ReleaseLease, now)
		return nil
	})
	return err
}

// Prune implements [driver.Store]. It reads every run to find the
// finished ones: retention is a background task, run now and then.
func (s *Store) Prune(ctx context.Context, p driver.PruneParams) (int, error) {
	if err := s.live(); err != nil {
		return 0, err
	}
	type old struct {
		part     *partition
		id       string
		rev      uint64
		finished time.Time
	}
	var match []old
	for _, part := range s.parts {
		err := s.scan(ctx, part.kv, "r.>", func(e jetstream.KeyValueEntry) bool {
			id, err := lastToken(e.Key())
			if err != nil {
				return true
			}
			r, err := decode(id, e.Value())
			if err != nil {
				return true
			}
			h := &r.Head
			if h.Status == p.Status && h.Status.Final() && h.FinishedAt.Before(p.FinishedBefore) &&
				(p.Workflow == "" || h.Workflow == p.Workflow) && !slices.Contains(p.Except, h.Workflow) {
				match = append(match, old{part, id, e.Revision(), h.FinishedAt})
			}
			return true
		})
		if err != nil {
			return 0, err
		}
	}
	slices.SortFunc(match, func(a, b old) int { return a.finished.Compare(b.finished) })
	match = match[:min(len(match), p.PruneLimit())]
	n := 0
	for _, o := range match {
		// Only if unchanged since read: a run resumed meanwhile stays.
		err := o.part.kv.Purge(ctx, runKey(o.id), jetstream.LastRevision(o.rev))
		switch {
		case err == nil:
			n++
		case isConflict(err):
		default:
			return n, fmt.Errorf("jsstore: deleting run %s: %w", o.id, err)
		}
	}
	return n, nil
}
