package flux

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// Kind tells a step from a commit.
type Kind string

// Node kinds.
const (
	KindStep   Kind = "step"
	KindCommit Kind = "commit"
)

// Run is the stored, untyped view of a run: what [Storage] keeps and
// [Engine.Get] and [Engine.List] return. Input and Data are JSON.
type Run struct {
	ID          string          `json:"id"`
	Workflow    string          `json:"workflow"`
	Fingerprint string          `json:"fingerprint"` // of the definition the run started with
	Status      Status          `json:"status"`
	Input       json.RawMessage `json:"input"`
	Data        json.RawMessage `json:"data"` // snapshot after the last finished node
	Steps       []StepState     `json:"steps"`
	Error       string          `json:"error,omitempty"`
	CreatedAt   time.Time       `json:"createdAt"`
	UpdatedAt   time.Time       `json:"updatedAt"`
	FinishedAt  time.Time       `json:"finishedAt,omitzero"`

	// Version is incremented by every successful Storage write; writes are
	// compare-and-set on it.
	Version int64 `json:"version"`
	// Owner is the engine holding the run's lease, "" when none does.
	Owner string `json:"owner,omitempty"`
	// LeaseUntil is when Owner's lease expires, by the storage's clock.
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
}

// StepState is the record of one node of a run.
type StepState struct {
	Name       string          `json:"name"`
	Kind       Kind            `json:"kind"`
	Status     Status          `json:"status"`
	Attempts   []Attempt       `json:"attempts,omitempty"`
	StartedAt  time.Time       `json:"startedAt,omitzero"`
	FinishedAt time.Time       `json:"finishedAt,omitzero"`
	Data       json.RawMessage `json:"data,omitempty"` // snapshot after the node finished
	// InFlight is when the node's attempt in flight started, recorded before
	// the attempt runs; zero when none is. A run whose owner crashed keeps
	// it: the engine that continues the run records that attempt as
	// interrupted.
	InFlight time.Time `json:"inFlight,omitzero"`
}

// Attempt is one execution of a node's handler.
type Attempt struct {
	Number    int           `json:"number"` // 1-based
	StartedAt time.Time     `json:"startedAt"`
	Duration  time.Duration `json:"duration"`
	Error     string        `json:"error,omitempty"`
	Stack     string        `json:"stack,omitempty"` // when the handler panicked
	// Interrupted marks an attempt cut off before its handler returned: by
	// Engine.Cancel, Engine.Close, the caller's context, or a crash of the
	// engine running it (then Duration is unknown and zero). Error says which.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Clone returns a deep copy of r: it shares no slice, not even the bytes
// of its JSON, with r.
func (r *Run) Clone() *Run {
	c := new(Run)
	copyRun(c, r, nil, nil, 0)
	return c
}

// copyRun makes dst a deep copy of src and returns the buffers that hold its
// JSON bytes and attempts. It reuses dst.Steps, buf and atts when they are
// large enough, so a store may keep one copy of a run and overwrite it in
// place; with spare 1, buffers it makes have room for the run to grow
// (half as much again, and an attempt for every other node). The attempts of each step are
// capped, so that appending to them never writes into the next step's.
func copyRun(dst, src *Run, buf []byte, atts []Attempt, spare int) ([]byte, []Attempt) {
	steps := dst.Steps[:0]
	*dst = *src
	size, n := len(src.Input)+len(src.Data), 0
	for i := range src.Steps {
		size += len(src.Steps[i].Data)
		n += len(src.Steps[i].Attempts)
	}
	if cap(buf) < size {
		buf = make([]byte, 0, size+spare*(size/2+64))
	}
	if cap(atts) < n {
		atts = make([]Attempt, n, n+spare*(len(src.Steps)+1)/2)
	}
	buf, atts = buf[:0], atts[:n]
	dup := func(b json.RawMessage) json.RawMessage {
		if b == nil {
			return nil
		}
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	dst.Input, dst.Data = dup(src.Input), dup(src.Data)
	if src.Steps == nil {
		dst.Steps = nil
		return buf, atts
	}
	dst.Steps = append(steps, src.Steps...)
	off := 0
	for i := range dst.Steps {
		s := &dst.Steps[i]
		s.Data = dup(s.Data)
		if s.Attempts != nil {
			k := copy(atts[off:], s.Attempts)
			s.Attempts = atts[off : off+k : off+k]
			off += k
		}
	}
	return buf, atts
}

// Storage keeps runs. The engine depends on nothing else for state, so an
// adapter (memory, SQLite, PostgreSQL) is all it takes to move runs between
// processes. Implementations must be safe for concurrent use and pass the
// conformance suite in package storagetest.
//
// Writes that advance a run are compare-and-set on Run.Version and Run.Owner,
// so two engines can never both advance one run.
//
// A store keeps no reference to what callers give it or get from it: a
// caller may change any part of a run, down to the bytes of its JSON, after
// Create, Update or Get without changing the store.
//
// Owners: an engine writes its owner as its ID, "#", and a nonce drawn when
// it starts ("billing-1#9f3a61c2"; see [OwnerEngine]). A lease held by an
// owner of the same engine ID but another nonce was taken by an earlier
// start of that engine, which has stopped: Claim and ClaimExpired take it
// over at once, without waiting for it to expire.
type Storage interface {
	// Create stores a new run, setting its Version to 1 and, when run.Owner
	// is set, its lease to the storage's now + lease. If a run with the
	// same ID exists it returns an error wrapping ErrRunExists and stores
	// nothing.
	Create(ctx context.Context, run *Run, lease time.Duration) error

	// Get returns the run with the given ID, or an error wrapping
	// ErrRunNotFound, or ErrCorrupt naming the run if it cannot be decoded.
	Get(ctx context.Context, id string) (*Run, error)

	// List returns runs matching the filter, newest first: by CreatedAt,
	// then by ID, both descending.
	List(ctx context.Context, f Filter) (*RunPage, error)

	// Update replaces the stored run with run if the stored Version equals
	// run.Version and the stored Owner is run.Owner or ""; it then increments
	// run.Version. A different owner gives ErrLeaseLost (even if the version
	// differs too), a different version ErrConflict, an unknown ID
	// ErrRunNotFound; a failed Update changes nothing. With lease > 0 the owner's
	// lease is extended to the storage's now + lease, with lease == 0 it is
	// kept, and with ReleaseLease the lease is released: the stored Owner
	// and run.Owner become "". On success run.LeaseUntil is the stored one.
	// ID, Workflow and CreatedAt are set by Create: Update must not be used
	// to change them, and a store may keep the stored ones.
	Update(ctx context.Context, run *Run, lease time.Duration) error

	// Claim gives p.Owner the lease of run p.ID if no one holds it, the lease
	// expired, p.Owner already holds it, or an earlier start of the same
	// engine holds it, whatever the run's status; the version is
	// incremented. Otherwise it returns ErrRunActive, or ErrRunNotFound for
	// an unknown ID.
	Claim(ctx context.Context, p ClaimParams) (*Run, error)

	// ClaimExpired claims up to p.Limit runs of the given workflows that are
	// pending or running and whose lease expired, was released, or is held
	// by an earlier start of the same engine, for p.Owner, and returns them.
	// It never claims runs p.Owner holds: those are executing. With no
	// workflows it claims nothing.
	ClaimExpired(ctx context.Context, p ClaimExpiredParams) ([]*Run, error)

	// Extend renews p.Owner's leases of runs p.IDs without changing their
	// version, and returns the IDs whose lease p.Owner no longer holds
	// (another owner's, released or unknown runs). A lease that expired but
	// was not taken over is renewed.
	Extend(ctx context.Context, p ExtendParams) (lost []string, err error)

	// Close releases the store's resources. Every method called after it
	// returns an error wrapping ErrClosed; Close itself may be called again.
	// Engine.Close does not close the storage: the caller that opened it
	// does.
	Close() error
}

// OwnerEngine returns the engine ID of an owner written as ID "#" nonce:
// the part before the last "#", or the whole owner if it has none. Stores
// use it to recognise leases held by an earlier start of the same engine.
func OwnerEngine(owner string) string {
	if i := strings.LastIndexByte(owner, '#'); i >= 0 {
		return owner[:i]
	}
	return owner
}

// Supersedes reports whether a lease of owner held may be taken over by
// claimant at once, lease or not: held is an earlier start of the same
// engine (same [OwnerEngine], another owner).
func Supersedes(claimant, held string) bool {
	return held != "" && held != claimant && OwnerEngine(held) == OwnerEngine(claimant)
}

// ReleaseLease as the lease of Storage.Update releases the run's lease.
const ReleaseLease time.Duration = -1

// ClaimParams are the arguments of Storage.Claim.
type ClaimParams struct {
	ID    string
	Owner string
	Lease time.Duration
}

// ClaimExpiredParams are the arguments of Storage.ClaimExpired.
type ClaimExpiredParams struct {
	Owner     string
	Workflows []string
	Lease     time.Duration
	Limit     int
}

// ExtendParams are the arguments of Storage.Extend.
type ExtendParams struct {
	Owner string
	IDs   []string
	Lease time.Duration
}

// Filter selects runs for List. Zero fields match everything.
type Filter struct {
	Workflow string
	Status   []Status
	Since    time.Time // created at or after
	Until    time.Time // created before
	Limit    int       // default 50, at most 1000
	Cursor   string    // RunPage.Next of the previous page
}

// RunPage is one page of a List.
type RunPage struct {
	Runs []*Run
	// Next is the cursor of the following page, "" on the last one.
	Next string
	// Corrupt holds one error wrapping ErrCorrupt for each matching run that
	// could not be decoded; the other runs are still returned.
	Corrupt []error
}

// PageSize returns the page size f asks for, within bounds.
func (f Filter) PageSize() int {
	switch {
	case f.Limit <= 0:
		return 50
	case f.Limit > 1000:
		return 1000
	}
	return f.Limit
}

// Matches reports whether r passes the filter, ignoring Cursor and Limit.
func (f Filter) Matches(r *Run) bool {
	if f.Workflow != "" && r.Workflow != f.Workflow {
		return false
	}
	if len(f.Status) > 0 {
		ok := false
		for _, s := range f.Status {
			ok = ok || s == r.Status
		}
		if !ok {
			return false
		}
	}
	if !f.Since.IsZero() && r.CreatedAt.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !r.CreatedAt.Before(f.Until) {
		return false
	}
	return true
}
