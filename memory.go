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
// is shared.
type MemoryStorage struct {
	mu     sync.Mutex
	runs   map[string]*memRun
	closed bool
}

// memRun is a stored run and the buffers its copy lives in, reused by the
// next Update of the run.
type memRun struct {
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

// lock locks m, or returns an error wrapping ErrClosed after Close.
func (m *MemoryStorage) lock() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errMemoryClosed
	}
	return nil
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
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.runs[run.ID]; ok {
		return fmt.Errorf("%w: %s", ErrRunExists, run.ID)
	}
	run.Version = 1
	run.LeaseUntil = time.Time{}
	if run.Owner != "" {
		run.LeaseUntil = time.Now().Add(lease)
	}
	c := new(memRun)
	c.set(run)
	m.runs[run.ID] = c
	return nil
}

// Get implements [Storage].
func (m *MemoryStorage) Get(_ context.Context, id string) (*Run, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	r, ok := m.runs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrRunNotFound, id)
	}
	return r.run.Clone(), nil
}

// List implements [Storage].
func (m *MemoryStorage) List(_ context.Context, f Filter) (*RunPage, error) {
	after, err := ParseCursor(f.Cursor)
	if err != nil {
		return nil, err
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	var match []*Run
	for _, r := range m.runs {
		if f.Matches(&r.run) && (after == nil || after.Before(&r.run)) {
			match = append(match, &r.run)
		}
	}
	slices.SortFunc(match, compareNewestFirst)
	n := min(f.PageSize(), len(match))
	page := &RunPage{Runs: make([]*Run, n)}
	for i := range n {
		page.Runs[i] = match[i].Clone()
	}
	m.mu.Unlock()
	if n < len(match) {
		page.Next = MakeCursor(page.Runs[n-1])
	}
	return page, nil
}

// Update implements [Storage].
func (m *MemoryStorage) Update(_ context.Context, run *Run, lease time.Duration) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	stored, ok := m.runs[run.ID]
	if !ok {
		return fmt.Errorf("%w: %q", ErrRunNotFound, run.ID)
	}
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
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	stored, ok := m.runs[p.ID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrRunNotFound, p.ID)
	}
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
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	now := time.Now()
	var out []*Run
	for _, stored := range m.runs {
		if p.Limit > 0 && len(out) >= p.Limit {
			break
		}
		cur := &stored.run
		if (cur.Status != StatusRunning && cur.Status != StatusPending) || cur.Owner == p.Owner ||
			!slices.Contains(p.Workflows, cur.Workflow) || !claimable(cur, p.Owner, now) {
			continue
		}
		cur.Owner, cur.LeaseUntil = p.Owner, now.Add(p.Lease)
		cur.Version++
		out = append(out, cur.Clone())
	}
	return out, nil
}

// Extend implements [Storage].
func (m *MemoryStorage) Extend(_ context.Context, p ExtendParams) ([]string, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	until := time.Now().Add(p.Lease)
	var lost []string
	for _, id := range p.IDs {
		cur, ok := m.runs[id]
		if !ok || cur.run.Owner != p.Owner || p.Owner == "" {
			lost = append(lost, id)
			continue
		}
		cur.run.LeaseUntil = until
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
