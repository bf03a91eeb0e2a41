package jsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flux-go/flux/driver"
	"github.com/nats-io/nats.go/jetstream"
)

// Signal implements [driver.Signaler]. A signal is kept in the run's
// record; it changes neither the run's version nor its lease, and is not
// a change that Changes reports. Runs are found by wait key through keys
// k.<wait key>.<id>, written before the run that has the key and deleted
// after it no longer has it.
func (s *Store) Signal(ctx context.Context, p driver.SignalParams) (int, error) {
	if err := s.live(); err != nil {
		return 0, err
	}
	if p.RunID != "" {
		n, err := s.deliver(ctx, p.RunID, &p, false)
		if errors.Is(err, errNoWrite) {
			return 0, nil
		}
		return n, err
	}
	if p.WaitKey == "" {
		return 0, fmt.Errorf("jsstore: a signal needs a run ID or a wait key: signal %q has neither", p.Name)
	}
	var ids []string
	for _, part := range s.parts {
		err := s.scan(ctx, part.kv, waitKeyPrefix(p.WaitKey), func(e jetstream.KeyValueEntry) bool {
			if id, err := lastToken(e.Key()); err == nil {
				ids = append(ids, id)
			}
			return true
		})
		if err != nil {
			return 0, fmt.Errorf("jsstore: finding the runs waiting for %q in bucket %s: %w", p.WaitKey, part.bucket, err)
		}
	}
	n := 0
	for _, id := range ids {
		k, err := s.deliver(ctx, id, &p, true)
		switch {
		case err == nil:
			n += k
		case errors.Is(err, errNoWrite), errors.Is(err, driver.ErrRunNotFound), errors.Is(err, driver.ErrCorrupt):
		default:
			return n, err
		}
	}
	return n, nil
}

// deliver stores p in the inbox of run id, unless it has a signal with
// p's key, and makes it due if it waits. byKey: deliver only if the run
// waits for p.WaitKey, and unfinished.
func (s *Store) deliver(ctx context.Context, id string, p *driver.SignalParams, byKey bool) (int, error) {
	wake := false
	rec, err := s.mutate(ctx, id, false, func(r *record, now time.Time) error {
		h := &r.Head
		switch {
		case byKey && r.waitKey() != p.WaitKey:
			return errNoWrite
		case h.Status.Final():
			return fmt.Errorf("%w: cannot signal run %s: it is %s", driver.ErrRunFinished, id, h.Status)
		case p.Key != "" && slices.ContainsFunc(r.Signals, func(sg driver.Signal) bool { return sg.Key == p.Key }):
			return errNoWrite
		}
		h.SignalSeq++
		r.Signals = append(r.Signals, driver.Signal{Seq: h.SignalSeq, Name: p.Name, Key: p.Key, SentAt: p.At, Node: -1})
		r.Payloads = append(r.Payloads, clone(p.Payload))
		wake = false
		if h.Status == driver.StatusWaiting {
			h.WakeAt, r.Never = time.Time{}, false
			wake = h.Owner == "" || !now.Before(h.LeaseUntil)
		}
		return nil
	})
	if err != nil {
		if byKey && errors.Is(err, driver.ErrRunFinished) {
			return 0, errNoWrite
		}
		return 0, err
	}
	if rec == nil {
		return 0, errNoWrite
	}
	if wake {
		s.wake()
	}
	return 1, nil
}

// SaveSchedule implements [driver.Scheduler]. Schedules are kept in the
// bucket <prefix>_schedules, one key each.
func (s *Store) SaveSchedule(ctx context.Context, p driver.SaveScheduleParams) error {
	sc := p.Schedule
	if sc.Name == "" {
		return fmt.Errorf("jsstore: saving a schedule of workflow %q: it has no name; give it one", sc.Workflow)
	}
	return s.updateSchedule(ctx, sc.Name, true, func(old *driver.Schedule) (*driver.Schedule, error) {
		n := sc
		n.Input = clone(sc.Input)
		n.LastTick = time.Time{}
		if old != nil {
			n.Paused, n.LastTick = old.Paused, old.LastTick
		}
		return &n, nil
	})
}

// storedSchedule is a schedule as kept: its input as bytes.
type storedSchedule struct {
	driver.Schedule
	Input []byte `json:"input"`
}

func decodeSchedule(b []byte) (*driver.Schedule, error) {
	var st storedSchedule
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	sc := st.Schedule
	sc.Input = st.Input
	return &sc, nil
}

// updateSchedule reads schedule name, lets fn change it (old is nil if
// there is none: then create says whether fn may create it), and writes
// it back if the key did not change meanwhile.
func (s *Store) updateSchedule(ctx context.Context, name string, create bool, fn func(old *driver.Schedule) (*driver.Schedule, error)) error {
	if err := s.live(); err != nil {
		return err
	}
	key := scheduleKey(name)
	for range maxAttempts {
		var old *driver.Schedule
		var rev uint64
		e, err := s.schedules.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if !create {
				return fmt.Errorf("%w: %q", driver.ErrScheduleNotFound, name)
			}
		case err != nil:
			return fmt.Errorf("jsstore: reading schedule %q: %w", name, err)
		default:
			rev = e.Revision()
			if old, err = decodeSchedule(e.Value()); err != nil {
				return fmt.Errorf("jsstore: schedule %q does not decode: %w", name, err)
			}
		}
		n, err := fn(old)
		if err != nil {
			return err
		}
		b, err := json.Marshal(storedSchedule{Schedule: *n, Input: n.Input})
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = s.schedules.Create(ctx, key, b)
		} else {
			_, err = s.schedules.Update(ctx, key, b, rev)
		}
		switch {
		case err == nil:
			return nil
		case !isConflict(err):
			return fmt.Errorf("jsstore: writing schedule %q: %w", name, err)
		}
	}
	return fmt.Errorf("jsstore: schedule %q: %d writes in a row lost to concurrent ones", name, maxAttempts)
}

// Schedules implements [driver.Scheduler].
func (s *Store) Schedules(ctx context.Context) ([]driver.Schedule, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	var out []driver.Schedule
	var bad error
	err := s.scan(ctx, s.schedules, "s.>", func(e jetstream.KeyValueEntry) bool {
		sc, err := decodeSchedule(e.Value())
		if err != nil {
			bad = fmt.Errorf("jsstore: schedule key %s does not decode: %w", e.Key(), err)
			return false
		}
		out = append(out, *sc)
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b driver.Schedule) int { return strings.Compare(a.Name, b.Name) })
	if out == nil {
		out = []driver.Schedule{}
	}
	return out, nil
}

// SetSchedule implements [driver.Scheduler].
func (s *Store) SetSchedule(ctx context.Context, p driver.SetScheduleParams) error {
	return s.updateSchedule(ctx, p.Name, false, func(old *driver.Schedule) (*driver.Schedule, error) {
		n := *old
		if p.Paused != nil {
			n.Paused = *p.Paused
		}
		if p.LastTick.After(n.LastTick) {
			n.LastTick = p.LastTick
		}
		n.UpdatedAt = p.At
		return &n, nil
	})
}

// DeleteSchedule implements [driver.Scheduler].
func (s *Store) DeleteSchedule(ctx context.Context, name string) error {
	if err := s.live(); err != nil {
		return err
	}
	key := scheduleKey(name)
	e, err := s.schedules.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return fmt.Errorf("%w: %q", driver.ErrScheduleNotFound, name)
	case err != nil:
		return fmt.Errorf("jsstore: reading schedule %q: %w", name, err)
	}
	if err := s.schedules.Purge(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
		if isConflict(err) {
			return s.DeleteSchedule(ctx, name)
		}
		return fmt.Errorf("jsstore: deleting schedule %q: %w", name, err)
	}
	return nil
}
