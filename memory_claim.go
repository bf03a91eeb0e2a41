package flux

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/flux-go/flux/driver"
)

// ClaimExpired implements [driver.Store]. It claims the due free waiting
// runs from the wake queues of p.Workflows first, then, scanning the other
// unfinished runs, the pending and running runs whose lease is free and
// the leased waiting runs whose lease expired and that are due, oldest
// first, pending runs within p.Limits.
func (m *MemoryStorage) ClaimExpired(_ context.Context, p driver.ClaimExpiredParams) (*driver.ClaimedRuns, error) {
	if len(p.Limits) > 0 {
		// Claims under limits count the runs executing: they are made
		// one call at a time, so that two cannot both take the last place.
		m.limitMu.Lock()
		defer m.limitMu.Unlock()
	}
	if m.isClosed() {
		return nil, errMemoryClosed
	}
	out := &driver.ClaimedRuns{}
	if len(p.Workflows) == 0 {
		return out, nil
	}
	now := time.Now()
	budget := p.Limit // runs left to claim; < 0: no bound
	if budget <= 0 {
		budget = -1
	}
	wfs := make(map[string]bool, len(p.Workflows))
	for _, wf := range p.Workflows {
		wfs[wf] = true
	}
	woken := m.claimDue(p.Owner, p.Lease, wfs, now, &budget, out)
	m.placeAll(woken) // before the scan, so that it counts them
	var scanNext time.Time
	if budget != 0 {
		next, err := m.claimScanned(p, wfs, now, &budget, out)
		if err != nil {
			return nil, err
		}
		scanNext = next
	}
	slices.SortFunc(out.Runs, func(a, b *Run) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	out.NextWake = earliest(m.nextWake(p.Workflows, now), scanNext)
	return out, nil
}

// earliest returns the earlier of a and b, ignoring zero times.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// isClosed reports whether Close was called.
func (m *MemoryStorage) isClosed() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.closed
}

// claimDue claims for owner the due runs of the wake queues of wfs, up to
// *budget, and returns them.
func (m *MemoryStorage) claimDue(owner string, lease time.Duration, wfs map[string]bool, now time.Time, budget *int, out *driver.ClaimedRuns) []*memRun {
	var due []memWake
	for wf := range wfs {
		n := -1
		if *budget >= 0 {
			n = *budget - len(due)
		}
		due = m.popDue(wf, now, n, due)
	}
	var woken []*memRun
	for _, e := range due {
		r := e.r
		r.mu.Lock()
		// A run changed since it was queued was queued again if it waits.
		if e.gen == r.wgen.Load() && r.head.Owner == "" && r.memDue(now) {
			r.queued = false // its entry is out of the queue
			if whole, err := r.claim(owner, lease, now); err != nil {
				out.Corrupt = append(out.Corrupt, err)
			} else {
				out.Runs = append(out.Runs, whole)
				woken = append(woken, r)
				if *budget > 0 {
					*budget--
				}
			}
			m.track(r)
		}
		r.mu.Unlock()
	}
	return woken
}

// placeAll puts runs in m.unfinished or takes them out, as their state says.
func (m *MemoryStorage) placeAll(runs []*memRun) {
	for _, r := range runs {
		r.mu.Lock()
		id := r.head.ID
		r.mu.Unlock()
		m.place(id, r)
	}
}

// memCounted reports whether run h counts against a Limit: unfinished and
// started or leased.
func memCounted(h *driver.Run) bool {
	return !h.Status.Final() && (h.Status == StatusRunning || h.Owner != "")
}

// memCount is how many runs of a limited workflow count, in all and by
// concurrency key.
type memCount struct {
	total int
	keys  map[string]int
}

func (c *memCount) add(key string) {
	c.total++
	c.keys[key]++
}

// admits reports whether pending run h may be claimed under l.
func (c *memCount) admits(l driver.Limit, h *driver.Run) bool {
	total, perKey := c.total, c.keys[h.ConcurrencyKey]
	if memCounted(h) { // counted already: claiming it adds nothing
		total, perKey = total-1, perKey-1
	}
	return (l.Max <= 0 || total < l.Max) && (l.PerKey <= 0 || perKey < l.PerKey)
}

// claimableBy reports whether a run found by the scan may be claimed by
// owner now, limits aside.
func (r *memRun) claimableBy(owner string, now time.Time) bool {
	h := &r.head
	return h.Owner != owner && claimable(h, owner, now) &&
		(h.Status == StatusPending || h.Status == StatusRunning || r.memDue(now))
}

// claimScanned claims for p.Owner, up to *budget, the claimable runs of
// m.unfinished (oldest first when a workflow has a limit), and returns the earliest wake time of the
// waiting runs among them whose lease expired but that are not due.
func (m *MemoryStorage) claimScanned(p driver.ClaimExpiredParams, wfs map[string]bool, now time.Time, budget *int, out *driver.ClaimedRuns) (time.Time, error) {
	limits := make(map[string]driver.Limit)
	counts := make(map[string]*memCount)
	for _, l := range p.Limits {
		if wfs[l.Workflow] && (l.Max > 0 || l.PerKey > 0) {
			limits[l.Workflow] = l
			counts[l.Workflow] = &memCount{keys: make(map[string]int)}
		}
	}
	type candidate struct {
		r       *memRun
		id      string
		created time.Time
	}
	var cands []candidate
	var next time.Time
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return time.Time{}, errMemoryClosed
	}
	// Without limits any claimable runs do, and the scan stops once it has
	// enough: a claim costs the runs it takes, not every unfinished run
	// (the engine asks for a few at a time while thousands wait).
	// Limited workflows are taken oldest first, so all are looked at.
	enough := func() bool { return len(limits) == 0 && *budget > 0 && len(cands) >= *budget }
	for id, r := range m.unfinished {
		if enough() {
			break
		}
		r.mu.Lock()
		h := &r.head
		if wfs[h.Workflow] {
			if c := counts[h.Workflow]; c != nil && memCounted(h) {
				c.add(h.ConcurrencyKey)
			}
			switch {
			case r.claimableBy(p.Owner, now):
				cands = append(cands, candidate{r, id, h.CreatedAt})
			case h.Status == StatusWaiting && !r.never && h.Owner != p.Owner && claimable(h, p.Owner, now):
				next = earliest(next, h.WakeAt)
			}
		}
		r.mu.Unlock()
	}
	m.mu.RUnlock()

	if len(limits) > 0 {
		slices.SortFunc(cands, func(a, b candidate) int {
			if c := a.created.Compare(b.created); c != 0 {
				return c
			}
			return strings.Compare(a.id, b.id)
		})
	}
	var moved []*memRun
	for _, c := range cands {
		if *budget == 0 {
			break
		}
		r := c.r
		r.mu.Lock()
		h := &r.head
		ok := r.claimableBy(p.Owner, now)
		lim, limited := limits[h.Workflow]
		pending := h.Status == StatusPending
		if ok && pending && limited {
			ok = counts[h.Workflow].admits(lim, h)
		}
		if ok {
			wasCounted := memCounted(h)
			if whole, err := r.claim(p.Owner, p.Lease, now); err != nil {
				out.Corrupt = append(out.Corrupt, err)
			} else {
				out.Runs = append(out.Runs, whole)
				if *budget > 0 {
					*budget--
				}
				if limited && !wasCounted {
					counts[h.Workflow].add(h.ConcurrencyKey)
				}
				if h.Status == StatusWaiting {
					// Taken out of the scan by a write since: put back.
					moved = append(moved, r)
				}
				m.track(r)
			}
		}
		r.mu.Unlock()
	}
	m.placeAll(moved)
	return next, nil
}
