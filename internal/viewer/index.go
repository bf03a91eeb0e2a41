package viewer

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/tracefile"
)

// The index keeps, per run, a summary and the file offsets of its lines,
// never the records themselves: the run page reads its lines on demand. A
// file is indexed in pieces (its tail first, then its head, then what is
// appended), so every summary field that "the last event decides" carries
// the offset of that event and pieces merge in any order.

// maxProblems is how many malformed lines the index keeps; it counts all.
const maxProblems = 1000

// lineRef locates one line of a run in the file.
type lineRef struct {
	off  int64
	size int32 // bytes, with the newline
	line int32 // 1-based; see TraceSource for when it is relative
}

// runEntry is the index's summary of one run.
type runEntry struct {
	id, wf     string
	firstOff   int64
	startTs    int64
	startOff   int64 // of the first workflow:start, -1 when none seen
	minTs      int64
	maxTs      int64
	status     flux.Status
	statusOff  int64
	err        string
	errOff     int64
	failedStep string
	failedOff  int64
	dur        float64 // ms, from the last run event that had one
	durOff     int64
	steps      int32
	attempts   int32
	retries    int32
	refs       []lineRef
}

func newEntry(id string) *runEntry {
	return &runEntry{id: id, firstOff: -1, startOff: -1, statusOff: -1, errOff: -1, failedOff: -1, durOff: -1}
}

// add folds one record, on line ref, into e. Records of one chunk arrive in
// file order.
func (e *runEntry) add(r *tracefile.Record, ref lineRef, wf string) {
	off := ref.off
	e.refs = append(e.refs, ref)
	if e.firstOff < 0 || off < e.firstOff {
		e.firstOff = off
	}
	if wf != "" {
		e.wf = wf
	}
	if ts := r.Timestamp; ts > 0 {
		if e.minTs == 0 || ts < e.minTs {
			e.minTs = ts
		}
		e.maxTs = max(e.maxTs, ts)
	}
	if r.StepIndex != nil && *r.StepIndex >= 0 && *r.StepIndex < maxNodes {
		e.steps = max(e.steps, int32(*r.StepIndex)+1)
	}
	switch r.Type {
	case string(flux.EventWorkflowStart):
		if e.startOff < 0 || off < e.startOff {
			e.startOff, e.startTs = off, r.Timestamp
		}
		e.setStatus(flux.StatusRunning, off)
		e.setErr("", off)
		e.setFailed("", off)
		e.setDur(-1, off)
	case string(flux.EventWorkflowWaiting):
		e.setStatus(flux.StatusWaiting, off)
	case string(flux.EventWorkflowCompensating):
		// After the step:error that failed the run: its undos run.
		e.setStatus(flux.StatusRunning, off)
	case string(flux.EventWorkflowComplete), string(flux.EventWorkflowError), string(flux.EventWorkflowCancelled):
		e.setStatus(runStatusOf(r.Type), off)
		if r.Error != "" || r.Type == string(flux.EventWorkflowComplete) {
			e.setErr(r.Error, off)
		}
		if r.Duration != nil {
			e.setDur(*r.Duration, off)
		}
	case string(flux.EventStepRetry):
		e.attempts++
		e.retries++
	case string(flux.EventStepComplete):
		e.attempts++
	case string(flux.EventStepError):
		e.attempts++
		// The original engine logs no workflow:error: a step's last failure
		// fails the run.
		e.setStatus(flux.StatusFailed, off)
		e.setErr(r.Error, off)
		e.setFailed(r.StepName, off)
	}
}

func (e *runEntry) setStatus(s flux.Status, off int64) {
	if off >= e.statusOff {
		e.status, e.statusOff = s, off
	}
}

func (e *runEntry) setErr(s string, off int64) {
	if off >= e.errOff {
		e.err, e.errOff = s, off
	}
}

func (e *runEntry) setFailed(s string, off int64) {
	if off >= e.failedOff {
		e.failedStep, e.failedOff = s, off
	}
}

func (e *runEntry) setDur(d float64, off int64) {
	if off >= e.durOff {
		e.dur, e.durOff = d, off
	}
}

// merge folds o, the same run's summary from another part of the file,
// into e.
func (e *runEntry) merge(o *runEntry) {
	if e.firstOff < 0 || (o.firstOff >= 0 && o.firstOff < e.firstOff) {
		e.firstOff = o.firstOff
	}
	if o.wf != "" && (e.wf == "" || o.firstOff > e.firstOff) {
		e.wf = o.wf
	}
	if o.startOff >= 0 && (e.startOff < 0 || o.startOff < e.startOff) {
		e.startOff, e.startTs = o.startOff, o.startTs
	}
	if o.minTs > 0 && (e.minTs == 0 || o.minTs < e.minTs) {
		e.minTs = o.minTs
	}
	e.maxTs = max(e.maxTs, o.maxTs)
	if o.statusOff >= 0 {
		e.setStatus(o.status, o.statusOff)
	}
	if o.errOff >= 0 {
		e.setErr(o.err, o.errOff)
	}
	if o.failedOff >= 0 {
		e.setFailed(o.failedStep, o.failedOff)
	}
	if o.durOff >= 0 {
		e.setDur(o.dur, o.durOff)
	}
	e.steps = max(e.steps, o.steps)
	e.attempts += o.attempts
	e.retries += o.retries
	switch {
	case len(e.refs) == 0:
		e.refs = o.refs
	case len(o.refs) == 0:
	case o.refs[0].off > e.refs[len(e.refs)-1].off:
		e.refs = append(e.refs, o.refs...)
	case o.refs[len(o.refs)-1].off < e.refs[0].off:
		e.refs = append(slices.Clip(o.refs), e.refs...)
	default:
		e.refs = append(e.refs, o.refs...)
		slices.SortFunc(e.refs, func(a, b lineRef) int { return cmp.Compare(a.off, b.off) })
	}
}

// startKey is what the runs list sorts by, newest first.
func (e *runEntry) startKey() int64 {
	if e.startOff >= 0 {
		return e.startTs
	}
	return e.minTs
}

func (e *runEntry) summary() RunSummary {
	s := RunSummary{
		ID: e.id, Workflow: e.wf, Status: flux.StatusRunning, StartedAt: e.startKey(), EndedAt: e.maxTs,
		Steps: int(e.steps), Attempts: int(e.attempts), Retries: int(e.retries), Error: e.err, FailedStep: e.failedStep,
	}
	if e.statusOff >= 0 {
		s.Status = e.status
	}
	switch {
	case e.durOff >= 0 && e.dur >= 0:
		d := e.dur
		s.DurationMs = &d
	case s.Status.Final() && s.StartedAt > 0:
		d := float64(e.maxTs - s.StartedAt)
		s.DurationMs = &d
	}
	return s
}

// chunk is the index of one contiguous part of the file, built without
// holding the source's lock and then merged.
type chunk struct {
	runs     map[string]*runEntry
	shapes   map[string][]shapeNode
	names    map[string]string
	problems []Problem
	nProblem int
}

func newChunk() *chunk {
	return &chunk{runs: map[string]*runEntry{}, shapes: map[string][]shapeNode{}, names: map[string]string{}}
}

func (c *chunk) intern(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := c.names[s]; ok {
		return v
	}
	c.names[s] = s
	return s
}

// add indexes record r read at ref.
func (c *chunk) add(r *tracefile.Record, ref lineRef) {
	if r.WorkflowID == "" {
		c.problem(Problem{Line: int(ref.line), Offset: ref.off, Reason: fmt.Sprintf("%s event without workflowId: ignored", clip(r.Type, 64))})
		return
	}
	e := c.runs[r.WorkflowID]
	if e == nil {
		e = newEntry(r.WorkflowID)
		c.runs[r.WorkflowID] = e
	}
	wf := c.intern(r.WorkflowName)
	e.add(r, ref, wf)
	if wf == "" {
		wf = e.wf
	}
	if wf == "" {
		return
	}
	sh := c.shapes[wf]
	if r.StepIndex != nil && *r.StepIndex >= 0 && *r.StepIndex < maxNodes && r.StepName != "" {
		i := *r.StepIndex
		for len(sh) <= i {
			sh = append(sh, shapeNode{off: -1})
		}
		n := &sh[i]
		if ref.off >= n.off {
			n.name, n.commit, n.off = c.intern(r.StepName), r.Commit, ref.off
		}
		n.seen = true
		n.skipped = n.skipped || r.Type == string(flux.EventStepSkipped)
	}
	c.shapes[wf] = sh
}

func (c *chunk) problem(p Problem) {
	c.nProblem++
	if len(c.problems) < maxProblems {
		c.problems = append(c.problems, p)
	}
}

// lineProblem turns a reader's error into a Problem; base is the offset the
// reader started at.
func lineProblem(le *tracefile.LineError, base int64) Problem {
	reason := "malformed line"
	if le.Err != nil {
		reason = le.Err.Error()
	}
	switch {
	case le.TooLong:
		reason = "line longer than the reader's limit: " + reason
	case le.Truncated:
		reason = "truncated line (no newline at the end of the file): " + reason
	}
	return Problem{Line: le.Line, Offset: base + le.Offset, Reason: clip(reason, 300)}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// index is the merged index of everything read so far.
type index struct {
	runs     map[string]*runEntry
	order    []*runEntry // sorted newest first when !dirty
	dirty    bool
	shapes   map[string][]shapeNode
	names    map[string]string
	problems []Problem
	nProblem int
}

func newIndex() *index {
	return &index{runs: map[string]*runEntry{}, shapes: map[string][]shapeNode{}, names: map[string]string{}}
}

// merge folds c into the index. lineBase is added to c's line numbers.
// It returns the IDs of the runs c touched.
func (x *index) merge(c *chunk, lineBase int, wantIDs bool) []string {
	var ids []string
	if wantIDs {
		ids = make([]string, 0, len(c.runs))
	}
	intern := func(s string) string {
		if s == "" {
			return ""
		}
		if v, ok := x.names[s]; ok {
			return v
		}
		x.names[s] = s
		return s
	}
	for id, ce := range c.runs {
		if lineBase != 0 {
			for i := range ce.refs {
				ce.refs[i].line += int32(lineBase)
			}
		}
		ce.wf = intern(ce.wf)
		ce.failedStep = intern(ce.failedStep)
		if e := x.runs[id]; e != nil {
			e.merge(ce)
		} else {
			x.runs[id] = ce
			x.order = append(x.order, ce)
		}
		if wantIDs {
			ids = append(ids, id)
		}
	}
	x.dirty = x.dirty || len(c.runs) > 0
	for wf, sh := range c.shapes {
		wf = intern(wf)
		cur := x.shapes[wf]
		for len(cur) < len(sh) {
			cur = append(cur, shapeNode{off: -1})
		}
		for i, n := range sh {
			if !n.seen {
				continue
			}
			m := &cur[i]
			if n.off >= m.off {
				m.name, m.commit, m.off = intern(n.name), n.commit, n.off
			}
			m.seen = true
			m.skipped = m.skipped || n.skipped
		}
		x.shapes[wf] = cur
	}
	for _, p := range c.problems {
		if p.Line != 0 {
			p.Line += lineBase
		}
		if len(x.problems) < maxProblems {
			x.problems = append(x.problems, p)
		}
	}
	x.nProblem += c.nProblem
	return ids
}

// renumber adds delta to the line numbers of lines at or after offset from.
func (x *index) renumber(from int64, delta int) {
	if delta == 0 {
		return
	}
	for _, e := range x.runs {
		for i := len(e.refs) - 1; i >= 0 && e.refs[i].off >= from; i-- {
			e.refs[i].line += int32(delta)
		}
	}
	for i := range x.problems {
		if x.problems[i].Offset >= from && x.problems[i].Line != 0 {
			x.problems[i].Line += delta
		}
	}
}

func (x *index) sort() {
	if !x.dirty {
		return
	}
	slices.SortFunc(x.order, func(a, b *runEntry) int {
		if c := cmp.Compare(b.startKey(), a.startKey()); c != 0 {
			return c
		}
		return cmp.Compare(b.firstOff, a.firstOff)
	})
	x.dirty = false
}

func (x *index) workflows() []string {
	wfs := make([]string, 0, len(x.shapes))
	for wf := range x.shapes {
		wfs = append(wfs, wf)
	}
	slices.Sort(wfs)
	return wfs
}

// query answers Source.Runs from the index.
func (x *index) query(q Query) (*Page, error) {
	after, err := parseCursor(q.Cursor)
	if err != nil {
		return nil, err
	}
	x.sort()
	size := q.pageSize()
	p := &Page{Runs: []RunSummary{}, Counts: map[flux.Status]int{}, Workflows: x.workflows()}
	search := strings.TrimSpace(q.Search)
	var last *runEntry
	for _, e := range x.order {
		if q.Workflow != "" && e.wf != q.Workflow {
			continue
		}
		if search != "" && !containsFold(e.id, search) && !containsFold(e.wf, search) &&
			!containsFold(e.err, search) && !containsFold(e.failedStep, search) {
			continue
		}
		st := flux.StatusRunning
		if e.statusOff >= 0 {
			st = e.status
		}
		p.Counts[st]++
		if len(q.Status) > 0 && !slices.Contains(q.Status, st) {
			continue
		}
		p.Total++
		if after != nil && !after.before(e) {
			continue
		}
		if len(p.Runs) < size {
			p.Runs = append(p.Runs, e.summary())
			last = e
		} else if p.Next == "" {
			p.Next = cursorOf(last)
		}
	}
	return p, nil
}

// errBadQuery marks a query the client got wrong.
var errBadQuery = errors.New("viewer: bad query")

// cursor is the position of the last run of a page.
type cursor struct{ key, off int64 }

func cursorOf(e *runEntry) string {
	return strconv.FormatInt(e.startKey(), 10) + "." + strconv.FormatInt(e.firstOff, 10)
}

func parseCursor(s string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	k, o, ok := strings.Cut(s, ".")
	key, err1 := strconv.ParseInt(k, 10, 64)
	off, err2 := strconv.ParseInt(o, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%w: invalid cursor %q: pass the next value of the previous page", errBadQuery, s)
	}
	return &cursor{key, off}, nil
}

// before reports whether e sorts after the cursor's run (is older).
func (c *cursor) before(e *runEntry) bool {
	k := e.startKey()
	return k < c.key || k == c.key && e.firstOff < c.off
}

// containsFold reports whether sub is in s, ignoring ASCII case.
func containsFold(s, sub string) bool {
	if len(sub) > len(s) {
		return false
	}
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for j < len(sub) && lower(s[i+j]) == lower(sub[j]) {
			j++
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}
