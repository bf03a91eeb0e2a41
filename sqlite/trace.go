package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/tracestore"
	"github.com/flux-go/flux/tracefile"
)

// TraceSink returns the store's trace sink: pass it as [flux.Config.Trace]
// to keep the engine's trace events in the table trace_events, each as one
// line of a trace file (package tracefile), read back by TraceEvents.
//
// Emit only appends the event to an in-memory buffer; a background
// goroutine writes the buffer every 50ms (sooner when 1000 events wait)
// through the store's writer, each batch in one transaction. When the
// buffer (16384 events) is full, Emit blocks until there is room, for at
// most 5s, and only then drops the event: a trace with gaps is worth less
// than a run held up briefly. FlushTrace writes the buffer at once; Close
// writes it before closing the store, so close the engines first. Every
// call returns the same sink.
func (s *Store) TraceSink() flux.TraceSink {
	return s.traceSink()
}

func (s *Store) traceSink() *tracestore.Sink {
	s.traceMu.Lock()
	defer s.traceMu.Unlock()
	if s.trace == nil {
		s.trace = tracestore.New(s.writeTrace)
		if s.isClosed() {
			_ = s.trace.Close()
		}
	}
	return s.trace
}

// traceRowsPerInsert keeps an INSERT's parameters under SQLite's limit.
const traceRowsPerInsert = 200

// writeTrace writes rows in one transaction of the writer's.
func (s *Store) writeTrace(ctx context.Context, rows []tracestore.Row) error {
	return s.submit(ctx, func(t *txn) error {
		for len(rows) > 0 {
			n := min(len(rows), traceRowsPerInsert)
			var q strings.Builder
			q.WriteString("INSERT INTO trace_events (run_id, created_at, type, line) VALUES ")
			args := make([]any, 0, 4*n)
			for i, r := range rows[:n] {
				if i > 0 {
					q.WriteByte(',')
				}
				q.WriteString("(?, ?, ?, ?)")
				args = append(args, r.RunID, r.Time, r.Type, r.Line)
			}
			if _, err := t.conn.ExecContext(bg, q.String(), args...); err != nil {
				return fmt.Errorf("sqlite: writing trace events: %w", err)
			}
			rows = rows[n:]
		}
		return nil
	})
}

// FlushTrace writes the trace events buffered by TraceSink and returns the
// first error writing them since the last FlushTrace, if any.
func (s *Store) FlushTrace() error {
	s.traceMu.Lock()
	t := s.trace
	s.traceMu.Unlock()
	if t == nil {
		return nil
	}
	return t.Flush()
}

// TraceEvents returns the stored trace events of the run runID, or of all
// runs if runID is "", whose sequence number is above afterSeq, in sequence
// order, at most limit of them (10000 if limit is not in 1..10000), and
// the afterSeq of the next page: the last sequence number read, or
// afterSeq if none was.
//
// A stored line that does not decode is skipped and reported: the error,
// if not nil, joins one *tracefile.SeqError per such line, which says its
// sequence number and wraps [flux.ErrCorrupt]; the events returned with it
// are the good ones of the page, and next goes past the bad ones.
func (s *Store) TraceEvents(ctx context.Context, runID string, afterSeq int64, limit int) ([]tracefile.Stored, int64, error) {
	q := "SELECT seq, run_id, line FROM trace_events WHERE seq > ?"
	args := []any{afterSeq}
	if runID != "" {
		q, args = q+" AND run_id = ?", append(args, runID)
	}
	q, args = q+" ORDER BY seq LIMIT ?", append(args, tracestore.Limit(limit))
	next := afterSeq
	var d tracestore.Decoder
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var seq int64
			var run, line string
			if err := rows.Scan(&seq, &run, &line); err != nil {
				return err
			}
			d.Add(seq, run, line)
			next = seq
		}
		return rows.Err()
	})
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil, afterSeq, err
		}
		return nil, afterSeq, fmt.Errorf("sqlite: reading trace events: %w", err)
	}
	return d.Events, next, d.Err()
}
