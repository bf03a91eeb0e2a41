package driver

import (
	"encoding/json"
	"strings"
	"time"
)

// Status is the state of a run or of one node of a run.
type Status string

// Run and node statuses. Runs use pending, running, waiting, completed,
// failed and cancelled; nodes use pending, running, completed, failed and
// skipped.
const (
	StatusPending   Status = "pending"
	StatusRunning   Status = "running"
	StatusWaiting   Status = "waiting"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
	StatusSkipped   Status = "skipped"
)

// Statuses are every status, in the order above.
var Statuses = []Status{StatusPending, StatusRunning, StatusWaiting, StatusCompleted, StatusFailed, StatusCancelled, StatusSkipped}

// Final reports whether a run in status s has stopped: completed, failed or
// cancelled. Final runs change only through Resume or RetryStep.
func (s Status) Final() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// Done reports whether a node in status s needs no more work: completed or
// skipped.
func (s Status) Done() bool { return s == StatusCompleted || s == StatusSkipped }

// Kind tells a step from a commit, a sleep, a wait and an undo.
type Kind string

// Node kinds.
const (
	KindStep   Kind = "step"
	KindCommit Kind = "commit"
	// KindSleep waits until a time; KindWait waits for a signal or an
	// event, with a timeout.
	KindSleep Kind = "sleep"
	KindWait  Kind = "wait"
	// KindUndo is a commit's compensation: it runs, in reverse order of
	// the commits, when a run fails after its commit completed.
	KindUndo Kind = "undo"
)

// Effect reports whether nodes of kind k are side effects that must land
// once: commits and undos.
func (k Kind) Effect() bool { return k == KindCommit || k == KindUndo }

// Run is the stored view of a run: what Store.Get returns. Input and Data
// are JSON.
type Run struct {
	ID          string          `json:"id"`
	Workflow    string          `json:"workflow"`
	Fingerprint string          `json:"fingerprint"` // of the definition the run started with
	Status      Status          `json:"status"`
	Input       json.RawMessage `json:"input"`
	// Data is the run's data after the last node that finished: the data
	// the next node starts from. The data after any one node is read with
	// Store.NodeData. List leaves Data out.
	Data json.RawMessage `json:"data,omitempty"`
	// Steps are the run's nodes, in order. List leaves them out: Summary
	// has their counts.
	Steps      []StepState `json:"steps,omitempty"`
	Summary    Summary     `json:"summary"`
	Error      string      `json:"error,omitempty"`
	CreatedAt  time.Time   `json:"createdAt"`
	UpdatedAt  time.Time   `json:"updatedAt"`
	FinishedAt time.Time   `json:"finishedAt,omitzero"`

	// Version is incremented by every successful write; writes are
	// compare-and-set on it.
	Version int64 `json:"version"`
	// Owner is the engine holding the run's lease, "" when none does.
	Owner string `json:"owner,omitempty"`
	// LeaseUntil is when Owner's lease expires, by the storage's clock.
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`

	// WakeAt is when a waiting run may be taken again by ClaimExpired: the
	// end of its sleep, or its wait's timeout; zero when it waits for a
	// signal only.
	WakeAt time.Time `json:"wakeAt,omitzero"`
	// WaitKey is the event key a waiting run listens for (see
	// SignalParams.WaitKey), "" when none.
	WaitKey string `json:"waitKey,omitempty"`
	// ConcurrencyKey groups runs for Limit.PerKey; set when the run is
	// created, never changed.
	ConcurrencyKey string `json:"concurrencyKey,omitempty"`
	// SignalSeq is the number of signals delivered to the run.
	SignalSeq int64 `json:"signalSeq,omitempty"`
	// Signals are the run's signals, consumed or waiting in its inbox, in
	// order (Get, Claim and ClaimExpired; List leaves them out).
	Signals []Signal `json:"signals,omitempty"`
}

// Summary counts a run's nodes and attempts, so that a list of runs can show
// progress without reading their nodes.
type Summary struct {
	Nodes       int `json:"nodes"`       // in the run's definition
	Done        int `json:"done"`        // completed or skipped
	Attempts    int `json:"attempts"`    // recorded, of every node, interrupted ones included
	Failures    int `json:"failures"`    // attempts that ended with an error, not interrupted
	Interrupted int `json:"interrupted"` // attempts cut off before their handler returned
	// Node is the node the run is at: in flight, failed, or the last one
	// that ran.
	Node string `json:"node,omitempty"`
}

// StepState is the record of one node of a run.
type StepState struct {
	Name       string    `json:"name"`
	Kind       Kind      `json:"kind"`
	Status     Status    `json:"status"`
	Attempts   []Attempt `json:"attempts,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
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
	CopyRun(c, r, nil, nil, 0)
	return c
}

// CopyRun makes dst a deep copy of src and returns the buffers that hold its
// JSON bytes and attempts. It reuses dst.Steps, buf and atts when they are
// large enough, so that a store may keep one copy of a run and overwrite it
// in place; with spare 1, buffers it makes have room for the run to grow
// (half as much again, and an attempt for every other node). The attempts of
// each step are capped, so that appending to them never writes into the
// next step's.
func CopyRun(dst, src *Run, buf []byte, atts []Attempt, spare int) ([]byte, []Attempt) {
	steps := dst.Steps[:0]
	*dst = *src
	size, n := len(src.Input)+len(src.Data), 0
	for i := range src.Steps {
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
	if src.Signals != nil {
		dst.Signals = make([]Signal, len(src.Signals))
		for i, sg := range src.Signals {
			sg.Payload = append(json.RawMessage(nil), sg.Payload...)
			dst.Signals[i] = sg
		}
	}
	if src.Steps == nil {
		dst.Steps = nil
		return buf, atts
	}
	dst.Steps = append(steps, src.Steps...)
	off := 0
	for i := range dst.Steps {
		s := &dst.Steps[i]
		if s.Attempts != nil {
			k := copy(atts[off:], s.Attempts)
			s.Attempts = atts[off : off+k : off+k]
			off += k
		}
	}
	return buf, atts
}

// Summarize returns the summary of a run's nodes.
func Summarize(steps []StepState) Summary {
	s := Summary{Nodes: len(steps)}
	last := -1
	for i, st := range steps {
		if st.Status.Done() {
			s.Done++
		}
		s.count(st.Attempts)
		switch {
		case !st.InFlight.IsZero(), st.Status == StatusFailed, st.Status == StatusRunning:
			s.Node = st.Name
			return countRest(s, steps[i+1:])
		case st.Status != StatusPending:
			last = i
		}
	}
	if last >= 0 {
		s.Node = steps[last].Name
	}
	return s
}

func countRest(s Summary, steps []StepState) Summary {
	for _, st := range steps {
		if st.Status.Done() {
			s.Done++
		}
		s.count(st.Attempts)
	}
	return s
}

func (s *Summary) count(atts []Attempt) {
	for _, a := range atts {
		s.Add(a)
	}
}

// Add counts attempt a.
func (s *Summary) Add(a Attempt) {
	s.Attempts++
	switch {
	case a.Interrupted || strings.HasPrefix(a.Error, "interrupted: "):
		// Records written before Attempt.Interrupted existed say so only
		// by the prefix of the error.
		s.Interrupted++
	case a.Error != "":
		s.Failures++
	}
}
