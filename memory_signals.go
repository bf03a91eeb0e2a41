package flux

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/flux-go/flux/driver"
)

var _ driver.Signaler = (*MemoryStorage)(nil)

// Signal implements [driver.Signaler]. A signal changes neither the run's
// version nor its lease, and is not a change that Changes reports.
func (m *MemoryStorage) Signal(_ context.Context, p driver.SignalParams) (int, error) {
	if p.RunID == "" {
		return m.signalKey(p)
	}
	r, err := m.find(p.RunID)
	if err != nil {
		return 0, err
	}
	if r.head.Status.Final() {
		st := r.head.Status
		r.mu.Unlock()
		return 0, fmt.Errorf("%w: cannot signal run %s: it is %s", ErrRunFinished, p.RunID, st)
	}
	n, wake := m.deliver(r, &p, time.Now())
	r.mu.Unlock()
	if wake {
		m.wakes.Signal()
	}
	return n, nil
}

// signalKey delivers p to every unfinished run whose wait key is p.WaitKey.
func (m *MemoryStorage) signalKey(p driver.SignalParams) (int, error) {
	if m.isClosed() {
		return 0, errMemoryClosed
	}
	if p.WaitKey == "" {
		return 0, fmt.Errorf("flux: a signal needs a run ID or a wait key: signal %q has neither", p.Name)
	}
	m.kmu.Lock()
	runs := make([]*memRun, 0, len(m.keys[p.WaitKey]))
	for r := range m.keys[p.WaitKey] {
		runs = append(runs, r)
	}
	m.kmu.Unlock()
	now := time.Now()
	n, wake := 0, false
	for _, r := range runs {
		r.mu.Lock()
		// It may have finished or changed its key since it was listed.
		if r.indexKey() == p.WaitKey {
			k, w := m.deliver(r, &p, now)
			n, wake = n+k, wake || w
		}
		r.mu.Unlock()
	}
	if wake {
		m.wakes.Signal()
	}
	return n, nil
}

// deliver stores p in the inbox of unfinished run r, which the caller has
// locked, unless it has a signal with p's key, and makes r due if it
// waits. It returns how many runs it delivered to (0 or 1), and whether
// engines should be woken: the run waits and is free.
func (m *MemoryStorage) deliver(r *memRun, p *driver.SignalParams, now time.Time) (int, bool) {
	if p.Key != "" && slices.ContainsFunc(r.signals, func(s driver.Signal) bool { return s.Key == p.Key }) {
		return 0, false
	}
	r.head.SignalSeq++
	r.signals = append(r.signals, driver.Signal{Seq: r.head.SignalSeq, Name: p.Name, Key: p.Key,
		Payload: cloneBytes(p.Payload), SentAt: p.At, Node: -1})
	if r.head.Status != StatusWaiting {
		return 1, false
	}
	if r.never || !r.head.WakeAt.IsZero() {
		r.head.WakeAt, r.never = time.Time{}, false
		m.track(r)
	}
	return 1, r.head.Owner == "" || !now.Before(r.head.LeaseUntil)
}

// consume marks the signals of r that cs name consumed.
func (r *memRun) consume(cs []driver.Consumed) {
	for _, c := range cs {
		i, ok := slices.BinarySearchFunc(r.signals, c.Seq, func(s driver.Signal, seq int64) int { return cmp.Compare(s.Seq, seq) })
		if ok {
			r.signals[i].Node = c.Node
		}
	}
}

// copySignals returns a copy of r's signals, sharing nothing with them.
func (r *memRun) copySignals() []driver.Signal {
	if len(r.signals) == 0 {
		return nil
	}
	out := slices.Clone(r.signals)
	for i := range out {
		out[i].Payload = cloneBytes(out[i].Payload)
	}
	return out
}
