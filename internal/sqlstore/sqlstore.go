// Package sqlstore is the on-disk format that the SQLite and PostgreSQL
// stores share: the rows a run is kept in, their encodings, and how a run
// is assembled from them. Each store has its own SQL; the layout and the
// values are the same.
//
// A run is kept as:
//   - runs: its header, one row: status, version, owner and lease, input,
//     the data before its first node (initial_data), and its summary. List
//     reads this table only.
//   - nodes: one row per node that has been written.
//   - attempts: one row per attempt, appended, never changed.
//   - node_data: one row per completed node: the data it left, whole
//     (snapshot) or as a patch from the data before it.
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
}

// Node is a row of nodes.
type Node struct {
	Index                           int
	Name, Kind, Status              string
	StartedAt, FinishedAt, InFlight int64
}

// Attempt is a row of attempts.
type Attempt struct {
	Index, Number       int
	StartedAt, Duration int64
	Error, Stack        string
	Interrupted         bool
}

// Data is a row of node_data: a snapshot, or (Snapshot nil) a patch.
type Data struct {
	Index          int
	Snapshot       []byte
	Offset, Delete int
	Insert         []byte
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

// NodeOf returns the row of node i.
func NodeOf(i int, s *driver.StepState) Node {
	return Node{Index: i, Name: s.Name, Kind: string(s.Kind), Status: string(s.Status),
		StartedAt: Nanos(s.StartedAt), FinishedAt: Nanos(s.FinishedAt), InFlight: Nanos(s.InFlight)}
}

// NodeChangeOf returns the row a node change writes.
func NodeChangeOf(n *driver.NodeChange) Node {
	return Node{Index: n.Index, Name: n.Name, Kind: string(n.Kind), Status: string(n.Status),
		StartedAt: Nanos(n.StartedAt), FinishedAt: Nanos(n.FinishedAt), InFlight: Nanos(n.InFlight)}
}

// AttemptOf returns the row of attempt a of node i.
func AttemptOf(i int, a *driver.Attempt) Attempt {
	return Attempt{Index: i, Number: a.Number, StartedAt: Nanos(a.StartedAt), Duration: int64(a.Duration),
		Error: a.Error, Stack: a.Stack, Interrupted: a.Interrupted}
}

// DataOf returns the row of a node's data.
func DataOf(d *driver.NodeData) Data {
	if d.Patch == nil {
		return Data{Index: d.Index, Snapshot: orEmpty(d.Snapshot)}
	}
	return Data{Index: d.Index, Offset: d.Patch.Offset, Delete: d.Patch.Delete, Insert: orEmpty(d.Patch.Insert)}
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
	}
}

// NodeData returns the data records of data rows.
func NodeData(rows []Data) []driver.NodeData {
	out := make([]driver.NodeData, len(rows))
	for i, d := range rows {
		out[i] = driver.NodeData{Index: d.Index}
		if d.Snapshot != nil {
			out[i].Snapshot = d.Snapshot
		} else {
			out[i].Patch = &driver.Patch{Offset: d.Offset, Delete: d.Delete, Insert: d.Insert}
		}
	}
	return out
}

// Assemble returns the whole run of a header and its rows: nodes in index
// order, attempts in (index, number) order, and the data rows from the last
// snapshot on, in index order. An error wraps driver.ErrCorrupt and names
// the run.
func Assemble(h *Header, nodes []Node, attempts []Attempt, datas []Data) (*driver.Run, error) {
	r := RunOf(h)
	r.Steps = make([]driver.StepState, len(nodes))
	for i, n := range nodes {
		if n.Index != i {
			return nil, driver.Corrupt(h.ID, "node %d is missing", i)
		}
		r.Steps[i] = driver.StepState{Name: n.Name, Kind: driver.Kind(n.Kind), Status: driver.Status(n.Status),
			StartedAt: Time(n.StartedAt), FinishedAt: Time(n.FinishedAt), InFlight: Time(n.InFlight)}
	}
	for _, a := range attempts {
		if a.Index < 0 || a.Index >= len(r.Steps) {
			return nil, driver.Corrupt(h.ID, "an attempt of node %d, which it does not have", a.Index)
		}
		s := &r.Steps[a.Index]
		s.Attempts = append(s.Attempts, driver.Attempt{Number: a.Number, StartedAt: Time(a.StartedAt),
			Duration: time.Duration(a.Duration), Error: a.Error, Stack: a.Stack, Interrupted: a.Interrupted})
	}
	data, err := Rebuild(h.ID, h.Initial, datas)
	if err != nil {
		return nil, err
	}
	r.Data = data
	return r, nil
}

// Rebuild returns the data of data rows from the last snapshot on.
func Rebuild(id string, initial []byte, datas []Data) (json.RawMessage, error) {
	data, err := driver.Rebuild(initial, NodeData(datas))
	if err != nil {
		// Name the run, without saying "corrupt" twice.
		return nil, driver.Corrupt(id, "%s", strings.TrimPrefix(err.Error(), driver.ErrCorrupt.Error()+": "))
	}
	return data, nil
}
