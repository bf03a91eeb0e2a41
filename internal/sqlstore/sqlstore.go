// Package sqlstore is the on-disk format that the SQLite and PostgreSQL
// stores share: the rows a run is kept in, their encodings, and how a run
// is assembled from them. Each store has its own SQL; the layout and the
// values are the same.
//
// A run is kept as:
//   - runs: its header, one row: status, version, owner and lease, input,
//     the data before its first node (initial_data), and its summary. List
//     reads this table only; every write updates it.
//   - checkpoints: its log, one row per write that changed its nodes,
//     appended and never changed: the nodes the write changed, the attempts
//     it recorded, and the data the nodes it completed left, whole
//     (snapshot) or as a patch from the data before (see [EncodeCheckpoint]).
//
// Times are Unix nanoseconds, 0 for none; JSON is stored as its bytes.
package sqlstore

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/flux-go/flux/driver"
)

// Header is a row of runs.
type Header struct {
	ID, Workflow, Fingerprint, Status string
	Version                           int64
	Owner                             string
	LeaseUntil, CreatedAt, UpdatedAt  int64
	FinishedAt                        int64
	Error                             string
	Input, Initial                    []byte
	Nodes, Done, Attempts, Failures   int
	Interrupted                       int
	AtNode                            string
	// Of schema 0005: waiting runs, signals and concurrency limits.
	// WakeAt is stored as NeverWake for a waiting run that waits for a
	// signal only, and 0 for a run that does not wait.
	WakeAt         int64
	WaitKey        string
	ConcurrencyKey string
	SignalSeq      int64
}

// NeverWake is the stored wake_at of a run that waits with no time to
// wake at: later than every time.
const NeverWake = math.MaxInt64

// WakeNanos returns the stored wake_at of a run written with status and
// wake time at (driver.Header.WakeAt).
func WakeNanos(status driver.Status, at time.Time) int64 {
	switch {
	case status != driver.StatusWaiting:
		return 0
	case at.IsZero():
		return NeverWake
	}
	return Nanos(at)
}

// WakeTime is the inverse of WakeNanos: the zero time for 0 and NeverWake.
func WakeTime(n int64) time.Time {
	if n == NeverWake {
		return time.Time{}
	}
	return Time(n)
}

// The instants a Unix time in int64 nanoseconds can hold.
var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

// Nanos returns t as stored: Unix nanoseconds, 0 for the zero time.
func Nanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minTime):
		return math.MinInt64 + 1
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// CheckTime returns an error for a time that cannot be stored.
func CheckTime(what string, t time.Time) error {
	if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
		return fmt.Errorf("%s %s is outside the years 1678 to 2262 that can be stored", what, t.Format(time.RFC3339))
	}
	return nil
}

// Time returns a stored time.
func Time(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// HeaderOf returns the header row of a new run r, whose Data is the data
// before its first node; its summary is computed from its nodes.
func HeaderOf(r *driver.Run) Header {
	sum := driver.Summarize(r.Steps)
	return Header{
		ID: r.ID, Workflow: r.Workflow, Fingerprint: r.Fingerprint, Status: string(r.Status),
		Version: r.Version, Owner: r.Owner, LeaseUntil: Nanos(r.LeaseUntil),
		CreatedAt: Nanos(r.CreatedAt), UpdatedAt: Nanos(r.UpdatedAt), FinishedAt: Nanos(r.FinishedAt),
		Error: r.Error, Input: orEmpty(r.Input), Initial: orEmpty(r.Data),
		Nodes: sum.Nodes, Done: sum.Done, Attempts: sum.Attempts, Failures: sum.Failures, Interrupted: sum.Interrupted, AtNode: sum.Node,
		WakeAt: WakeNanos(r.Status, r.WakeAt), WaitKey: r.WaitKey, ConcurrencyKey: r.ConcurrencyKey, SignalSeq: r.SignalSeq,
	}
}

// orEmpty keeps a nil JSON value from becoming a NULL column.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// CheckRun returns an error for a run whose times cannot be stored.
func CheckRun(r *driver.Run) error {
	for _, t := range []struct {
		what string
		t    time.Time
	}{{"CreatedAt", r.CreatedAt}, {"UpdatedAt", r.UpdatedAt}, {"FinishedAt", r.FinishedAt}} {
		if err := CheckTime(t.what, t.t); err != nil {
			return fmt.Errorf("run %s: %w", r.ID, err)
		}
	}
	return nil
}

// RunOf returns the run of a header row, without its nodes and data: what
// List returns.
func RunOf(h *Header) *driver.Run {
	return &driver.Run{
		ID: h.ID, Workflow: h.Workflow, Fingerprint: h.Fingerprint, Status: driver.Status(h.Status),
		Input: h.Input, Error: h.Error,
		Summary: driver.Summary{Nodes: h.Nodes, Done: h.Done, Attempts: h.Attempts, Failures: h.Failures,
			Interrupted: h.Interrupted, Node: h.AtNode},
		CreatedAt: Time(h.CreatedAt), UpdatedAt: Time(h.UpdatedAt), FinishedAt: Time(h.FinishedAt),
		Version: h.Version, Owner: h.Owner, LeaseUntil: Time(h.LeaseUntil),
		WakeAt: WakeTime(h.WakeAt), WaitKey: h.WaitKey, ConcurrencyKey: h.ConcurrencyKey, SignalSeq: h.SignalSeq,
	}
}

// Rebuild returns the data after the last of datas, as driver.Rebuild; an
// error names run id.
func Rebuild(id string, initial []byte, datas []driver.NodeData) (json.RawMessage, error) {
	data, err := driver.Rebuild(initial, datas)
	if err != nil {
		// Name the run, without saying "corrupt" twice.
		return nil, driver.Corrupt(id, "%s", strings.TrimPrefix(err.Error(), driver.ErrCorrupt.Error()+": "))
	}
	return data, nil
}
