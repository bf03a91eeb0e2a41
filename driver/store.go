package driver

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// Store keeps runs. The engine depends on nothing else for state, so a
// store (memory, SQLite, PostgreSQL) is all it takes to move runs between
// processes. Implementations must be safe for concurrent use and pass the
// conformance suites of package storagetest.
//
// Writes: Create stores a run; Checkpoint writes what changed in it since
// the engine's last write (its header, the nodes that changed, attempts
// appended, the data of the nodes that completed), never the whole run.
// Checkpoint, Release and Cancel are compare-and-set on the run's Version
// and Owner, so two engines can never both advance one run. Every
// successful write increments the version.
//
// Reads return whole runs (Get, Claim, ClaimExpired) or their headers
// (List), and the data after any node (NodeData).
//
// A store keeps no reference to what callers give it or get from it: a
// caller may change any part of a run, down to the bytes of its JSON,
// after a call without changing the store.
//
// Owners: an engine writes its owner as its ID, "#", and a nonce drawn when
// it starts ("billing-1#9f3a61c2"; see [OwnerEngine]). A lease held by an
// owner of the same engine ID but another nonce was taken by an earlier
// start of that engine, which has stopped: Claim and ClaimExpired take it
// over at once, without waiting for it to expire ([Supersedes]).
type Store interface {
	// Create stores a new run, with version 1 and, when the run has an
	// owner, a lease until the storage's now + p.Lease. If a run with the
	// same ID exists it returns an error wrapping ErrRunExists and stores
	// nothing.
	Create(ctx context.Context, p CreateParams) (Written, error)

	// Checkpoint writes p's changes to run p.ID if the stored version is
	// p.Version and the stored owner is p.Owner or "". A different owner
	// gives ErrLeaseLost (even if the version differs too), a different
	// version ErrConflict, an unknown ID ErrRunNotFound; a failed
	// Checkpoint changes nothing.
	Checkpoint(ctx context.Context, p CheckpointParams) (Written, error)

	// Get returns the run with the given ID, with its nodes and its
	// current data, or an error wrapping ErrRunNotFound, or ErrCorrupt
	// naming the run if it cannot be decoded.
	Get(ctx context.Context, id string) (*Run, error)

	// NodeData returns the run's data as it was after node p.Index
	// finished: after the last node at or before p.Index that completed,
	// or the data before the first node if none did. p.Index -1 asks for
	// the data before the first node.
	NodeData(ctx context.Context, p NodeDataParams) (json.RawMessage, error)

	// List returns the headers of the runs matching the filter, newest
	// first: by CreatedAt, then by ID, both descending.
	List(ctx context.Context, f Filter) (*RunPage, error)

	// Changes returns the headers of the runs that a Create, Checkpoint
	// or Cancel wrote after position p.After, each once, in the order of
	// its last such write, up to p.Limit of them, and the position to ask
	// from next. p.After "" starts from now: no runs, the current
	// position. Leases taken, renewed or given back are not changes; nor
	// are deleted runs. A live view calls it every second or so.
	Changes(ctx context.Context, p ChangesParams) (*ChangesPage, error)

	// Claim gives p.Owner the lease of run p.ID if no one holds it, the
	// lease expired, p.Owner already holds it, or an earlier start of the
	// same engine holds it, whatever the run's status, and returns the
	// whole run. Otherwise it returns ErrRunActive, or ErrRunNotFound for
	// an unknown ID.
	Claim(ctx context.Context, p ClaimParams) (*Run, error)

	// ClaimExpired claims up to p.Limit runs of the given workflows that are
	// pending or running and whose lease expired, was released, or is held
	// by an earlier start of the same engine, or that are waiting, free,
	// and due (WakeAt passed, or a signal came), for p.Owner, and returns
	// them whole, oldest first. Pending runs are claimed within p.Limits. It never claims runs p.Owner holds: those are executing. With
	// no workflows it claims nothing. A run it cannot decode is not
	// claimed: its error is in ClaimedRuns.Corrupt.
	ClaimExpired(ctx context.Context, p ClaimExpiredParams) (*ClaimedRuns, error)

	// Extend renews p.Owner's leases of runs p.IDs without changing their
	// version, and returns the IDs whose lease p.Owner no longer holds
	// (another owner's, released or unknown runs). A lease that expired but
	// was not taken over is renewed.
	Extend(ctx context.Context, p ExtendParams) (lost []string, err error)

	// Release gives back p.Owner's lease of run p.ID, if p.Owner holds it,
	// and changes nothing else; otherwise it returns ErrLeaseLost, or
	// ErrRunNotFound.
	Release(ctx context.Context, p ReleaseParams) error

	// Cancel marks an unfinished run cancelled, whoever holds it: its
	// status, error and finish time are set, no node is left in flight,
	// and its lease is released, so its owner's next checkpoint fails.
	// Cancelling a cancelled run changes nothing; a completed or failed one
	// gives ErrRunFinished.
	Cancel(ctx context.Context, p CancelParams) error

	// Prune deletes up to p.Limit finished runs that match p, oldest first,
	// and returns how many it deleted.
	Prune(ctx context.Context, p PruneParams) (int, error)

	// Close releases the store's resources. Every method called after it
	// returns an error wrapping ErrClosed; Close itself may be called again.
	// Engine.Close does not close the storage: the caller that opened it
	// does.
	Close() error
}

// Waker is implemented by stores that can tell engines, in every process
// that uses them, that a run may need an owner sooner than their next look:
// a run was stored pending and free (flux.Start), or an unfinished run's
// lease was given back. Engines still look on their own every
// Config.RecoveryInterval, so a lost wake-up costs time, never a run.
type Waker interface {
	// Wakeups returns a channel that receives after such writes (several
	// before a receive count as one), and the function that ends the
	// subscription.
	Wakeups() (<-chan struct{}, func())
}

// NeedsOwner reports whether a run with this status, written with this
// owner, waits for an engine to take it: it is unfinished and free.
func NeedsOwner(status Status, owner string) bool {
	return owner == "" && !status.Final()
}

// ReleaseLease as a lease of CheckpointParams gives the lease up.
const ReleaseLease time.Duration = -1

// Written is what a successful write left: the run's new version and
// lease.
type Written struct {
	Version    int64
	LeaseUntil time.Time // zero when the run has no owner
}

// CreateParams are the arguments of Store.Create.
type CreateParams struct {
	// Run is the new run: its header, its nodes (with their attempts) and,
	// in Run.Data, the data before the first node. Its Version, LeaseUntil
	// and Summary are ignored: the store sets the first two, and computes
	// the summary from the nodes.
	Run *Run
	// Data are the data of the nodes that already completed, in node order.
	Data []NodeData
	// Lease is how long Run.Owner's lease lasts, when Run.Owner is set.
	Lease time.Duration
}

// CheckpointParams are the arguments of Store.Checkpoint: the changes of
// one run since its last write.
type CheckpointParams struct {
	ID      string
	Owner   string // the writer, who must hold the run's lease or find it free
	Version int64  // the version the writer last wrote or read
	// Lease > 0 extends the stored owner's lease to the storage's now +
	// Lease (an unowned run stays unowned: only a claim takes a lease), 0
	// keeps it, and ReleaseLease gives it up: the stored owner becomes "".
	Lease time.Duration
	// Header is the run's new header, or nil if it did not change.
	Header *Header
	// Nodes are the nodes that changed, each once.
	Nodes []NodeChange
	// Consume marks signals of the run's inbox consumed, atomically with
	// the rest of the write.
	Consume []Consumed
}

// Header is the part of a run a checkpoint may change beside its nodes.
type Header struct {
	Status      Status
	Error       string
	Fingerprint string
	UpdatedAt   time.Time
	FinishedAt  time.Time
	Summary     Summary
	// Nodes is how many nodes the run has: a store drops the nodes at and
	// after it (a definition that got shorter before the run was resumed).
	Nodes int
	// WakeAt, for a run written waiting: when ClaimExpired may take it
	// again; zero for never by time. The store keeps it only while the run
	// waits. If the stored SignalSeq is above the header's, a signal came
	// that the writer has not seen, and the run is claimable at once.
	WakeAt time.Time
	// WaitKey is the event key the run listens for from now on ("" none).
	WaitKey string
	// SignalSeq is the run's SignalSeq as the writer last saw it.
	SignalSeq int64
}

// NodeChange is the new state of one node.
type NodeChange struct {
	Index      int
	Name       string
	Kind       Kind
	Status     Status
	StartedAt  time.Time
	FinishedAt time.Time
	InFlight   time.Time
	// Attempts are appended to the node's record; recorded attempts never
	// change.
	Attempts []Attempt
	// Reset drops the data the node left when it completed: it will run
	// again (RetryStep, Resume). Data, if set, is the data of its new
	// completion.
	Reset bool
	// Replace drops the node's attempts and data first: the node is a new
	// one at this index (the definition changed before the run was
	// resumed).
	Replace bool
	// Data is the data the node left, when it completed in this write.
	Data *NodeData
}

// ChangesParams are the arguments of Store.Changes.
type ChangesParams struct {
	// After is ChangesPage.Position of the previous call; "" means now.
	After string
	// Limit is the most runs one call returns: default 1000.
	Limit int
}

// ChangesLimit returns the number of runs one Changes may return.
func (p ChangesParams) ChangesLimit() int {
	if p.Limit <= 0 {
		return 1000
	}
	return p.Limit
}

// ChangesPage is what Store.Changes returns.
type ChangesPage struct {
	// Runs are the headers of the runs that changed (as List returns
	// them), in the order of their last change.
	Runs []*Run
	// Position is where the next call starts: pass it as After. It is
	// opaque, and meaningful to the store that made it only.
	Position string
	// Corrupt holds one error wrapping ErrCorrupt for each changed run
	// that could not be decoded.
	Corrupt []error
}

// NodeDataParams are the arguments of Store.NodeData.
type NodeDataParams struct {
	ID    string
	Index int
}

// ClaimParams are the arguments of Store.Claim.
type ClaimParams struct {
	ID    string
	Owner string
	Lease time.Duration
}

// ClaimExpiredParams are the arguments of Store.ClaimExpired.
type ClaimExpiredParams struct {
	Owner     string
	Workflows []string
	Lease     time.Duration
	Limit     int
	// Limits bound the runs of some of Workflows executing at once.
	Limits []Limit
}

// ClaimedRuns are the runs ClaimExpired claimed, and the errors of those it
// could not decode.
type ClaimedRuns struct {
	Runs []*Run
	// Corrupt holds one error wrapping ErrCorrupt, naming the run, for each
	// claimable run that could not be decoded.
	Corrupt []error
	// NextWake is the earliest WakeAt of the free waiting runs of the
	// workflows that this call did not claim, zero if there are none: the
	// engine looks again then. It may be in the past when more runs were
	// due than Limit let the call claim, or report only those not due yet.
	NextWake time.Time
}

// ExtendParams are the arguments of Store.Extend.
type ExtendParams struct {
	Owner string
	IDs   []string
	Lease time.Duration
}

// ReleaseParams are the arguments of Store.Release.
type ReleaseParams struct {
	ID    string
	Owner string
}

// CancelParams are the arguments of Store.Cancel.
type CancelParams struct {
	ID    string
	Error string    // why, recorded as the run's error
	At    time.Time // recorded as its finish and update time
}

// PruneParams select the finished runs Store.Prune deletes.
type PruneParams struct {
	// Status is the final status of the runs to delete: completed, failed
	// or cancelled.
	Status Status
	// Workflow limits the deletion to one workflow; "" means all, except
	// those in Except.
	Workflow string
	Except   []string
	// FinishedBefore: only runs that finished before it.
	FinishedBefore time.Time
	// Limit is the most runs one call deletes; 0 means 1000.
	Limit int
}

// PruneLimit returns the number of runs one Prune may delete.
func (p PruneParams) PruneLimit() int {
	if p.Limit <= 0 {
		return 1000
	}
	return p.Limit
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

// Supersedes reports whether claimant may take over a lease held by held
// at once, whether or not it expired: held is an earlier start of the same
// engine (same [OwnerEngine], another owner).
func Supersedes(claimant, held string) bool {
	return held != "" && held != claimant && OwnerEngine(held) == OwnerEngine(claimant)
}
