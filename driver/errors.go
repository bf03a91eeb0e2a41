package driver

import (
	"errors"
	"fmt"
)

// Errors of the storage contract. A store's errors wrap them, and package
// flux exports the same values under the same names, so that callers test
// them with errors.Is either way.
var (
	// ErrRunNotFound reports an unknown run ID.
	ErrRunNotFound = errors.New("flux: run not found")
	// ErrRunExists is returned by Store.Create when the run ID is taken.
	ErrRunExists = errors.New("flux: run already exists")
	// ErrConflict reports a compare-and-set write that lost: the stored run's
	// version is not the one the writer read.
	ErrConflict = errors.New("flux: run was changed concurrently")
	// ErrLeaseLost reports that another owner holds the run: the writer must
	// stop executing it.
	ErrLeaseLost = errors.New("flux: run lease lost to another owner")
	// ErrRunActive reports a run that is already executing, under another
	// owner's live lease.
	ErrRunActive = errors.New("flux: run is already active")
	// ErrRunFinished reports an operation that needs an unfinished run, such
	// as a Cancel of a completed or failed run.
	ErrRunFinished = errors.New("flux: run already finished")
	// ErrCorrupt reports a stored run that cannot be decoded. The error
	// names the run; other runs stay readable.
	ErrCorrupt = errors.New("flux: corrupt record")
	// ErrClosed reports use of a store (or engine) after its Close.
	ErrClosed = errors.New("flux: closed")
	// ErrScheduleNotFound reports an unknown schedule name.
	ErrScheduleNotFound = errors.New("flux: schedule not found")
)

// CorruptError is the error a store returns for a stored run it cannot
// decode: errors.Is(err, ErrCorrupt) holds, and errors.As gives the run's
// ID, so that whoever reads runs can report the bad one by name and go on.
type CorruptError struct {
	ID     string // the run's ID
	Reason string // what is wrong with it, in the store's words
}

// Corrupt returns a *CorruptError for run id; the reason is formatted
// like fmt.Sprintf.
func Corrupt(id, format string, args ...any) error {
	return &CorruptError{ID: id, Reason: fmt.Sprintf(format, args...)}
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%v: run %s: %s", ErrCorrupt, e.ID, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// CorruptRunID returns the ID of the run a *CorruptError in err's chain
// names, or "" if there is none.
func CorruptRunID(err error) string {
	var c *CorruptError
	if errors.As(err, &c) {
		return c.ID
	}
	return ""
}
