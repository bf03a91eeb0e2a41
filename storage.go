package flux

import (
	"context"
	"encoding/json"
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

// Clone returns a deep copy of r.
func (r *Run) Clone() *Run {
	c := *r
	c.Steps = make([]StepState, len(r.Steps))
	copy(c.Steps, r.Steps)
	for i := range c.Steps {
		c.Steps[i].Attempts = append([]Attempt(nil), r.Steps[i].Attempts...)
	}
	return &c
}

// Storage keeps runs. The engine depends on nothing else for state, so an
// adapter (memory, SQLite, PostgreSQL) is all it takes to move runs between
// processes. Implementations must be safe for concurrent use and pass the
// conformance suite in package storagetest.
//
// Writes that advance a run are compare-and-set on Run.Version and Run.Owner,
// so two engines can never both advance one run.
type Storage interface {
	// Create stores a new run, setting its Version to 1 and, when run.Owner
	// is set, its lease to the storage's now + lease. If a run with the
	// same ID exists it returns an error wrapping ErrRunExists and stores
	// nothing. Like Update, it keeps no reference to run.
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
	// The storage keeps no reference to run: the caller may change it
	// afterwards, though it only appends to a step's Attempts and replaces
	// JSON values rather than changing their bytes. ID, Workflow and
	// CreatedAt are set by Create: Update must not be used to change them,
	// and a store may keep the stored ones.
	Update(ctx context.Context, run *Run, lease time.Duration) error

	// Claim gives p.Owner the lease of run p.ID if no one holds it, the lease
	// expired, or p.Owner already holds it, whatever the run's status; the
	// version is incremented. Otherwise it returns ErrRunActive, or
	// ErrRunNotFound for an unknown ID.
	Claim(ctx context.Context, p ClaimParams) (*Run, error)

	// ClaimExpired claims up to p.Limit runs of the given workflows that are
	// pending or running and whose lease expired or was released, for
	// p.Owner, and returns them. With no workflows it claims nothing.
	ClaimExpired(ctx context.Context, p ClaimExpiredParams) ([]*Run, error)

	// Extend renews p.Owner's leases of runs p.IDs without changing their
	// version, and returns the IDs whose lease p.Owner no longer holds
	// (another owner's, released or unknown runs). A lease that expired but
	// was not taken over is renewed.
	Extend(ctx context.Context, p ExtendParams) (lost []string, err error)
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
	// Exclude are runs not to claim: the engine passes the runs it is
	// executing, whose lease may have lapsed before its heartbeat renewed it.
	Exclude []string
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
