package flux

import "time"

// DefaultMemoryKeepFinished is how many finished runs of each outcome a
// MemoryStorage keeps unless told otherwise.
const DefaultMemoryKeepFinished = 10_000

// MemoryOption configures a MemoryStorage.
type MemoryOption func(*MemoryStorage)

// MemoryKeepFinished makes a MemoryStorage keep the newest n finished runs
// of each outcome (completed or cancelled; failed), forgetting the oldest
// as more finish, once a tenth more than n have (the older ones at once);
// n <= 0 keeps them all, until the engine's Retention deletes them.
func MemoryKeepFinished(n int) MemoryOption {
	return func(m *MemoryStorage) { m.keep = n }
}

// memFinish lists runs in the order they finished: a queue from head on.
type memFinish struct {
	ids  []memFinished
	head int
}

type memFinished struct {
	id string
	at time.Time
}

// finish records that run id ended with status s at at, and forgets the
// oldest finished run of the same outcome if more than m.keep are kept.
// Callers hold no run's lock.
func (m *MemoryStorage) finish(id string, s Status, at time.Time) {
	if m.keep <= 0 {
		return
	}
	q := &m.finished[0]
	if s == StatusFailed {
		q = &m.finished[1]
	}
	m.fmu.Lock()
	q.ids = append(q.ids, memFinished{id, at})
	var drop []memFinished
	// Forgotten a tenth of keep at a time, so that the store's lock is
	// taken once for many runs.
	if len(q.ids)-q.head <= m.keep+m.keep/10 {
		m.fmu.Unlock()
		return
	}
	for len(q.ids)-q.head > m.keep {
		drop = append(drop, q.ids[q.head])
		q.ids[q.head] = memFinished{}
		q.head++
	}
	if q.head > len(q.ids)/2 {
		q.ids = append(q.ids[:0], q.ids[q.head:]...)
		q.head = 0
	}
	m.fmu.Unlock()
	if len(drop) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range drop {
		r := m.runs[f.id]
		if r == nil {
			continue // pruned already
		}
		r.mu.Lock()
		// A run resumed since is not dropped: it was queued again when it
		// finished again.
		still := r.head.Status.Final() && r.head.FinishedAt.Equal(f.at)
		r.mu.Unlock()
		if still {
			delete(m.runs, f.id)
		}
	}
}
