package viewer

import (
	"unicode/utf8"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/tracefile"
)

// statusInterrupted marks an attempt that started but never reported an
// outcome before the run stopped or was resumed.
const statusInterrupted flux.Status = "interrupted"

// maxNodes bounds the node index a trace line may claim, so that a corrupt
// stepIndex cannot make a page of millions of nodes; a line beyond it is
// placed by its step name.
const maxNodes = 4096

// maxRawLine is how much of one raw trace line the run page receives.
const maxRawLine = 16 << 10

// traceEvent is one parsed trace line of a run.
type traceEvent struct {
	rec  tracefile.Record
	line int
	off  int64
	raw  []byte
}

// shapeNode is what the index learned about node i of a workflow from all
// its runs.
type shapeNode struct {
	name    string
	commit  bool
	skipped bool  // skipped in some run: the node has a When predicate
	off     int64 // offset of the line name and commit came from
	seen    bool
}

// buildRun folds a run's trace events, in file order, into the run page's
// model. shape fills in the nodes the run did not reach and marks the
// conditional ones.
func buildRun(id string, evs []traceEvent, shape []shapeNode) *RunDetail {
	d := &RunDetail{RunSummary: RunSummary{ID: id, Status: flux.StatusRunning}, Events: make([]Event, 0, len(evs))}
	var nodes []*Node
	open := map[int]int{} // node index → position in its Attempts of the attempt without outcome
	var minTs, maxTs int64
	nodeAt := func(r *tracefile.Record) *Node {
		i := -1
		if r.StepIndex != nil && *r.StepIndex >= 0 && *r.StepIndex < maxNodes {
			i = *r.StepIndex
		} else {
			for _, n := range nodes {
				if n != nil && n.Name == r.StepName {
					i = n.Index
				}
			}
			if i < 0 {
				i = min(len(nodes), maxNodes)
			}
		}
		for len(nodes) <= i {
			nodes = append(nodes, nil)
		}
		n := nodes[i]
		if n == nil {
			n = &Node{Index: i, Status: flux.StatusPending, Kind: flux.KindStep, Attempts: []Attempt{}}
			nodes[i] = n
		}
		if r.StepName != "" {
			n.Name = r.StepName
		}
		if r.Commit {
			n.Kind = flux.KindCommit
		}
		if r.MaxRetries != nil {
			m := *r.MaxRetries
			n.MaxRetries = &m
		}
		n.Reached = true
		return n
	}
	// finish gives node n's open attempt its outcome; number is the attempt
	// the event names (0 when it names none).
	finish := func(n *Node, r *tracefile.Record, number int, status flux.Status) {
		pos, ok := open[n.Index]
		delete(open, n.Index)
		if !ok || (number > 0 && n.Attempts[pos].Number != number) {
			if ok {
				n.Attempts[pos].Status = statusInterrupted
			}
			// The start of this attempt was not traced (the original engine
			// logs one step:start per node): it began when the previous
			// attempt ended.
			if number <= 0 {
				number = len(n.Attempts) + 1
			}
			start := r.Timestamp
			if k := len(n.Attempts); k > 0 && n.Attempts[k-1].EndMs > 0 {
				start = n.Attempts[k-1].EndMs
			}
			n.Attempts = append(n.Attempts, Attempt{Number: number, StartMs: start, Estimated: true})
			pos = len(n.Attempts) - 1
		}
		a := &n.Attempts[pos]
		a.Status, a.EndMs, a.Error, a.Stack = status, max(r.Timestamp, a.StartMs), r.Error, r.Stack
		a.DurationMs = float64(a.EndMs - a.StartMs)
		if r.Duration != nil && !a.Estimated {
			a.DurationMs = *r.Duration
		}
	}
	// interrupt closes the attempts that never reported an outcome.
	interrupt := func(at int64) {
		for i, pos := range open {
			a := &nodes[i].Attempts[pos]
			a.Status = statusInterrupted
			if at > a.StartMs {
				a.EndMs, a.DurationMs = at, float64(at-a.StartMs)
			}
			delete(open, i)
		}
	}
	started := false
	for k := range evs {
		e := &evs[k]
		r := &e.rec
		d.Events = append(d.Events, rawEvent(e))
		if r.WorkflowName != "" {
			d.Workflow = r.WorkflowName
		}
		if r.Timestamp > 0 && (minTs == 0 || r.Timestamp < minTs) {
			minTs = r.Timestamp
		}
		maxTs = max(maxTs, r.Timestamp)
		switch r.Type {
		case string(flux.EventWorkflowStart):
			// A later start of the same run is a Resume or RetryStep:
			// attempts still open were cut short.
			interrupt(r.Timestamp)
			if !started {
				started, d.StartedAt, d.Input = true, r.Timestamp, r.Input
			}
			d.Status, d.Error, d.Stack, d.FailedStep, d.EndedAt, d.DurationMs = flux.StatusRunning, "", "", "", 0, nil
		case string(flux.EventWorkflowComplete), string(flux.EventWorkflowError), string(flux.EventWorkflowCancelled):
			d.Status = runStatusOf(r.Type)
			d.EndedAt, d.Error, d.Stack = r.Timestamp, r.Error, r.Stack
			if len(r.Data) > 0 {
				d.Data = r.Data
			}
			if r.Duration != nil {
				v := *r.Duration
				d.DurationMs = &v
			}
			interrupt(r.Timestamp)
		case string(flux.EventWorkflowWaiting):
			// The run waits, holding no engine; a later workflow:start
			// continues it. The trace does not say what it waits for.
			d.Status = flux.StatusWaiting
			d.Marks = append(d.Marks, Mark{Type: r.Type, At: r.Timestamp})
		case string(flux.EventWorkflowCompensating):
			// A node failed for good: the undos of the completed commits
			// run, then the run fails.
			d.Status, d.EndedAt = flux.StatusRunning, 0
			d.Marks = append(d.Marks, Mark{Type: r.Type, At: r.Timestamp})
		case string(flux.EventStepStart):
			n := nodeAt(r)
			n.Status = flux.StatusRunning
			if pos, ok := open[n.Index]; ok {
				if r.Attempt == 0 {
					continue // a repeated per-node start of the original engine
				}
				n.Attempts[pos].Status = statusInterrupted
			}
			number := r.Attempt
			if number <= 0 {
				number = len(n.Attempts) + 1
			}
			n.Attempts = append(n.Attempts, Attempt{Number: number, Status: flux.StatusRunning, StartMs: r.Timestamp})
			open[n.Index] = len(n.Attempts) - 1
		case string(flux.EventStepRetry):
			n := nodeAt(r)
			number := r.Attempt
			if number <= 0 && r.Retries != nil {
				number = *r.Retries // the original engine: the failed attempt's number
			}
			finish(n, r, number, flux.StatusFailed)
			n.Status = flux.StatusRunning
			d.Retries++
		case string(flux.EventStepComplete):
			n := nodeAt(r)
			finish(n, r, r.Attempt, flux.StatusCompleted)
			n.Status = flux.StatusCompleted
		case string(flux.EventStepError):
			n := nodeAt(r)
			finish(n, r, r.Attempt, flux.StatusFailed)
			n.Status = flux.StatusFailed
			// The original engine logs no workflow:error after a step's last
			// attempt failed: the step's failure is the run's.
			d.Status, d.FailedStep, d.EndedAt, d.Error, d.Stack = flux.StatusFailed, n.Name, r.Timestamp, r.Error, r.Stack
		case string(flux.EventStepSkipped):
			n := nodeAt(r)
			// The original engine logs a step:start before deciding to
			// skip: that attempt never ran.
			if pos, ok := open[n.Index]; ok && pos == len(n.Attempts)-1 {
				n.Attempts = n.Attempts[:pos]
			}
			delete(open, n.Index)
			n.Status = flux.StatusSkipped
		}
	}
	if d.Status.Final() {
		interrupt(d.EndedAt)
	}
	if !started {
		d.StartedAt = minTs
	}
	if d.EndedAt == 0 && d.Status.Final() {
		d.EndedAt = maxTs
	}
	if d.DurationMs == nil && d.EndedAt > 0 && d.StartedAt > 0 {
		v := float64(d.EndedAt - d.StartedAt)
		d.DurationMs = &v
	}
	for i := range max(len(nodes), len(shape)) {
		var n *Node
		if i < len(nodes) {
			n = nodes[i]
		}
		if n == nil {
			n = &Node{Index: i, Status: flux.StatusPending, Kind: flux.KindStep, Attempts: []Attempt{}}
		}
		if i < len(shape) && shape[i].seen {
			if n.Name == "" {
				n.Name = shape[i].name
				if shape[i].commit {
					n.Kind = flux.KindCommit
				}
			}
			n.Conditional = shape[i].skipped
		}
		if n.Status == flux.StatusSkipped {
			n.Conditional = true
		}
		d.Steps++
		d.Attempts += countFinished(n.Attempts)
		d.Nodes = append(d.Nodes, *n)
	}
	if d.Nodes == nil {
		d.Nodes = []Node{}
	}
	markUndos(d.Nodes)
	d.Compensation = compensationOf(d.Status, d.Nodes)
	return d
}

func countFinished(as []Attempt) int {
	c := 0
	for _, a := range as {
		if a.Status == flux.StatusCompleted || a.Status == flux.StatusFailed {
			c++
		}
	}
	return c
}

// runStatusOf maps a workflow event type to the run status it leaves.
func runStatusOf(typ string) flux.Status {
	switch typ {
	case string(flux.EventWorkflowComplete):
		return flux.StatusCompleted
	case string(flux.EventWorkflowError):
		return flux.StatusFailed
	case string(flux.EventWorkflowCancelled):
		return flux.StatusCancelled
	}
	return flux.StatusRunning
}

func rawEvent(e *traceEvent) Event {
	ev := Event{Line: e.line, Offset: e.off, Type: e.rec.Type, Time: e.rec.Timestamp}
	raw := e.raw
	if len(raw) > maxRawLine {
		cut := maxRawLine
		for cut > 0 && !utf8.RuneStart(raw[cut]) {
			cut--
		}
		raw, ev.Cut = raw[:cut], true
	}
	ev.Raw = string(raw)
	return ev
}
