package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flux-go/flux"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// maxBatch bounds the writes one group commit carries.
const maxBatch = 256

// batchTimeout bounds one group commit. Callers wait for the outcome of a
// write they handed over whatever their context says, so that a run's
// in-memory version never disagrees with a write that did land.
const batchTimeout = time.Minute

// errClosed is the error of a write to a closed store.
var errClosed = fmt.Errorf("postgres: store is closed: %w", flux.ErrClosed)

// writeReq is one Create or Update waiting for a group commit. The statement
// returns one row (lease_until) when it took effect and none when its
// condition failed.
type writeReq struct {
	id   string
	sql  string
	args []any
	done chan writeRes // buffered, receives exactly one result
}

type writeRes struct {
	applied    bool
	leaseUntil *time.Time
	err        error
}

// submit hands r to a writer and waits for its result.
func (s *Store) submit(ctx context.Context, r *writeReq) writeRes {
	if err := ctx.Err(); err != nil {
		return writeRes{err: err}
	}
	r.done = make(chan writeRes, 1)
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return writeRes{err: ctx.Err()}
	case <-s.done:
		return writeRes{err: errClosed}
	}
	return <-r.done
}

// writer is a group-commit loop: it takes one request, then every other
// request already waiting, and commits them together.
func (s *Store) writer() {
	defer s.wg.Done()
	batch := make([]*writeReq, 0, maxBatch)
	for {
		select {
		case r := <-s.reqs:
			batch = append(batch[:0], r)
		case <-s.done:
			return
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.commit(batch)
		clear(batch)
	}
}

// commit runs batch as one pipelined transaction and delivers each result.
// If the server rejects a statement, the whole transaction rolls back, so
// each write is then retried on its own: one bad write never fails the
// others.
func (s *Store) commit(batch []*writeReq) {
	// Rows are locked in ID order by every multi-row write, so concurrent
	// batches cannot deadlock.
	slices.SortStableFunc(batch, func(a, b *writeReq) int { return cmp.Compare(a.id, b.id) })
	res, err := s.exec(batch)
	var pgErr *pgconn.PgError
	if err != nil && len(batch) > 1 && errors.As(err, &pgErr) {
		for _, r := range batch {
			one, err := s.exec([]*writeReq{r})
			if err != nil {
				one = []writeRes{{err: err}}
			}
			r.done <- one[0]
		}
		return
	}
	for i, r := range batch {
		if err != nil {
			r.done <- writeRes{err: err}
		} else {
			r.done <- res[i]
		}
	}
}

// exec sends the batch: without an explicit BEGIN, the statements of one
// pipeline up to its Sync form one implicit transaction, committed in the
// same round trip.
func (s *Store) exec(batch []*writeReq) ([]writeRes, error) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(batch))}
	for _, r := range batch {
		b.Queue(r.sql, r.args...)
	}
	br := s.pool.SendBatch(ctx, b)
	res := make([]writeRes, len(batch))
	var err error
	for i := range batch {
		var lu *time.Time
		switch e := br.QueryRow().Scan(&lu); {
		case e == nil:
			res[i] = writeRes{applied: true, leaseUntil: lu}
		case errors.Is(e, pgx.ErrNoRows):
		case err == nil:
			err = e
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}
