package tracefile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flux-go/flux"
)

// Sink is the NDJSON trace file sink, a [flux.TraceSink]: it appends one
// line per event to a file.
//
// Emit encodes the event and appends it to an in-memory buffer; a
// background goroutine writes the buffer to the file every FlushInterval,
// and sooner when it fills up, each time with one write(2) of whole lines
// to a file opened with O_APPEND. Many runs of one process may share a
// Sink, and several processes may append to one file: lines never
// interleave (on a local file system).
//
// The buffer is bounded (see [BufferLimit]). When it is full because the
// disk is slow, Emit waits at most MaxBlock for room, then drops the event
// and counts it in [Sink.Dropped]; while the writer stays stuck, later
// events that find the buffer full are dropped at once. A run is therefore
// never held up by its trace for more than MaxBlock.
//
// Close the Sink to flush it and stop its goroutine.
type Sink struct {
	path     string
	w        io.Writer
	c        io.Closer
	limit    int
	kickAt   int
	maxBlock time.Duration

	mu      sync.Mutex
	buf     []byte // lines waiting to be written
	spare   []byte // the other buffer, nil while being written
	space   chan struct{}
	stalled bool // a wait for room timed out and no write finished since
	closed  bool
	werr    error // unreported write error

	wmu     sync.Mutex // serialises writes
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	dropped atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

var _ flux.TraceSink = (*Sink)(nil)

type config struct {
	reset    bool
	interval time.Duration
	limit    int
	maxBlock time.Duration
	err      error
}

// Option configures a [Sink].
type Option func(*config)

// Reset truncates the file when the Sink opens it. The default is to append.
func Reset(on bool) Option { return func(c *config) { c.reset = on } }

// FlushInterval sets how often buffered events are written; the default is
// 100ms. Events are also written when the buffer passes an eighth of its
// limit, and by Flush and Close.
func FlushInterval(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.err = fmt.Errorf("tracefile.FlushInterval(%s): must be positive", d)
			return
		}
		c.interval = d
	}
}

// BufferLimit sets how many bytes of encoded events may wait to be written
// before Emit blocks (see MaxBlock); the default is 4 MiB. A single event
// larger than the limit is still accepted into an empty buffer.
func BufferLimit(n int) Option {
	return func(c *config) {
		if n <= 0 {
			c.err = fmt.Errorf("tracefile.BufferLimit(%d): must be positive", n)
			return
		}
		c.limit = n
	}
}

// MaxBlock sets how long Emit may wait for room in a full buffer before it
// drops the event; the default is 20ms, and 0 means drop at once.
func MaxBlock(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.err = fmt.Errorf("tracefile.MaxBlock(%s): must not be negative", d)
			return
		}
		c.maxBlock = d
	}
}

// New opens (creating it and its directory if needed) the trace file at
// path for appending, and returns a Sink writing to it.
func New(path string, opts ...Option) (*Sink, error) {
	cfg := config{interval: 100 * time.Millisecond, limit: 4 << 20, maxBlock: 20 * time.Millisecond}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("tracefile: creating the directory of %s: %w", path, err)
		}
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if cfg.reset {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("tracefile: opening the trace file: %w", err)
	}
	return newSink(path, f, f, cfg), nil
}

func newSink(path string, w io.Writer, c io.Closer, cfg config) *Sink {
	s := &Sink{
		path: path, w: w, c: c, limit: cfg.limit, kickAt: max(cfg.limit/8, 1), maxBlock: cfg.maxBlock,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go s.loop(cfg.interval)
	return s
}

// encoder is the per-Emit scratch space, pooled.
type encoder struct {
	nums eventNums
	line []byte
}

var encoders = sync.Pool{New: func() any { return &encoder{line: make([]byte, 0, 512)} }}

// Emit implements [flux.TraceSink]. It does not wait for the disk unless
// the buffer is full, and then for at most MaxBlock; an event it cannot
// buffer, or one emitted after Close, is dropped and counted.
func (s *Sink) Emit(ev flux.TraceEvent) {
	e := encoders.Get().(*encoder)
	rec := fromEvent(&ev, &e.nums)
	e.line = append(rec.AppendJSON(e.line[:0]), '\n')
	s.enqueue(e.line)
	if cap(e.line) <= 64<<10 {
		encoders.Put(e)
	}
}

// enqueue appends one encoded line to the buffer.
func (s *Sink) enqueue(line []byte) {
	var timer *time.Timer
	timedOut := false
	s.mu.Lock()
	for {
		if s.closed {
			break
		}
		if len(s.buf) == 0 || len(s.buf)+len(line) <= s.limit {
			s.buf = append(s.buf, line...)
			kick := len(s.buf) >= s.kickAt
			s.mu.Unlock()
			if kick {
				s.signal()
			}
			if timer != nil {
				timer.Stop()
			}
			return
		}
		if timedOut || s.stalled || s.maxBlock == 0 {
			s.stalled = s.stalled || timedOut
			break
		}
		if s.space == nil {
			s.space = make(chan struct{})
		}
		space := s.space
		s.mu.Unlock()
		s.signal()
		if timer == nil {
			timer = time.NewTimer(s.maxBlock)
		}
		select {
		case <-space:
		case <-timer.C:
			timedOut = true
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	s.dropped.Add(1)
}

func (s *Sink) signal() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Sink) loop(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
		}
		s.write()
	}
}

// write writes the buffered lines to the file in one write. An error is
// kept for Flush or Close to report.
func (s *Sink) write() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	out := s.buf
	if len(out) == 0 {
		s.mu.Unlock()
		return
	}
	s.buf, s.spare = s.spare[:0], nil
	if s.space != nil {
		close(s.space)
		s.space = nil
	}
	s.mu.Unlock()

	n, err := s.w.Write(out)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.stalled = false
	if err != nil {
		lost := bytes.Count(out[min(n, len(out)):], []byte{'\n'})
		s.dropped.Add(int64(lost))
		if s.werr == nil {
			s.werr = fmt.Errorf("tracefile: writing %s: %w (%d events lost)", s.path, err, lost)
		}
	}
	if cap(out) <= 2*s.limit {
		s.spare = out[:0]
	}
}

// Flush writes the buffered events to the file (without fsync) and returns
// the first write error since the last Flush, if any.
func (s *Sink) Flush() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errClosed
	}
	s.write()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.werr
	s.werr = nil
	return err
}

var errClosed = errors.New("tracefile: the sink is closed")

// Dropped returns how many events were lost: dropped because the buffer
// stayed full for MaxBlock, emitted after Close, or not written because of
// a write error.
func (s *Sink) Dropped() int64 { return s.dropped.Load() }

// Close flushes the buffered events, stops the background writer and closes
// the file. Events emitted after Close are dropped. Calling Close again
// returns nil.
func (s *Sink) Close() error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		close(s.stop)
		<-s.done
		s.write() // frees room for Emits waiting on a full buffer
		s.mu.Lock()
		s.closed = true
		if s.space != nil {
			close(s.space)
			s.space = nil
		}
		s.mu.Unlock()
		s.write()
		s.mu.Lock()
		err := s.werr
		s.werr = nil
		s.mu.Unlock()
		if cerr := s.c.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("tracefile: closing %s: %w", s.path, cerr)
		}
		s.closeErr = err
	})
	if !first {
		return nil
	}
	return s.closeErr
}
