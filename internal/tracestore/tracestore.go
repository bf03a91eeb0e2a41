// Package tracestore is the part of the SQL stores' trace sinks they share:
// an in-memory buffer of encoded trace events that a background goroutine
// hands to the store in batches, and the decoding of stored lines.
package tracestore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/tracefile"
)

// Row is one trace event as a store keeps it.
type Row struct {
	RunID string
	Time  int64 // Unix nanoseconds
	Type  string
	Line  string // the event's trace-file line, without the newline
}

// WriteFunc writes rows in one transaction.
type WriteFunc func(ctx context.Context, rows []Row) error

// Defaults of a [Sink].
const (
	// BufferLimit is how many events may wait to be written.
	BufferLimit = 16384
	// BatchSize is the most events one transaction writes.
	BatchSize = 1000
	// FlushInterval is how often the buffered events are written; sooner
	// when BatchSize of them are waiting.
	FlushInterval = 50 * time.Millisecond
	// MaxBlock is how long Emit waits for room in a full buffer before it
	// drops the event.
	MaxBlock = 5 * time.Second
	// writeTimeout bounds one batch's transaction.
	writeTimeout = 30 * time.Second
)

// Sink is a [flux.TraceSink] that buffers events in memory and writes them
// in batches, one transaction each, from a background goroutine.
//
// When the buffer is full (the database is slower than the runs), Emit
// blocks until the writer makes room, for at most MaxBlock; only then is
// the event dropped and counted in Dropped. A stored trace is meant to be
// complete, so a short stall of the runs is preferred to a gap; a database
// that is down for longer must not stop every run, so the wait is bounded.
type Sink struct {
	write    WriteFunc
	limit    int
	maxBlock time.Duration

	mu     sync.Mutex
	buf    []Row
	space  chan struct{} // closed when the writer took the buffer
	closed bool
	err    error // first write error since the last Flush

	wmu     sync.Mutex // serialises writes, so that seq follows Emit order
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	dropped atomic.Int64
}

var _ flux.TraceSink = (*Sink)(nil)

// New starts a Sink that writes with write.
func New(write WriteFunc) *Sink {
	return newSink(write, BufferLimit, MaxBlock, FlushInterval)
}

func newSink(write WriteFunc, limit int, maxBlock, interval time.Duration) *Sink {
	s := &Sink{
		write: write, limit: limit, maxBlock: maxBlock,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go s.loop(interval)
	return s
}

// Emit implements [flux.TraceSink].
func (s *Sink) Emit(ev flux.TraceEvent) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	row := Row{RunID: ev.RunID, Time: ev.Time.UnixNano(), Type: string(ev.Type), Line: string(tracefile.EncodeEvent(ev))}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	s.mu.Lock()
	for {
		if s.closed {
			s.mu.Unlock()
			s.dropped.Add(1)
			return
		}
		if len(s.buf) < s.limit {
			s.buf = append(s.buf, row)
			kick := len(s.buf) >= BatchSize
			s.mu.Unlock()
			if kick {
				s.signal()
			}
			return
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
			s.dropped.Add(1)
			return
		}
		s.mu.Lock()
	}
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
		s.flush()
	}
}

// flush writes what is buffered, BatchSize events per transaction.
func (s *Sink) flush() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	rows := s.buf
	s.buf = nil
	if s.space != nil {
		close(s.space)
		s.space = nil
	}
	s.mu.Unlock()
	for len(rows) > 0 {
		n := min(len(rows), BatchSize)
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := s.write(ctx, rows[:n])
		cancel()
		if err != nil {
			s.dropped.Add(int64(n))
			s.mu.Lock()
			if s.err == nil {
				s.err = fmt.Errorf("writing %d trace events: %w", n, err)
			}
			s.mu.Unlock()
		}
		rows = rows[n:]
	}
}

// Flush writes the buffered events and returns the first write error since
// the last Flush, if any.
func (s *Sink) Flush() error {
	s.flush()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.err
	s.err = nil
	return err
}

// Dropped returns how many events were lost: dropped because the buffer
// stayed full for MaxBlock, emitted after Close, or in a batch whose write
// failed.
func (s *Sink) Dropped() int64 { return s.dropped.Load() }

// Close writes the buffered events and stops the background goroutine;
// later events are dropped. It returns the first write error not yet
// reported. Calling Close again returns nil.
func (s *Sink) Close() error {
	first := false
	s.once.Do(func() {
		first = true
		close(s.stop)
		<-s.done
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
	})
	if !first {
		return nil
	}
	return s.Flush()
}

// Decoder decodes stored lines. A line that does not parse is left out and
// reported as a *tracefile.SeqError wrapping [flux.ErrCorrupt]; the errors
// are joined. Warnings of [tracefile.ParseLine] (an unknown event type,
// invalid UTF-8) keep their record and are not reported.
type Decoder struct {
	Events []tracefile.Stored
	errs   []error
}

// Add decodes one stored line.
func (d *Decoder) Add(seq int64, runID, line string) {
	rec, err := tracefile.ParseLine([]byte(line))
	if err != nil && errors.Is(err, flux.ErrCorrupt) {
		d.errs = append(d.errs, &tracefile.SeqError{Seq: seq, RunID: runID, Err: err})
		return
	}
	d.Events = append(d.Events, tracefile.Stored{Seq: seq, RunID: runID, Record: rec})
}

// Err returns the errors of the corrupt lines, joined, or nil.
func (d *Decoder) Err() error { return errors.Join(d.errs...) }

// Limit returns the page size for a TraceEvents limit: limit if in
// (0, MaxPage], else MaxPage.
func Limit(limit int) int {
	if limit <= 0 || limit > MaxPage {
		return MaxPage
	}
	return limit
}

// MaxPage is the most events one TraceEvents call returns.
const MaxPage = 10000
