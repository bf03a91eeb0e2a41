package flux

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MemoryStorage is the in-memory [Storage], the default of a zero
// [Config]. It is for development and tests: runs are lost with the process.
// Like every store it keeps copies: nothing a caller gives it or gets from it
// is shared. Each run has a lock of its own, so that copying one run never
// holds up the others.
type MemoryStorage struct {
	mu     sync.RWMutex // over runs and closed
	runs   map[string]*memRun
	closed bool
}

// memRun is a stored run and the buffers its copy lives in, reused by the
// next Update of the run.
type memRun struct {
	mu   sync.Mutex
	run  Run
	buf  []byte
	atts []Attempt
}

func (m *memRun) set(r *Run) { m.buf, m.atts = copyRun(&m.run, r, m.buf, m.atts, 1) }

// NewMemoryStorage returns an empty in-memory storage.
func NewMemoryStorage() *MemoryStorage {
	return &MemoryStorage{runs: make(map[string]*memRun)}
}

var _ Storage = (*MemoryStorage)(nil)

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

// Close implements [Storage]: it drops every run.
func (m *MemoryStorage) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed, m.runs = true, nil
	return nil
}

// Create implements [Storage].
func (m *MemoryStorage) Create(_ context.Context, run *Run, lease time.Duration) error {
	c := new(memRun)
	c.set(run) // outside the store's lock: the copy is the costly part
	c.run.Version, c.run.LeaseUntil = 1, time.Time{}
	if run.Owner != "" {
		c.run.LeaseUntil = time.Now().Add(lease)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch _, ok := m.runs[run.ID]; {
	case m.closed:
		return errMemoryClosed
	case ok:
		return fmt.Errorf("%w: %s", ErrRunExists, run.ID)
	}
	m.runs[run.ID] = c
	run.Version, run.LeaseUntil = 1, c.run.LeaseUntil
	return nil
}

// Get implements [Storage].
func (m *MemoryStorage) Get(_ context.Context, id string) (*Run, error) {
	r, err := m.find(id)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	return r.run.Clone(), nil
}

// List implements [Storage].
func (m *MemoryStorage) List(_ context.Context, f Filter) (*RunPage, error) {
	after, err := ParseCursor(f.Cursor)
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
		if f.Matches(&r.run) && (after == nil || after.Before(&r.run)) {
			match = append(match, hit{r, Run{ID: r.run.ID, CreatedAt: r.run.CreatedAt}})
		}
		r.mu.Unlock()
	}
	slices.SortFunc(match, func(a, b hit) int { return compareNewestFirst(&a.key, &b.key) })
	n := min(f.PageSize(), len(match))
	page := &RunPage{Runs: make([]*Run, n)}
	for i, h := range match[:n] {
		h.r.mu.Lock()
		page.Runs[i] = h.r.run.Clone()
		h.r.mu.Unlock()
	}
	if n < len(match) {
		page.Next = MakeCursor(page.Runs[n-1])
	}
	return page, nil
}

// Update implements [Storage].
func (m *MemoryStorage) Update(_ context.Context, run *Run, lease time.Duration) error {
	stored, err := m.find(run.ID)
	if err != nil {
		return err
	}
	defer stored.mu.Unlock()
	cur := &stored.run
	switch {
	case cur.Owner != run.Owner && cur.Owner != "":
		return fmt.Errorf("%w: run %s is owned by %s", ErrLeaseLost, run.ID, cur.Owner)
	case cur.Version != run.Version:
		return fmt.Errorf("%w: run %s is at version %d, not %d", ErrConflict, run.ID, cur.Version, run.Version)
	}
	run.Version++
	switch {
	case lease < 0:
		run.Owner, run.LeaseUntil = "", time.Time{}
	case lease > 0:
		run.LeaseUntil = time.Now().Add(lease)
	default:
		run.LeaseUntil = cur.LeaseUntil
	}
	id, workflow, created := cur.ID, cur.Workflow, cur.CreatedAt
	stored.set(run)
	cur.ID, cur.Workflow, cur.CreatedAt = id, workflow, created
	return nil
}

// claimable reports whether owner may take the lease of r now.
func claimable(r *Run, owner string, now time.Time) bool {
	return r.Owner == "" || r.Owner == owner || !now.Before(r.LeaseUntil) || Supersedes(owner, r.Owner)
}

// Claim implements [Storage].
func (m *MemoryStorage) Claim(_ context.Context, p ClaimParams) (*Run, error) {
	stored, err := m.find(p.ID)
	if err != nil {
		return nil, err
	}
	defer stored.mu.Unlock()
	cur := &stored.run
	now := time.Now()
	if !claimable(cur, p.Owner, now) {
		return nil, fmt.Errorf("%w: run %s is leased by %s until %s", ErrRunActive, p.ID, cur.Owner, cur.LeaseUntil.Format(time.RFC3339Nano))
	}
	cur.Owner, cur.LeaseUntil = p.Owner, now.Add(p.Lease)
	cur.Version++
	return cur.Clone(), nil
}

// ClaimExpired implements [Storage].
func (m *MemoryStorage) ClaimExpired(_ context.Context, p ClaimExpiredParams) ([]*Run, error) {
	runs, err := m.all()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []*Run
	for _, stored := range runs {
		if p.Limit > 0 && len(out) >= p.Limit {
			break
		}
		stored.mu.Lock()
		cur := &stored.run
		if (cur.Status == StatusRunning || cur.Status == StatusPending) && cur.Owner != p.Owner &&
			slices.Contains(p.Workflows, cur.Workflow) && claimable(cur, p.Owner, now) {
			cur.Owner, cur.LeaseUntil = p.Owner, now.Add(p.Lease)
			cur.Version++
			out = append(out, cur.Clone())
		}
		stored.mu.Unlock()
	}
	return out, nil
}

// Extend implements [Storage].
func (m *MemoryStorage) Extend(_ context.Context, p ExtendParams) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, errMemoryClosed
	}
	until := time.Now().Add(p.Lease)
	var lost []string
	for _, id := range p.IDs {
		cur, ok := m.runs[id]
		if !ok {
			lost = append(lost, id)
			continue
		}
		cur.mu.Lock()
		if cur.run.Owner != p.Owner || p.Owner == "" {
			lost = append(lost, id)
		} else {
			cur.run.LeaseUntil = until
		}
		cur.mu.Unlock()
	}
	return lost, nil
}

// Cursor is a position in the newest-first order of runs: by creation time,
// then by ID, both descending.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// Before reports whether the cursor's run sorts before r, so r belongs on a
// later page.
func (c *Cursor) Before(r *Run) bool {
	if !r.CreatedAt.Equal(c.CreatedAt) {
		return r.CreatedAt.Before(c.CreatedAt)
	}
	return r.ID < c.ID
}

// MakeCursor returns the cursor of the page that follows run r.
func MakeCursor(r *Run) string {
	s := strconv.FormatInt(r.CreatedAt.UnixNano(), 10) + ":" + r.ID
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// ParseCursor decodes a cursor made by [MakeCursor]; "" gives nil.
func ParseCursor(s string) (*Cursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		ns, id, ok := strings.Cut(string(b), ":")
		if n, perr := strconv.ParseInt(ns, 10, 64); ok && perr == nil {
			return &Cursor{CreatedAt: time.Unix(0, n), ID: id}, nil
		}
	}
	return nil, fmt.Errorf("flux: invalid list cursor %q: pass RunPage.Next unchanged", s)
}

func compareNewestFirst(a, b *Run) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}
