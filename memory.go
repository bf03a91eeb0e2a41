package flux

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/wake"
)

// MemoryStorage is the in-memory [Storage], the default of a zero
// [Config]. It is for development and tests: runs are lost with the process.
// Like every store it keeps copies: nothing a caller gives it or gets from it
// is shared. Each run has a lock of its own, so that copying one run never
// holds up the others.
//
// So that a long-lived process does not grow without bound, it keeps the
// newest [DefaultMemoryKeepFinished] finished runs of each outcome
// (completed or cancelled; failed) and forgets older ones as new ones
// finish, a tenth of the bound at a time; [MemoryKeepFinished] changes the
// bound. The engine's
// [Retention] applies as well.
//
// It keeps signals ([driver.Signaler]) and schedules ([driver.Scheduler])
// too, and finds due waiting runs without looking at those still asleep
// (see memory_waits.go).
type MemoryStorage struct {
	mu   sync.RWMutex // over runs, unfinished and closed
	runs map[string]*memRun
	// unfinished are the runs ClaimExpired scans: the unfinished runs but
	// the free waiting ones, which are in waits.
	unfinished map[string]*memRun
	closed     bool

	limitMu sync.Mutex // held by ClaimExpired under limits

	wmu   sync.Mutex                      // over waits
	waits map[string]*memWakeQueue        // the free waiting runs of each workflow, by wake time
	kmu   sync.Mutex                      // over keys
	keys  map[string]map[*memRun]struct{} // the unfinished runs by wait key

	smu       sync.Mutex // over schedules
	schedules map[string]driver.Schedule

	keep     int          // most finished runs kept of each outcome; <= 0: all
	fmu      sync.Mutex   // over finished
	finished [2]memFinish // completed or cancelled; failed

	// changes numbers the writes that Changes reports. A write holds
	// changeMu for reading from taking its number until it is visible, so
	// that Changes, holding it for writing, sees no number still in flight.
	changeMu sync.RWMutex
	changes  atomic.Uint64

	wakes wake.Broadcast // engines to tell of runs that need an owner
}

// Wakeups implements [driver.Waker].
func (m *MemoryStorage) Wakeups() (<-chan struct{}, func()) { return m.wakes.Subscribe() }

// memRun is a stored run: its header (head, whose Data is the data before
// the first node), its nodes, and the data each node left.
type memRun struct {
	mu      sync.Mutex
	head    driver.Run // its Signals are in signals
	steps   []driver.StepState
	data    []memData // by node index
	changed uint64    // the number of its last write, for Changes

	// never: the run waits for a signal only (head.WakeAt is zero).
	never   bool
	signals []driver.Signal // by Seq, their payloads the store's own
	// wgen is the run's wait generation (see track); queued says whether
	// an entry of this generation is in its workflow's wake queue; keyed
	// is the wait key it is indexed under.
	wgen   atomic.Uint64
	queued bool
	keyed  string
}

// NewMemoryStorage returns an empty in-memory storage.
func NewMemoryStorage(opts ...MemoryOption) *MemoryStorage {
	m := &MemoryStorage{runs: make(map[string]*memRun), unfinished: make(map[string]*memRun), keep: DefaultMemoryKeepFinished,
		waits: make(map[string]*memWakeQueue), keys: make(map[string]map[*memRun]struct{})}
	for _, o := range opts {
		if o != nil {
			o(m)
		}
	}
	return m
}

var _ driver.Store = (*MemoryStorage)(nil)

var errMemoryClosed = fmt.Errorf("flux: memory storage is closed: %w", ErrClosed)

// find returns the stored run id, locked, or an error wrapping
// ErrRunNotFound or ErrClosed.
func (m *MemoryStorage) find(id string) (*memRun, error) {
	m.mu.RLock()
	r, ok := m.runs[id]
	closed := m.closed
	m.mu.RUnlock()
	switch {
	case closed:
		return nil, errMemoryClosed
	case !ok:
		return nil, fmt.Errorf("%w: %q", ErrRunNotFound, id)
	}
	r.mu.Lock()
	return r, nil
}

// all returns the stored runs, or an error after Close.
func (m *MemoryStorage) all() ([]*memRun, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, errMemoryClosed
	}
	runs := make([]*memRun, 0, len(m.runs))
	for _, r := range m.runs {
		runs = append(runs, r)
	}
	return runs, nil
}

// Close implements [driver.Store]: it drops every run and schedule.
func (m *MemoryStorage) Close() error {
	m.mu.Lock()
	m.closed, m.runs, m.unfinished = true, nil, nil
	m.mu.Unlock()
	m.wmu.Lock()
	m.waits = nil
	m.wmu.Unlock()
	m.kmu.Lock()
	m.keys = nil
	m.kmu.Unlock()
	m.smu.Lock()
	m.schedules = nil
	m.smu.Unlock()
	return nil
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// memData is the data a node left, kept by value: a snapshot, or a patch
// (Offset, Delete, and bytes to insert); none when !set.
type memData struct {
	set, patch     bool
	offset, delete int
	bytes          []byte
}

// keepData returns a copy of d, sharing nothing with it.
func keepData(d *driver.NodeData) memData {
	if d.Patch != nil {
		return memData{set: true, patch: true, offset: d.Patch.Offset, delete: d.Patch.Delete, bytes: cloneBytes(d.Patch.Insert)}
	}
	return memData{set: true, bytes: cloneBytes(d.Snapshot)}
}

// Create implements [driver.Store].
func (m *MemoryStorage) Create(_ context.Context, p driver.CreateParams) (driver.Written, error) {
	src := p.Run
	c := &memRun{head: *src}
	c.head.Steps, c.head.Input, c.head.Data, c.head.Signals = nil, cloneBytes(src.Input), cloneBytes(src.Data), nil
	c.setWake(src.Status, src.WakeAt, c.head.SignalSeq)
	c.steps = make([]driver.StepState, len(src.Steps))
	for i, s := range src.Steps {
		s.Attempts = slices.Clone(s.Attempts)
		c.steps[i] = s
	}
	c.data = make([]memData, len(src.Steps))
	for _, d := range p.Data {
		if d.Index < 0 || d.Index >= len(c.data) {
			return driver.Written{}, fmt.Errorf("flux: creating run %s: data of node %d, which it does not have", src.ID, d.Index)
		}
		c.data[d.Index] = keepData(&d)
	}
	c.head.Summary = driver.Summarize(c.steps)
	c.head.Version, c.head.LeaseUntil = 1, time.Time{}
	if src.Owner != "" {
		c.head.LeaseUntil = time.Now().Add(p.Lease)
	}
	m.changeMu.RLock()
	defer m.changeMu.RUnlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	switch _, ok := m.runs[src.ID]; {
	case m.closed:
		return driver.Written{}, errMemoryClosed
	case ok:
		return driver.Written{}, fmt.Errorf("%w: %s", ErrRunExists, src.ID)
	}
	c.changed = m.changes.Add(1)
	m.runs[src.ID] = c
	if memScanned(&c.head) {
		m.unfinished[src.ID] = c
	}
	c.mu.Lock()
	m.track(c)
	c.mu.Unlock()
	if driver.NeedsOwner(c.head.Status, c.head.Owner) {
		defer m.wakes.Signal()
	}
	if c.head.Status.Final() {
		defer m.finish(src.ID, c.head.Status, c.head.FinishedAt) // after m.mu is released
	}
	return driver.Written{Version: 1, LeaseUntil: c.head.LeaseUntil}, nil
}

// Checkpoint implements [driver.Store].
func (m *MemoryStorage) Checkpoint(_ context.Context, p driver.CheckpointParams) (driver.Written, error) {
	m.changeMu.RLock()
	r, err := m.find(p.ID)
	if err != nil {
		m.changeMu.RUnlock()
		return driver.Written{}, err
	}
	wasScanned := memScanned(&r.head)
	w, finished, err := r.checkpoint(p)
	moved := false
	if err == nil {
		r.changed = m.changes.Add(1)
		m.track(r)
		moved = memScanned(&r.head) != wasScanned
	}
	r.mu.Unlock()
	m.changeMu.RUnlock()
	if moved {
		m.place(p.ID, r)
	}
	if finished {
		m.finish(p.ID, p.Header.Status, p.Header.FinishedAt)
	}
	if err == nil && p.Lease < 0 && p.Header != nil && !p.Header.Status.Final() {
		m.wakes.Signal()
	}
	return w, err
}

// checkpoint applies p to r, which the caller has locked, and tells
// whether the run has just finished.
func (r *memRun) checkpoint(p driver.CheckpointParams) (driver.Written, bool, error) {
	if err := r.check(p.ID, p.Owner, p.Version); err != nil {
		return driver.Written{}, false, err
	}
	nodes := len(r.steps)
	if p.Header != nil {
		nodes = p.Header.Nodes
	}
	for _, n := range p.Nodes { // before any change: a failed write changes nothing
		if n.Index < 0 || n.Index >= nodes {
			return driver.Written{}, false, fmt.Errorf("flux: checkpoint of run %s changes node %d of %d", p.ID, n.Index, nodes)
		}
	}
	finished := false
	if h := p.Header; h != nil {
		finished = h.Status.Final() && !r.head.Status.Final()
		r.head.Status, r.head.Error, r.head.Fingerprint = h.Status, h.Error, h.Fingerprint
		r.head.UpdatedAt, r.head.FinishedAt, r.head.Summary = h.UpdatedAt, h.FinishedAt, h.Summary
		r.head.WaitKey = h.WaitKey
		r.setWake(h.Status, h.WakeAt, h.SignalSeq)
		if h.Nodes != len(r.steps) {
			r.steps = slices.Grow(r.steps[:min(h.Nodes, len(r.steps))], h.Nodes)[:h.Nodes]
			r.data = slices.Grow(r.data[:min(h.Nodes, len(r.data))], h.Nodes)[:h.Nodes]
		}
	}
	for _, n := range p.Nodes {
		s := &r.steps[n.Index]
		if n.Replace {
			s.Attempts, r.data[n.Index] = nil, memData{}
		}
		s.Name, s.Kind, s.Status = n.Name, n.Kind, n.Status
		s.StartedAt, s.FinishedAt, s.InFlight = n.StartedAt, n.FinishedAt, n.InFlight
		if len(n.Attempts) > 0 {
			s.Attempts = append(slices.Clip(s.Attempts), n.Attempts...)
		}
		if n.Reset {
			r.data[n.Index] = memData{}
		}
		if n.Data != nil {
			r.data[n.Index] = keepData(n.Data)
		}
	}
	r.consume(p.Consume)
	return r.written(p.Lease), finished, nil
}

// check refuses a write by owner at version to run id unless the run is
// owner's or free, at that version.
func (r *memRun) check(id, owner string, version int64) error {
	switch {
	case r.head.Owner != owner && r.head.Owner != "":
		return fmt.Errorf("%w: run %s is owned by %s", ErrLeaseLost, id, r.head.Owner)
	case r.head.Version != version:
		return fmt.Errorf("%w: run %s is at version %d, not %d", ErrConflict, id, r.head.Version, version)
	}
	return nil
}

// written records a write with the given lease mode.
func (r *memRun) written(lease time.Duration) driver.Written {
	r.head.Version++
	switch {
	case lease < 0:
		r.head.Owner, r.head.LeaseUntil = "", time.Time{}
	case lease > 0 && r.head.Owner != "":
		r.head.LeaseUntil = time.Now().Add(lease)
	}
	return driver.Written{Version: r.head.Version, LeaseUntil: r.head.LeaseUntil}
}

// datas returns the node data up to node last, in order.
func (r *memRun) datas(last int) []driver.NodeData {
	var out []driver.NodeData
	for i, d := range r.data[:min(last+1, len(r.data))] {
		switch {
		case !d.set:
		case d.patch:
			out = append(out, driver.NodeData{Index: i, Patch: &driver.Patch{Offset: d.offset, Delete: d.delete, Insert: d.bytes}})
		default:
			out = append(out, driver.NodeData{Index: i, Snapshot: d.bytes})
		}
	}
	return out
}

// whole returns a copy of the run with its nodes and current data.
func (r *memRun) whole() (*driver.Run, error) {
	c := r.head.Clone()
	data, err := driver.Rebuild(r.head.Data, r.datas(len(r.data)-1))
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", r.head.ID, err)
	}
	c.Data = data
	c.Steps = make([]driver.StepState, len(r.steps))
	for i, s := range r.steps {
		s.Attempts = slices.Clone(s.Attempts)
		c.Steps[i] = s
	}
	c.Signals = r.copySignals()
	return c, nil
}

// Get implements [driver.Store].
func (m *MemoryStorage) Get(_ context.Context, id string) (*Run, error) {
	r, err := m.find(id)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	return r.whole()
}

// NodeData implements [driver.Store].
func (m *MemoryStorage) NodeData(_ context.Context, p driver.NodeDataParams) (json.RawMessage, error) {
	r, err := m.find(p.ID)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	if p.Index < -1 || p.Index >= len(r.steps) {
		return nil, fmt.Errorf("flux: run %s has no node %d", p.ID, p.Index)
	}
	return driver.Rebuild(r.head.Data, r.datas(p.Index))
}

// List implements [driver.Store].
func (m *MemoryStorage) List(_ context.Context, f Filter) (*RunPage, error) {
	after, err := driver.ParseCursor(f.Cursor)
	if err != nil {
		return nil, err
	}
	runs, err := m.all()
	if err != nil {
		return nil, err
	}
	// Sort on the keys, and copy only the runs of the page.
	type hit struct {
		r   *memRun
		key Run // ID and CreatedAt
	}
	var match []hit
	for _, r := range runs {
		r.mu.Lock()
		if f.Matches(&r.head) && (after == nil || after.Before(&r.head)) {
			match = append(match, hit{r, Run{ID: r.head.ID, CreatedAt: r.head.CreatedAt}})
		}
		r.mu.Unlock()
	}
	slices.SortFunc(match, func(a, b hit) int { return driver.CompareNewestFirst(&a.key, &b.key) })
	n := min(f.PageSize(), len(match))
	page := &RunPage{Runs: make([]*Run, n)}
	for i, h := range match[:n] {
		h.r.mu.Lock()
		c := h.r.head.Clone()
		c.Data = nil
		h.r.mu.Unlock()
		page.Runs[i] = c
	}
	if n < len(match) {
		page.Next = driver.MakeCursor(page.Runs[n-1])
	}
	return page, nil
}

// claimable reports whether owner may take the lease of r now.
func claimable(r *driver.Run, owner string, now time.Time) bool {
	return r.Owner == "" || r.Owner == owner || !now.Before(r.LeaseUntil) || driver.Supersedes(owner, r.Owner)
}

// claim gives owner the lease of r, locked, and returns the whole run.
func (r *memRun) claim(owner string, lease time.Duration, now time.Time) (*driver.Run, error) {
	whole, err := r.whole()
	if err != nil {
		return nil, err
	}
	r.head.Owner, r.head.LeaseUntil = owner, now.Add(lease)
	r.head.Version++
	whole.Owner, whole.LeaseUntil, whole.Version = r.head.Owner, r.head.LeaseUntil, r.head.Version
	return whole, nil
}

// Claim implements [driver.Store].
func (m *MemoryStorage) Claim(_ context.Context, p driver.ClaimParams) (*Run, error) {
	r, err := m.find(p.ID)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if !claimable(&r.head, p.Owner, now) {
		defer r.mu.Unlock()
		return nil, fmt.Errorf("%w: run %s is leased by %s until %s", ErrRunActive, p.ID, r.head.Owner, r.head.LeaseUntil.Format(time.RFC3339Nano))
	}
	wasScanned := memScanned(&r.head)
	whole, err := r.claim(p.Owner, p.Lease, now)
	m.track(r)
	moved := memScanned(&r.head) != wasScanned
	r.mu.Unlock()
	if moved {
		m.place(p.ID, r)
	}
	return whole, err
}

// Extend implements [driver.Store].
func (m *MemoryStorage) Extend(_ context.Context, p driver.ExtendParams) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, errMemoryClosed
	}
	until := time.Now().Add(p.Lease)
	var lost []string
	for _, id := range p.IDs {
		r, ok := m.runs[id]
		if !ok {
			lost = append(lost, id)
			continue
		}
		r.mu.Lock()
		if r.head.Owner != p.Owner || p.Owner == "" {
			lost = append(lost, id)
		} else {
			r.head.LeaseUntil = until
		}
		r.mu.Unlock()
	}
	return lost, nil
}

// Release implements [driver.Store].
func (m *MemoryStorage) Release(_ context.Context, p driver.ReleaseParams) error {
	r, err := m.find(p.ID)
	if err != nil {
		return err
	}
	if r.head.Owner != p.Owner || p.Owner == "" {
		defer r.mu.Unlock()
		return fmt.Errorf("%w: run %s is owned by %q, not %q", ErrLeaseLost, p.ID, r.head.Owner, p.Owner)
	}
	wasScanned := memScanned(&r.head)
	r.written(driver.ReleaseLease)
	m.track(r)
	moved, unfinished := memScanned(&r.head) != wasScanned, !r.head.Status.Final()
	r.mu.Unlock()
	if moved {
		m.place(p.ID, r)
	}
	if unfinished {
		m.wakes.Signal()
	}
	return nil
}

// Cancel implements [driver.Store].
func (m *MemoryStorage) Cancel(_ context.Context, p driver.CancelParams) error {
	m.changeMu.RLock()
	r, err := m.find(p.ID)
	if err != nil {
		m.changeMu.RUnlock()
		return err
	}
	cancelled := false
	defer func() {
		if cancelled {
			r.changed = m.changes.Add(1)
			m.track(r)
		}
		r.mu.Unlock()
		m.changeMu.RUnlock()
		if cancelled {
			m.place(p.ID, r)
			m.finish(p.ID, StatusCancelled, p.At)
		}
	}()
	switch r.head.Status {
	case StatusCancelled:
		return nil
	case StatusCompleted, StatusFailed:
		return fmt.Errorf("%w: cannot cancel run %s: it is %s", ErrRunFinished, p.ID, r.head.Status)
	}
	r.head.Status, r.head.Error, r.head.UpdatedAt, r.head.FinishedAt = StatusCancelled, p.Error, p.At, p.At
	r.head.WakeAt, r.never = time.Time{}, false
	for i := range r.steps {
		r.steps[i].InFlight = time.Time{}
	}
	r.head.Summary = driver.Summarize(r.steps)
	r.written(driver.ReleaseLease)
	cancelled = true
	return nil
}

// Prune implements [driver.Store].
func (m *MemoryStorage) Prune(_ context.Context, p driver.PruneParams) (int, error) {
	runs, err := m.all()
	if err != nil {
		return 0, err
	}
	type old struct {
		id       string
		finished time.Time
	}
	var match []old
	for _, r := range runs {
		r.mu.Lock()
		h := &r.head
		if h.Status == p.Status && h.Status.Final() && h.FinishedAt.Before(p.FinishedBefore) &&
			(p.Workflow == "" || h.Workflow == p.Workflow) && !slices.Contains(p.Except, h.Workflow) {
			match = append(match, old{h.ID, h.FinishedAt})
		}
		r.mu.Unlock()
	}
	slices.SortFunc(match, func(a, b old) int { return a.finished.Compare(b.finished) })
	match = match[:min(len(match), p.PruneLimit())]
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, errMemoryClosed
	}
	n := 0
	for _, o := range match {
		r := m.runs[o.id]
		if r == nil {
			continue
		}
		r.mu.Lock()
		still := r.head.Status == p.Status // not resumed meanwhile
		r.mu.Unlock()
		if still {
			delete(m.runs, o.id)
			n++
		}
	}
	return n, nil
}
