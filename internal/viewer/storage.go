package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/tracefile"
)

// StorageOptions tune a [StorageSource]. The zero value is ready to use.
type StorageOptions struct {
	// PollInterval is how often the store's change feed is read; 0 means
	// one second.
	PollInterval time.Duration
}

// StorageSource serves the runs of a [flux.Storage] (memory, SQLite,
// PostgreSQL), through Storage.List and Storage.Get as flux.Engine.List and
// Get read them. It notices changes by polling the store's change feed.
type StorageSource struct {
	store flux.Storage
	name  string
	opt   StorageOptions

	mu        sync.Mutex
	workflows map[string]struct{}
	skipped   map[string]map[int]bool // nodes seen skipped, by workflow
	learned   map[string]time.Time    // when recent runs of a workflow were last looked at

	now func() time.Time // the clock of the schedules' next ticks; tests set it
}

// learnRuns is how many recent runs of a workflow Run reads to tell its
// conditional nodes, at most once per learnEvery.
const (
	learnRuns  = 30
	learnEvery = 10 * time.Second
)

// NewStorageSource returns a source reading store; name says which store it
// is (for example the database path) on the page.
func NewStorageSource(store flux.Storage, name string, opt StorageOptions) *StorageSource {
	if opt.PollInterval <= 0 {
		opt.PollInterval = time.Second
	}
	return &StorageSource{store: store, name: name, opt: opt,
		workflows: map[string]struct{}{}, skipped: map[string]map[int]bool{}, learned: map[string]time.Time{}, now: time.Now}
}

// learn remembers the workflows and the conditional nodes of runs.
func (s *StorageSource) learn(runs []*flux.Run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range runs {
		s.workflows[r.Workflow] = struct{}{}
		for i, st := range r.Steps {
			if st.Status == flux.StatusSkipped {
				m := s.skipped[r.Workflow]
				if m == nil {
					m = map[int]bool{}
					s.skipped[r.Workflow] = m
				}
				m[i] = true
			}
		}
	}
}

// learnWorkflow looks at the recent runs of workflow wf, so that a node
// this run took is shown as a branch if other runs skipped it.
func (s *StorageSource) learnWorkflow(ctx context.Context, wf string) {
	s.mu.Lock()
	fresh := time.Since(s.learned[wf]) < learnEvery
	if !fresh {
		s.learned[wf] = time.Now()
	}
	s.mu.Unlock()
	if fresh {
		return
	}
	// List reads headers only: read the newest runs whole.
	page, err := s.store.List(ctx, flux.Filter{Workflow: wf, Limit: learnRuns})
	if err != nil {
		return
	}
	var runs []*flux.Run
	for _, h := range page.Runs {
		if r, err := s.store.Get(ctx, h.ID); err == nil {
			runs = append(runs, r)
		}
	}
	s.learn(runs)
}

func (s *StorageSource) knownWorkflows() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	wfs := make([]string, 0, len(s.workflows))
	for wf := range s.workflows {
		wfs = append(wfs, wf)
	}
	slices.Sort(wfs)
	return wfs
}

// Runs implements [Source]. A text search is the store's (Filter.Search):
// it covers every stored run.
func (s *StorageSource) Runs(ctx context.Context, q Query) (*Page, error) {
	f := flux.Filter{Workflow: q.Workflow, Status: q.Status, Search: strings.TrimSpace(q.Search), Limit: q.pageSize(), Cursor: q.Cursor}
	page, err := s.store.List(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("viewer: listing runs of %s: %w", s.name, err)
	}
	s.learn(page.Runs)
	p := &Page{Runs: make([]RunSummary, 0, len(page.Runs)), Next: page.Next, Total: -1}
	for _, r := range page.Runs {
		p.Runs = append(p.Runs, summarize(r))
	}
	p.Note = corruptNote(page.Corrupt)
	p.Workflows = s.knownWorkflows()
	return p, nil
}

func corruptNote(errs []error) string {
	if len(errs) == 0 {
		return ""
	}
	return fmt.Sprintf("%d runs could not be decoded, for example: %v", len(errs), errs[0])
}

// summarize turns a stored run into a list row. A run as List returns it
// has no nodes: its counts come from its summary.
func summarize(r *flux.Run) RunSummary {
	s := RunSummary{ID: r.ID, Workflow: r.Workflow, Status: r.Status, Steps: len(r.Steps), Error: r.Error}
	if r.Steps == nil {
		sum := r.Summary
		s.Steps, s.Attempts, s.Retries = sum.Nodes, sum.Attempts-sum.Interrupted, sum.Failures
		if r.Status == flux.StatusFailed {
			// The summary's node is the last that ran: after a
			// compensation, an undo, not the node that failed (which the
			// error names).
			if !strings.HasPrefix(sum.Node, undoPrefix) {
				s.FailedStep = sum.Node
			}
			if s.Retries > 0 {
				s.Retries-- // the last failure ended the run: not a retry
			}
		}
	}
	s.Wait = waitOf(r)
	if !r.CreatedAt.IsZero() {
		s.StartedAt = r.CreatedAt.UnixMilli()
	}
	if !r.FinishedAt.IsZero() {
		s.EndedAt = r.FinishedAt.UnixMilli()
		d := float64(r.FinishedAt.Sub(r.CreatedAt).Microseconds()) / 1000
		s.DurationMs = &d
	} else if !r.UpdatedAt.IsZero() {
		s.EndedAt = r.UpdatedAt.UnixMilli()
	}
	for _, st := range r.Steps {
		for i, a := range st.Attempts {
			if interrupted(a) {
				// Neither finished nor failed: the handler was cut off, and
				// the next attempt, if any, is not a retry of a failure.
				continue
			}
			s.Attempts++
			if a.Error != "" && (i < len(st.Attempts)-1 || st.Status != flux.StatusFailed) {
				s.Retries++
			}
		}
		if st.Status == flux.StatusFailed && s.FailedStep == "" {
			s.FailedStep = st.Name
		}
	}
	return s
}

// interrupted reports whether attempt a was cut off before its handler
// returned. Records written before Attempt.Interrupted existed say so only
// by the prefix of the error.
func interrupted(a flux.Attempt) bool {
	return a.Interrupted || strings.HasPrefix(a.Error, "interrupted: ")
}

// NodeData implements [NodeDataSource]: the store rebuilds the data from
// its snapshot and patches.
func (s *StorageSource) NodeData(ctx context.Context, id string, index int) (json.RawMessage, error) {
	data, err := s.store.NodeData(ctx, driver.NodeDataParams{ID: id, Index: index})
	switch {
	case errors.Is(err, flux.ErrRunNotFound):
		return nil, err
	case err != nil:
		if r, gerr := s.store.Get(ctx, id); gerr == nil && (index < -1 || index >= len(r.Steps)) {
			return nil, fmt.Errorf("%w: run %s has no node %d", errBadQuery, id, index)
		}
		return nil, fmt.Errorf("viewer: reading the data of node %d of run %s from %s: %w", index, id, s.name, err)
	}
	return data, nil
}

// Run implements [Source].
func (s *StorageSource) Run(ctx context.Context, id string) (*RunDetail, error) {
	r, err := s.store.Get(ctx, id)
	if err != nil {
		if errors.Is(err, flux.ErrRunNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("viewer: reading run %s from %s: %w", id, s.name, err)
	}
	s.learn([]*flux.Run{r})
	s.learnWorkflow(ctx, r.Workflow)
	d := &RunDetail{RunSummary: summarize(r), Input: r.Input, Data: r.Data, Events: []Event{}, Nodes: make([]Node, 0, len(r.Steps)),
		NodeData: true}
	s.mu.Lock()
	skipped := s.skipped[r.Workflow]
	for i, st := range r.Steps {
		n := Node{Index: i, Name: st.Name, Kind: st.Kind, Status: st.Status, Attempts: make([]Attempt, 0, len(st.Attempts)),
			Conditional: skipped[i] || st.Status == flux.StatusSkipped, Reached: st.Status != flux.StatusPending || len(st.Attempts) > 0 || !st.InFlight.IsZero()}
		if st.Kind == flux.KindUndo {
			// Skipped when the run did not fail: not a branch.
			n.Conditional, n.Undoes = false, strings.TrimPrefix(st.Name, undoPrefix)
		}
		end := int64(0)
		for _, a := range st.Attempts {
			at := Attempt{Number: a.Number, Status: flux.StatusCompleted, StartMs: a.StartedAt.UnixMilli(),
				DurationMs: float64(a.Duration.Microseconds()) / 1000, Error: a.Error, Stack: a.Stack}
			at.EndMs = at.StartMs + a.Duration.Milliseconds()
			switch {
			case interrupted(a):
				at.Status = statusInterrupted
			case a.Error != "":
				at.Status = flux.StatusFailed
			}
			end = at.EndMs
			n.Attempts = append(n.Attempts, at)
		}
		if r.Status == flux.StatusRunning && (!st.InFlight.IsZero() || st.Status == flux.StatusRunning) {
			// The running attempt is recorded when it ends. InFlight says
			// when it started; records without it leave a guess: when the
			// last attempt ended, or when the node started.
			start := end
			if start == 0 && !st.StartedAt.IsZero() {
				start = st.StartedAt.UnixMilli()
			}
			if !st.InFlight.IsZero() {
				start = st.InFlight.UnixMilli()
			}
			if start > 0 {
				n.Attempts = append(n.Attempts, Attempt{Number: len(st.Attempts) + 1, Status: flux.StatusRunning, StartMs: start})
			}
		}
		waitNode(&n, &r.Steps[i], d.Wait)
		d.Nodes = append(d.Nodes, n)
	}
	s.mu.Unlock()
	if d.Nodes == nil {
		d.Nodes = []Node{}
	}
	d.Signals = signalsOf(r)
	d.Compensation = compensationOf(r.Status, d.Nodes)
	if d.Compensation != "" {
		d.Marks = compensationMark(r.Steps)
	}
	if raw, err := json.MarshalIndent(r, "", "  "); err == nil {
		d.Raw = raw
	}
	if tr, ok := s.store.(TraceReader); ok {
		d.Events = storedEvents(ctx, tr, id)
	}
	return d, nil
}

// TraceReader is a store that keeps trace events (sqlite.Store and
// postgres.Store with their TraceSink): a storage source shows a run's
// stored events as its raw trace lines.
type TraceReader interface {
	TraceEvents(ctx context.Context, runID string, afterSeq int64, limit int) ([]tracefile.Stored, int64, error)
}

// maxStoredEvents bounds the stored events the run page receives.
const maxStoredEvents = 10000

// storedEvents returns the stored trace events of run id, in order: each
// as the line it was stored as, with its sequence number as its offset.
// Lines that do not decode are left out, as is everything if the store
// cannot be read (an older schema, say): the run page has the stored run.
func storedEvents(ctx context.Context, tr TraceReader, id string) []Event {
	evs := []Event{}
	after := int64(0)
	for len(evs) < maxStoredEvents {
		page, next, err := tr.TraceEvents(ctx, id, after, min(1000, maxStoredEvents-len(evs)))
		if err != nil && !errors.Is(err, flux.ErrCorrupt) {
			return evs
		}
		for _, st := range page {
			e := traceEvent{rec: st.Record, off: st.Seq, raw: st.Record.AppendJSON(nil)}
			evs = append(evs, rawEvent(&e))
		}
		if next == after {
			break
		}
		after = next
	}
	return evs
}

// State implements [Source].
func (s *StorageSource) State(ctx context.Context) State {
	return State{Kind: "storage", Name: s.name, Ready: true, Progress: 1, Runs: -1, Problems: []Problem{}}
}

// Watch implements [Source]: it reads the store's change feed every
// PollInterval, so a change to any run is seen, old or new.
func (s *StorageSource) Watch(ctx context.Context, fn func(Change)) { s.watch(ctx, fn, nil) }

// watch is Watch, calling polled (when not nil) after each poll. It
// follows the store's change feed (Storage.Changes), so every run that
// changes is seen, however many runs are newer.
func (s *StorageSource) watch(ctx context.Context, fn func(Change), polled func()) {
	t := time.NewTicker(s.opt.PollInterval)
	defer t.Stop()
	pos := ""
	started := false
	for {
		page, err := s.store.Changes(ctx, driver.ChangesParams{After: pos, Limit: maxChanges})
		if err == nil {
			if started && len(page.Runs) > 0 {
				changed := make([]string, len(page.Runs))
				for i, r := range page.Runs {
					changed[i] = r.ID
				}
				fn(Change{Runs: changed})
			}
			pos, started = page.Position, true
		}
		if polled != nil {
			polled()
		}
		if err == nil && len(page.Runs) == maxChanges {
			continue // more changed than a page holds: go on at once
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// maxChanges is how many changed runs one poll reads.
const maxChanges = 1000
