package viewer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/tracefile"
)

// TraceOptions tune a [TraceSource]. The zero value is ready to use.
type TraceOptions struct {
	// PollInterval is how often the file is checked for growth, truncation
	// or replacement; 0 means 200ms.
	PollInterval time.Duration
	// TailWindow is how many bytes at the end of the file are indexed
	// before the first page is served; the rest is indexed in the
	// background. 0 means 8 MiB.
	TailWindow int64
	// BatchLines is how many lines of the head of the file are indexed
	// between two merges into the served index; 0 means 20000.
	BatchLines int
	// Logger receives the source's errors; nil means slog.Default().
	Logger *slog.Logger
	// Name is what the page calls the file; "" means its path.
	Name string

	tailRead int64 // bytes of an append read at once; 0 means maxTailRead (tests lower it)
}

// TraceSource serves the runs of an NDJSON trace file (package tracefile's
// format) and follows the file as it grows, like tail -f.
//
// It keeps a compact index — per run a summary and the offsets of its lines
// — and reads a run's lines again when its page is asked for. To serve the
// newest runs at once, it indexes the last TailWindow bytes first and the
// rest of the file in the background. A file that shrinks, is replaced, or
// is rewritten (tracefile.Reset) is indexed again from the start.
type TraceSource struct {
	path   string
	opt    TraceOptions
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  chan struct{}

	mu        sync.Mutex
	gen       int // incremented when the file is indexed again from scratch
	f         *os.File
	fi        os.FileInfo
	idx       *index
	split     int64 // lines before split are the head, indexed in the background
	headDone  bool
	headRead  int64
	headLines int
	tail      *tracefile.Reader // follows the file from split; its line numbers start there
	tailOff   int64             // end of the last complete line indexed
	tailMore  bool              // the last read of the tail stopped before the end
	last      lineMark
	size      int64 // of the file at the last poll
	notice    string

	wmu      sync.Mutex
	watchers map[int]func(Change)
	nextW    int
}

// lineMark identifies the last indexed line, to notice a file rewritten
// from scratch to at least its old size between two polls.
type lineMark struct {
	off  int64
	size int
	sum  uint64
}

// markBytes is how many bytes at the end of the last line lineMark hashes.
const markBytes = 256

// OpenTrace starts serving the trace file at path. The file need not exist
// yet: the source waits for it. Close stops it.
func OpenTrace(path string, opt TraceOptions) (*TraceSource, error) {
	if path == "" {
		return nil, errors.New("viewer: no trace file path: pass the NDJSON file the tracefile sink writes")
	}
	if opt.PollInterval <= 0 {
		opt.PollInterval = 200 * time.Millisecond
	}
	if opt.TailWindow <= 0 {
		opt.TailWindow = 8 << 20
	}
	if opt.BatchLines <= 0 {
		opt.BatchLines = 20000
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.tailRead <= 0 {
		opt.tailRead = maxTailRead
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("viewer: trace path %s is a directory: pass the NDJSON file itself", path)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &TraceSource{path: path, opt: opt, ctx: ctx, cancel: cancel, ready: make(chan struct{}),
		idx: newIndex(), watchers: map[int]func(Change){}}
	s.wg.Add(1)
	go s.loop()
	return s, nil
}

// Close stops following the file and waits for the background indexing.
func (s *TraceSource) Close() error {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	return nil
}

func (s *TraceSource) loop() {
	defer s.wg.Done()
	s.mu.Lock()
	s.startLocked()
	s.mu.Unlock()
	close(s.ready)
	s.notify(Change{All: true})
	t := time.NewTicker(s.opt.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			for s.poll() && s.ctx.Err() == nil {
				// More was appended than one read takes: go on, letting
				// requests in between.
			}
		}
	}
}

// startLocked opens the file, indexes its tail and starts indexing its
// head in the background.
func (s *TraceSource) startLocked() {
	f, err := os.Open(s.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			s.notice = fmt.Sprintf("%s does not exist yet; waiting for it", s.path)
		} else {
			s.notice = fmt.Sprintf("cannot open %s: %v", s.path, err)
		}
		return
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		s.notice = fmt.Sprintf("cannot stat %s: %v", s.path, err)
		return
	}
	s.f, s.fi, s.notice = f, fi, ""
	size := fi.Size()
	s.size = size
	s.split = 0
	if size > s.opt.TailWindow {
		s.split = lineStartAfter(f, size-s.opt.TailWindow, size)
	}
	s.headDone = s.split == 0
	s.tailOff = s.split
	s.tail = tracefile.NewReader(io.NewSectionReader(f, s.split, math.MaxInt64-s.split))
	s.tail.Follow(true)
	s.readTailLocked()
	if !s.headDone {
		s.wg.Add(1)
		go s.indexHead(s.gen, f, s.split)
	}
}

// lineStartAfter returns the offset just after the first newline at or
// after from, or 0 when there is none before size (one huge line: index it
// all in order).
func lineStartAfter(f *os.File, from, size int64) int64 {
	buf := make([]byte, 64<<10)
	for off := from; off < size; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return off + int64(i) + 1
		}
		if err != nil {
			return 0
		}
		off += int64(n)
	}
	return 0
}

// indexHead indexes [0, split) of f and merges it batch by batch.
func (s *TraceSource) indexHead(gen int, f *os.File, split int64) {
	defer s.wg.Done()
	r := tracefile.NewReader(io.NewSectionReader(f, 0, split))
	c := newChunk()
	n := 0
	flush := func(done bool) bool {
		s.mu.Lock()
		if s.gen != gen {
			s.mu.Unlock()
			return false
		}
		s.idx.merge(c, 0, false)
		s.headRead = r.Offset()
		if done {
			s.headLines = r.Line()
			s.idx.renumber(split, s.headLines)
			s.headDone = true
		}
		s.mu.Unlock()
		s.notify(Change{All: true})
		c, n = newChunk(), 0
		return true
	}
	prev := int64(0)
	for {
		if s.ctx.Err() != nil {
			return
		}
		rec, err := r.Next()
		if err == io.EOF {
			flush(true)
			return
		}
		if err != nil && !addLine(c, &rec, err, 0, prev, r) {
			s.mu.Lock()
			stale := s.gen != gen
			s.mu.Unlock()
			if !stale {
				s.opt.Logger.Error("flux dev: reading the trace file failed; its older runs are missing", "path", s.path, "error", err)
				flush(true)
			}
			return
		}
		if err == nil {
			c.add(&rec, lineRef{off: prev, size: int32(r.Offset() - prev), line: int32(r.Line())})
		}
		prev = r.Offset()
		if n++; n >= s.opt.BatchLines && !flush(false) {
			return
		}
	}
}

// addLine handles a record that came with an error from r, read from base
// + prev: a lost line becomes a problem, a record with a warning is indexed
// and the warning kept. It reports false for an error reading the file.
func addLine(c *chunk, rec *tracefile.Record, err error, base, prev int64, r *tracefile.Reader) bool {
	var le *tracefile.LineError
	if !errors.As(err, &le) {
		return false
	}
	p := lineProblem(le, base)
	if !errors.Is(err, flux.ErrCorrupt) && rec.Type != "" {
		c.add(rec, lineRef{off: base + prev, size: int32(r.Offset() - prev), line: int32(r.Line())})
		p.Reason = "warning: " + p.Reason
	}
	c.problem(p)
	return true
}

// maxTailRead is about how many bytes one read of the tail indexes while
// holding the lock; a larger append is read in several.
const maxTailRead = 16 << 20

// readTailLocked indexes what the tail reader has not read yet, up to
// about maxTailRead bytes, and returns the runs it touched and whether it
// stopped before the end.
func (s *TraceSource) readTailLocked() (ids []string, more bool) {
	r, base := s.tail, s.split
	c := newChunk()
	start := r.Offset()
	prev := start
	for {
		if prev-start >= s.opt.tailRead {
			more = true
			break
		}
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !addLine(c, &rec, err, base, prev, r) {
			s.opt.Logger.Error("flux dev: reading the trace file failed", "path", s.path, "error", err)
			break
		}
		if err == nil {
			c.add(&rec, lineRef{off: base + prev, size: int32(r.Offset() - prev), line: int32(r.Line())})
		}
		prev = r.Offset()
	}
	lineBase := 0
	if s.headDone {
		lineBase = s.headLines
	}
	ids = s.idx.merge(c, lineBase, true)
	if off := base + r.Offset(); off > s.tailOff {
		s.tailOff = off
		s.last = s.markOf(s.tailOff)
	}
	s.tailMore = more
	return ids, more
}

// markOf fingerprints the line that ends at end.
func (s *TraceSource) markOf(end int64) lineMark {
	start := max(0, end-markBytes)
	buf := make([]byte, end-start)
	n, _ := s.f.ReadAt(buf, start)
	h := fnv.New64a()
	h.Write(buf[:n])
	return lineMark{off: start, size: n, sum: h.Sum64()}
}

// poll follows the file: new lines, truncation, replacement. It reports
// whether there is more to read at once.
func (s *TraceSource) poll() bool {
	s.mu.Lock()
	change, ok, more := s.pollLocked()
	s.mu.Unlock()
	if ok {
		s.notify(change)
	}
	return more
}

func (s *TraceSource) pollLocked() (c Change, changed, more bool) {
	if s.f == nil {
		s.startLocked()
		if s.f == nil {
			return Change{}, false, false
		}
		return Change{All: true, Reset: true}, true, s.tailMore
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		s.notice = fmt.Sprintf("%s: %v (showing what was read before)", s.path, err)
		return Change{}, false, false
	}
	s.notice = ""
	size := fi.Size()
	grew := size != s.size
	if !os.SameFile(fi, s.fi) || size < s.tailOff ||
		grew && s.last.size > 0 && s.markOf(s.last.off+int64(s.last.size)) != s.last {
		s.resetLocked()
		return Change{All: true, Reset: true}, true, s.tailMore
	}
	s.size = size
	if !grew && !s.tailMore {
		return Change{}, false, false
	}
	// Also when only an incomplete last line grew: its problem changed.
	ids, more := s.readTailLocked()
	return Change{Runs: ids}, true, more
}

// resetLocked drops the index and reads the file again from the start.
func (s *TraceSource) resetLocked() {
	s.gen++
	if s.f != nil {
		s.f.Close() // stops the head indexer, whose reads now fail
		s.f = nil
	}
	s.idx = newIndex()
	s.headDone, s.headRead, s.headLines, s.tail, s.tailMore = true, 0, 0, nil, false
	s.startLocked()
}

// Watch implements [Source].
func (s *TraceSource) Watch(ctx context.Context, fn func(Change)) { s.watch(ctx, fn, nil) }

// watch is Watch, closing registered (when not nil) once fn is registered.
func (s *TraceSource) watch(ctx context.Context, fn func(Change), registered chan<- struct{}) {
	s.wmu.Lock()
	id := s.nextW
	s.nextW++
	s.watchers[id] = fn
	s.wmu.Unlock()
	if registered != nil {
		close(registered)
	}
	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	s.wmu.Lock()
	delete(s.watchers, id)
	s.wmu.Unlock()
}

func (s *TraceSource) notify(c Change) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, fn := range s.watchers {
		fn(c)
	}
}

func (s *TraceSource) wait(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Runs implements [Source].
func (s *TraceSource) Runs(ctx context.Context, q Query) (*Page, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.idx.query(q)
	if err != nil {
		return nil, err
	}
	p.Partial = !s.headDone
	return p, nil
}

// Run implements [Source].
func (s *TraceSource) Run(ctx context.Context, id string) (*RunDetail, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	e := s.idx.runs[id]
	if e == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("viewer: run %q is not in %s: %w", id, s.path, flux.ErrRunNotFound)
	}
	refs := append([]lineRef(nil), e.refs...)
	shape := append([]shapeNode(nil), s.idx.shapes[e.wf]...)
	f, split, headDone, partial := s.f, s.split, s.headDone, !s.headDone && e.startOff < 0
	s.mu.Unlock()

	evs := make([]traceEvent, 0, len(refs))
	var buf []byte
	for _, ref := range refs {
		if int(ref.size) > cap(buf) {
			buf = make([]byte, ref.size)
		}
		b := buf[:ref.size]
		if _, err := f.ReadAt(b, ref.off); err != nil {
			return nil, fmt.Errorf("viewer: reading run %s from %s: %w (the file may have been reset; reload)", id, s.path, err)
		}
		line := bytes.TrimSpace(b)
		rec, err := tracefile.ParseLine(line)
		if errors.Is(err, flux.ErrCorrupt) || rec.WorkflowID != id {
			continue // the file changed under us; the next poll re-indexes it
		}
		n := int(ref.line)
		if ref.off >= split && !headDone {
			n = 0
		}
		evs = append(evs, traceEvent{rec: rec, line: n, off: ref.off, raw: bytes.Clone(line)})
	}
	d := buildRun(id, evs, shape)
	d.Partial = partial
	return d, nil
}

// State implements [Source].
func (s *TraceSource) State(ctx context.Context) State {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := s.opt.Name
	if name == "" {
		name = s.path
	}
	st := State{Kind: "trace", Name: name, Runs: len(s.idx.runs), Bytes: s.tailOff,
		Notice: s.notice, ProblemCount: s.idx.nProblem}
	select {
	case <-s.ready:
		st.Ready = true
	default:
	}
	lineBase := 0
	if s.headDone {
		lineBase = s.headLines
		st.Progress = 1
	} else {
		st.Indexing = true
		st.Progress = float64(s.headRead+s.tailOff-s.split) / float64(max(s.tailOff, 1))
	}
	if s.tail != nil {
		st.Lines = lineBase + s.tail.Line()
	}
	st.Problems = append([]Problem{}, s.idx.problems...)
	if s.tail != nil && s.size > s.tailOff {
		p := Problem{Offset: s.tailOff, Reason: fmt.Sprintf("the last line (%d bytes) has no newline yet: it is still being written, or its writer died", s.size-s.tailOff)}
		if s.headDone {
			p.Line = st.Lines + 1
		}
		st.Problems = append(st.Problems, p)
		st.ProblemCount++
	}
	for i := range st.Problems {
		if !s.headDone && st.Problems[i].Offset >= s.split {
			st.Problems[i].Line = 0
		}
	}
	return st
}
