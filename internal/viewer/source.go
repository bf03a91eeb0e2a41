package viewer

import (
	"context"
	"encoding/json"

	"github.com/flux-go/flux"
)

// Source is where the viewer reads runs from: a trace file ([TraceSource])
// or a [flux.Storage] ([StorageSource]). Implementations must be safe for
// concurrent use.
type Source interface {
	// Runs returns one page of run summaries matching q, newest first.
	Runs(ctx context.Context, q Query) (*Page, error)
	// Run returns one run in detail, or an error wrapping
	// flux.ErrRunNotFound.
	Run(ctx context.Context, id string) (*RunDetail, error)
	// State describes the source: what it reads, how far it got, and the
	// problems it found (for example malformed trace lines).
	State(ctx context.Context) State
	// Watch calls fn after runs changed, until ctx is done. fn must not
	// block for long.
	Watch(ctx context.Context, fn func(Change))
}

// NodeDataSource is a [Source] that can tell the data a run had after each
// of its nodes: a store keeps it, a trace does not.
type NodeDataSource interface {
	// NodeData returns the data of run id after its node index, or an
	// error wrapping flux.ErrRunNotFound or errBadQuery.
	NodeData(ctx context.Context, id string, index int) (json.RawMessage, error)
}

// Query selects runs for [Source.Runs]. Zero fields match everything.
type Query struct {
	Workflow string
	Status   []flux.Status
	// Search, over a trace, matches a substring (case-insensitive) of the
	// run ID, the workflow name, the error or the failed step; over a
	// store, it is the store's search (flux.Filter.Search: an ID prefix,
	// a workflow, the words of the error).
	Search string
	// Limit is the page size: default 50, at most 500.
	Limit int
	// Cursor is Page.Next of the previous page.
	Cursor string
}

func (q Query) pageSize() int {
	switch {
	case q.Limit <= 0:
		return 50
	case q.Limit > 500:
		return 500
	}
	return q.Limit
}

// Page is one page of runs.
type Page struct {
	Runs []RunSummary `json:"runs"`
	// Next is the cursor of the following (older) page, "" on the last.
	Next string `json:"next,omitempty"`
	// Total is the number of runs matching the query, -1 when unknown.
	Total int `json:"total"`
	// Counts are the runs per status matching the query without its status
	// filter (for the status chips); nil when unknown.
	Counts map[flux.Status]int `json:"counts,omitempty"`
	// Workflows are the workflow names known to the source, sorted.
	Workflows []string `json:"workflows"`
	// Partial is set while the source is still indexing: the page holds
	// the runs found so far.
	Partial bool `json:"partial,omitempty"`
	// Note is a remark for the reader, such as the limit of a search.
	Note string `json:"note,omitempty"`
}

// RunSummary is one row of the runs list.
type RunSummary struct {
	ID         string      `json:"id"`
	Workflow   string      `json:"workflow"`
	Status     flux.Status `json:"status"`
	StartedAt  int64       `json:"startedAt"`         // epoch ms, 0 when unknown
	EndedAt    int64       `json:"endedAt,omitempty"` // epoch ms of the last event or the end
	DurationMs *float64    `json:"durationMs,omitempty"`
	Steps      int         `json:"steps"`    // nodes seen
	Attempts   int         `json:"attempts"` // finished attempts
	Retries    int         `json:"retries"`  // failed attempts that were retried
	Error      string      `json:"error,omitempty"`
	FailedStep string      `json:"failedStep,omitempty"`
	// Wait says what a waiting run waits for; nil for a run that does not
	// wait, or when the source cannot tell (a trace does not record it).
	Wait *Wait `json:"wait,omitempty"`
}

// Wait is what a waiting run waits for (see flux.Waiting).
type Wait struct {
	Node  string    `json:"node"`
	Index int       `json:"index"`          // of Node; -1 when unknown (in the runs list)
	Kind  flux.Kind `json:"kind,omitempty"` // sleep or wait; "" when unknown
	// Event is set for a wait for an event (WaitEvent), whose key is Key;
	// otherwise Signal names the signal awaited, if any.
	Event  bool   `json:"event,omitempty"`
	Signal string `json:"signal,omitempty"`
	Key    string `json:"key,omitempty"`
	// SinceMs is when the node started waiting (epoch ms), 0 when unknown.
	SinceMs int64 `json:"sinceMs,omitempty"`
	// UntilMs is the end of the sleep or the wait's timeout (epoch ms); 0
	// when the wait has no timeout.
	UntilMs int64 `json:"untilMs,omitempty"`
}

// RunDetail is everything the run page shows.
type RunDetail struct {
	RunSummary
	Input json.RawMessage `json:"input,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	Stack string          `json:"stack,omitempty"`
	// Nodes are the workflow's nodes in order, including the ones this run
	// did not reach (status pending) when the source knows them.
	Nodes []Node `json:"nodes"`
	// Events are the raw trace lines of the run, in file order; for a
	// storage source, the events the store kept of the run (see
	// [TraceReader]), in sequence order, if any.
	Events []Event `json:"events"`
	// Raw is the stored run as JSON, for a storage source.
	Raw json.RawMessage `json:"raw,omitempty"`
	// NodeData is set when the source can tell the data each node left
	// (see [NodeDataSource]).
	NodeData bool `json:"nodeData,omitempty"`
	// Partial is set when the source has not indexed all of the run yet.
	Partial bool `json:"partial,omitempty"`
	// Signals are the run's signals, consumed or in its inbox, in order
	// (a storage source; a trace does not record them).
	Signals []Signal `json:"signals,omitempty"`
	// Compensation is set when undo nodes of the run started:
	// "compensating" while they run, "compensated" once the run failed
	// with its undos done, "compensation failed" when an undo failed.
	Compensation string `json:"compensation,omitempty"`
	// Marks are run events drawn on the timeline (the start of a
	// compensation, a run going to wait), in time order.
	Marks []Mark `json:"marks,omitempty"`
}

// Compensation states of a run (RunDetail.Compensation).
const (
	compensating       = "compensating"
	compensated        = "compensated"
	compensationFailed = "compensation failed"
)

// Signal is one signal of a run, as the run page lists it.
type Signal struct {
	Seq    int64  `json:"seq"`
	Name   string `json:"name"`
	Key    string `json:"key,omitempty"`
	SentAt int64  `json:"sentAt"` // epoch ms
	// Payload is the payload as compact JSON, cut to maxSignalPayload
	// bytes (PayloadCut); PayloadBytes is its whole size.
	Payload      string `json:"payload,omitempty"`
	PayloadBytes int    `json:"payloadBytes"`
	PayloadCut   bool   `json:"payloadCut,omitempty"`
	// Node is the index of the node that consumed the signal, -1 while it
	// is in the run's inbox; NodeName is that node's name.
	Node     int    `json:"node"`
	NodeName string `json:"nodeName,omitempty"`
}

// Mark is a run event on the timeline.
type Mark struct {
	Type string `json:"type"` // the trace event type: workflow:compensating or workflow:waiting
	At   int64  `json:"at"`   // epoch ms
}

// Node is one step or commit of a run.
type Node struct {
	Index  int         `json:"index"`
	Name   string      `json:"name"`
	Kind   flux.Kind   `json:"kind"`
	Status flux.Status `json:"status"`
	// Conditional marks a node with a When predicate, as far as the source
	// can tell: it was skipped in this or another run of the workflow.
	Conditional bool      `json:"conditional,omitempty"`
	Attempts    []Attempt `json:"attempts"`
	MaxRetries  *int      `json:"maxRetries,omitempty"`
	// Reached is false for a node the run never got to.
	Reached bool `json:"reached"`
	// WaitMs is how long a sleep or wait node waits: the time it waited,
	// once done; while the run waits at it, the time from its start to
	// UntilMs (nil when it has no timeout).
	WaitMs *float64 `json:"waitMs,omitempty"`
	// UntilMs is, for the node the run waits at, the end of the sleep or
	// the wait's timeout (epoch ms); 0 for none.
	UntilMs int64 `json:"untilMs,omitempty"`
	// Undoes is, for an undo node, the commit it compensates.
	Undoes string `json:"undoes,omitempty"`
}

// Attempt is one execution of a node.
type Attempt struct {
	Number int `json:"number"`
	// Status is running, completed or failed; "interrupted" when it never
	// finished; waiting for the wait in progress of the node the run
	// waits at (from StartMs, with no end).
	Status  flux.Status `json:"status"`
	StartMs int64       `json:"startMs"`
	// EndMs is 0 while the attempt runs.
	EndMs      int64   `json:"endMs,omitempty"`
	DurationMs float64 `json:"durationMs"`
	// Estimated is set when the trace did not record the attempt's start
	// (the original engine logs one step:start per node): the attempt is
	// drawn from the end of the previous one, so it includes the backoff.
	Estimated bool   `json:"estimated,omitempty"`
	Error     string `json:"error,omitempty"`
	Stack     string `json:"stack,omitempty"`
}

// Event is one raw trace line.
type Event struct {
	Line   int    `json:"line,omitempty"` // 1-based; 0 while unknown
	Offset int64  `json:"offset"`         // in the file; a stored event's sequence number
	Type   string `json:"type"`
	Time   int64  `json:"time"`
	Raw    string `json:"raw"`
	// Cut is set when Raw was shortened for display.
	Cut bool `json:"cut,omitempty"`
}

// State describes a source.
type State struct {
	Kind string `json:"kind"` // "trace" or "storage"
	Name string `json:"name"` // the file path or the database
	// Ready is false until the first page can be served.
	Ready bool `json:"ready"`
	// Indexing is set while a trace file is still being read.
	Indexing bool    `json:"indexing"`
	Progress float64 `json:"progress"` // 0..1 of the indexing
	Runs     int     `json:"runs"`     // -1 when unknown
	Lines    int     `json:"lines"`
	Bytes    int64   `json:"bytes"`
	// Notice is a remark such as "the file does not exist yet".
	Notice string `json:"notice,omitempty"`
	// Problems are the first malformed lines found; ProblemCount counts
	// them all.
	Problems     []Problem `json:"problems"`
	ProblemCount int       `json:"problemCount"`
}

// Problem is a trace line the source could not use.
type Problem struct {
	Line   int    `json:"line,omitempty"` // 1-based; 0 while unknown
	Offset int64  `json:"offset"`
	Reason string `json:"reason"`
}

// Change tells watchers what changed.
type Change struct {
	// Runs are the IDs of runs that changed; empty with All.
	Runs []string `json:"runs,omitempty"`
	// All means any run may have changed (the file was reset or indexing
	// finished a large part).
	All bool `json:"all,omitempty"`
	// Reset means the source started over (the trace file was truncated or
	// replaced).
	Reset bool `json:"reset,omitempty"`
}
