package flux

import (
	"container/heap"
	"time"

	"github.com/flux-go/flux/driver"
)

// How MemoryStorage keeps waiting runs out of ClaimExpired's way.
//
// ClaimExpired scans m.unfinished: the unfinished runs, except the free
// waiting ones (status waiting, no owner), which are many and mostly not
// due. Those wait in a queue per workflow ordered by wake time (m.waits):
// ClaimExpired pops the due ones and peeks at the next for NextWake, at a
// cost that does not grow with the runs still sleeping.
//
// Queue entries are deleted lazily: every change of a run's wait (its
// status, owner or wake time) moves it to a new generation, and an entry of
// an older generation is stale, dropped when it reaches the top or when
// stale entries are half the queue.
//
// Locks: m.mu before a run's mu before m.wmu or m.kmu.

// memScanned reports whether ClaimExpired finds run h by scanning
// m.unfinished rather than in m.waits: it is unfinished, and not free and
// waiting.
func memScanned(h *driver.Run) bool {
	return !h.Status.Final() && (h.Status != StatusWaiting || h.Owner != "")
}

// memDue reports whether waiting run r is due at now: it waits for a time
// that passed, or a signal made it due (its WakeAt is zero, and it does not
// wait for a signal only).
func (r *memRun) memDue(now time.Time) bool {
	return r.head.Status == StatusWaiting && !r.never && !now.Before(r.head.WakeAt)
}

// setWake records the wake time of a run written with status and header
// wake time at, when the writer had seen seen signals.
func (r *memRun) setWake(status Status, at time.Time, seen int64) {
	switch {
	case status != StatusWaiting:
		r.head.WakeAt, r.never = time.Time{}, false
	case r.head.SignalSeq > seen: // a signal the writer has not seen: due now
		r.head.WakeAt, r.never = time.Time{}, false
	case at.IsZero():
		r.head.WakeAt, r.never = time.Time{}, true
	default:
		r.head.WakeAt, r.never = at, false
	}
}

// memWake is an entry of a wake queue: run r, of generation gen, due at at.
type memWake struct {
	at  time.Time
	gen uint64
	r   *memRun
}

// memWakeQueue is a heap of memWake, earliest first, and the number of its
// entries known stale.
type memWakeQueue struct {
	entries []memWake
	stale   int
}

func (q *memWakeQueue) Len() int           { return len(q.entries) }
func (q *memWakeQueue) Less(i, j int) bool { return q.entries[i].at.Before(q.entries[j].at) }
func (q *memWakeQueue) Swap(i, j int)      { q.entries[i], q.entries[j] = q.entries[j], q.entries[i] }
func (q *memWakeQueue) Push(x any)         { q.entries = append(q.entries, x.(memWake)) }
func (q *memWakeQueue) Pop() any {
	n := len(q.entries) - 1
	e := q.entries[n]
	q.entries[n] = memWake{}
	q.entries = q.entries[:n]
	return e
}

// live reports whether e is of its run's current generation.
func (e *memWake) live() bool { return e.gen == e.r.wgen.Load() }

// top returns the first live entry of q, dropping the stale ones before it.
func (q *memWakeQueue) top() (memWake, bool) {
	for len(q.entries) > 0 {
		if e := q.entries[0]; e.live() {
			return e, true
		}
		heap.Pop(q)
		q.stale = max(q.stale-1, 0)
	}
	return memWake{}, false
}

// compact drops the stale entries once they are half the queue.
func (q *memWakeQueue) compact() {
	if q.stale < 64 || q.stale < len(q.entries)/2 {
		return
	}
	kept := q.entries[:0]
	for _, e := range q.entries {
		if e.live() {
			kept = append(kept, e)
		}
	}
	clear(q.entries[len(kept):])
	q.entries, q.stale = kept, 0
	heap.Init(q)
}

// track records a change of run r, which the caller has locked: it indexes
// r under its wait key, and queues it by wake time if it is free, waiting
// and not for a signal only. Every write of a run's status, owner or wake
// time is followed by a track.
func (m *MemoryStorage) track(r *memRun) {
	if key := r.indexKey(); key != r.keyed {
		m.kmu.Lock()
		if set := m.keys[r.keyed]; set != nil {
			delete(set, r)
			if len(set) == 0 {
				delete(m.keys, r.keyed)
			}
		}
		if key != "" && m.keys != nil {
			set := m.keys[key]
			if set == nil {
				set = make(map[*memRun]struct{})
				m.keys[key] = set
			}
			set[r] = struct{}{}
		}
		m.kmu.Unlock()
		r.keyed = key
	}
	gen := r.wgen.Add(1)
	was := r.queued
	r.queued = r.head.Status == StatusWaiting && r.head.Owner == "" && !r.never
	if !was && !r.queued {
		return
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.waits == nil { // closed
		return
	}
	q := m.waits[r.head.Workflow]
	if q == nil {
		q = new(memWakeQueue)
		m.waits[r.head.Workflow] = q
	}
	if was {
		q.stale++
	}
	if r.queued {
		heap.Push(q, memWake{at: r.head.WakeAt, gen: gen, r: r})
	}
	q.compact()
}

// indexKey returns the wait key r is found by: its WaitKey while it is
// unfinished.
func (r *memRun) indexKey() string {
	if r.head.Status.Final() {
		return ""
	}
	return r.head.WaitKey
}

// place puts run id, r, in m.unfinished or takes it out, as its state
// says now. A write that may have changed memScanned calls it after
// releasing the run's lock.
func (m *MemoryStorage) place(id string, r *memRun) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if m.runs[id] != r {
		if m.unfinished[id] == r {
			delete(m.unfinished, id)
		}
		return
	}
	r.mu.Lock()
	in := memScanned(&r.head)
	r.mu.Unlock()
	if in {
		m.unfinished[id] = r
	} else {
		delete(m.unfinished, id)
	}
}

// popDue takes from the wake queue of workflow wf up to limit (< 0: all)
// entries due at now.
func (m *MemoryStorage) popDue(wf string, now time.Time, limit int, into []memWake) []memWake {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	q := m.waits[wf]
	for q != nil && limit != 0 {
		e, ok := q.top()
		if !ok || e.at.After(now) {
			break
		}
		heap.Pop(q)
		into = append(into, e)
		limit--
	}
	return into
}

// nextWake returns the earliest wake time queued for workflows wfs, zero
// if none is. It is now when due runs are left queued (ClaimExpired reached
// its limit): the caller should look again at once.
func (m *MemoryStorage) nextWake(wfs []string, now time.Time) time.Time {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	var next time.Time
	for _, wf := range wfs {
		q := m.waits[wf]
		if q == nil {
			continue
		}
		e, ok := q.top()
		if !ok {
			continue
		}
		at := e.at
		if !at.After(now) {
			at = now
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}
