package postgres

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/tracestore"
	"github.com/flux-go/flux/tracefile"
	"github.com/jackc/pgx/v5"
)

// TraceSink returns the store's trace sink: pass it as [flux.Config.Trace]
// to keep the engine's trace events in the table trace_events, each as one
// line of a trace file (package tracefile), read back by TraceEvents.
//
// Emit only appends the event to an in-memory buffer; a background
// goroutine writes the buffer every 50ms (sooner when 1000 events wait),
// each batch in one transaction, under an advisory lock of the schema's so
// that the stores of several processes write their batches one at a time
// and sequence numbers follow commit order (a reader paging by sequence
// number misses nothing). When the buffer (16384 events) is full, Emit
// blocks until there is room, for at most 5s, and only then drops the
// event: a trace with gaps is worth less than a run held up briefly.
// FlushTrace writes the buffer at once; Close writes it before closing the
// store, so close the engines first. Every call returns the same sink.
func (s *Store) TraceSink() flux.TraceSink {
	s.traceMu.Lock()
	defer s.traceMu.Unlock()
	if s.trace == nil {
		s.trace = tracestore.New(s.writeTrace)
		if s.closed.Load() {
			_ = s.trace.Close()
		}
	}
	return s.trace
}

// traceLockKey is the advisory lock that serialises the writes of trace
// batches to the schema.
func (s *Store) traceLockKey() int64 {
	h := fnv.New64a()
	h.Write([]byte("flux/postgres trace " + s.schema))
	return int64(h.Sum64())
}

// writeTrace writes rows in one transaction.
func (s *Store) writeTrace(ctx context.Context, rows []tracestore.Row) error {
	runs := make([]string, len(rows))
	times := make([]int64, len(rows))
	types := make([]string, len(rows))
	lines := make([]string, len(rows))
	for i, r := range rows {
		runs[i], times[i], types[i], lines[i] = r.RunID, r.Time, r.Type, r.Line
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.traceLockKey()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, s.sql.insertTrace, runs, times, types, lines)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: writing trace events: %w", err)
	}
	return nil
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

// closeTrace writes the buffered trace events and stops the sink.
func (s *Store) closeTrace() error {
	s.traceMu.Lock()
	defer s.traceMu.Unlock()
	s.closed.Store(true)
	if s.trace == nil {
		return nil
	}
	return s.trace.Close()
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
	next := afterSeq
	var d tracestore.Decoder
	err := s.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, s.sql.traceEvents, afterSeq, runID, tracestore.Limit(limit))
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
		return nil, afterSeq, err
	}
	return d.Events, next, d.Err()
}
