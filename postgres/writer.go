package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
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

// writeReq is one Create or Update waiting for a group commit.
type writeReq struct {
	create bool
	id     string
	// version and owner are the compare-and-set condition of an update.
	version  int64
	owner    string
	newOwner string // an update's new owner; a create's owner
	workflow string // of a create
	status   string
	lease    int64 // microseconds, as leaseMicros
	created  time.Time
	updated  time.Time
	body     []byte

	done chan writeRes // buffered, receives exactly one result
}

type writeRes struct {
	applied    bool // false: the create's ID was taken, or the update's condition failed
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
		// Let the callers that are ready to write join this commit.
		runtime.Gosched()
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

// commit runs batch as one transaction and delivers each result. If the
// server rejects a statement, the whole transaction rolls back, so each write
// is then retried on its own: one bad write never fails the others.
func (s *Store) commit(batch []*writeReq) {
	s.batches.Add(1)
	s.writes.Add(int64(len(batch)))
	err := s.exec(batch)
	var pgErr *pgconn.PgError
	if err != nil && len(batch) > 1 && errors.As(err, &pgErr) {
		for _, r := range batch {
			if err := s.exec([]*writeReq{r}); err != nil {
				r.done <- writeRes{err: err}
			}
		}
		return
	}
	for _, r := range batch {
		if err != nil {
			r.done <- writeRes{err: err}
		}
	}
}

// exec sends batch as one pipeline of statements, each carrying many writes
// as arrays, and delivers the results if it commits. Without an explicit
// BEGIN, the statements of one pipeline up to its Sync form one implicit
// transaction, committed in the same round trip.
func (s *Store) exec(batch []*writeReq) error {
	// Sorted by ID, the writes of concurrent batches lock rows in the same
	// order and do not deadlock. (Should the server still abort a batch,
	// commit retries its writes one by one.)
	slices.SortStableFunc(batch, func(a, b *writeReq) int {
		if a.create != b.create {
			if a.create {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.id, b.id)
	})
	// One statement affects a row once, so writes to the same run (a
	// cancel racing a checkpoint, say) go in later statements, in order.
	var stmts [][]*writeReq
	for i := 0; i < len(batch); {
		j := i + 1
		for j < len(batch) && batch[j].create == batch[i].create {
			j++
		}
		stmts = appendRounds(stmts, batch[i:j])
		i = j
	}

	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	b := &pgx.Batch{}
	for _, st := range stmts {
		switch r := st[0]; {
		case len(st) == 1 && r.create:
			b.Queue(s.sql.createOne, r.id, r.workflow, r.status, r.newOwner, r.lease, r.created, r.created.UnixNano(), r.updated, r.body)
		case len(st) == 1:
			b.Queue(s.sql.updateOne, r.id, r.version, r.owner, r.status, r.newOwner, r.lease, r.updated, r.body)
		case r.create:
			b.Queue(s.sql.create, createArgs(st)...)
		default:
			b.Queue(s.sql.update, updateArgs(st)...)
		}
	}
	br := s.pool.SendBatch(ctx, b)
	res := make(map[*writeReq]writeRes, len(batch))
	var err error
	for _, st := range stmts {
		byID := make(map[string]*writeReq, len(st))
		for _, r := range st {
			byID[r.id] = r
			res[r] = writeRes{}
		}
		rows, qerr := br.Query()
		if qerr == nil {
			var id string
			var lu *time.Time
			_, qerr = pgx.ForEachRow(rows, []any{&id, &lu}, func() error {
				if r := byID[id]; r != nil {
					res[r] = writeRes{applied: true, leaseUntil: lu}
				}
				return nil
			})
		}
		if err == nil {
			err = qerr
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	created := 0
	for r, v := range res {
		if r.create && v.applied {
			created++
		}
		r.done <- v
	}
	if created > 0 {
		s.maybeAnalyze(s.created.Add(int64(created)))
	}
	return nil
}

// firstAnalyze and lastAnalyze bound the run counts at which a store
// analyzes the runs table.
const (
	firstAnalyze = 512
	lastAnalyze  = 1 << 22
)

// maybeAnalyze refreshes the statistics of the runs table in the background
// each time the number of runs this store created doubles, up to
// lastAnalyze. The cached plans of a connection were made when the table was
// small, often with sequential scans that grow slower with every run; an
// ANALYZE invalidates them so they are made again, with the primary key.
// Autovacuum does the same, but only every minute or so, and a new table
// fills faster than that.
func (s *Store) maybeAnalyze(created int64) {
	at := s.analyzeAt.Load()
	if created < at || at > lastAnalyze || !s.analyzing.CompareAndSwap(false, true) {
		return
	}
	s.analyzeAt.Store(2 * created)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.analyzing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
		defer cancel()
		// Best effort: without the right to analyze, autovacuum will do.
		_, _ = s.pool.Exec(ctx, "ANALYZE "+s.sql.runs)
	}()
}

// appendRounds splits writes, sorted by ID, into groups without a repeated
// ID, keeping the order of the writes to each run.
func appendRounds(stmts [][]*writeReq, writes []*writeReq) [][]*writeReq {
	for len(writes) > 0 {
		var round, rest []*writeReq
		for i, r := range writes {
			if i > 0 && r.id == writes[i-1].id {
				rest = append(rest, r)
			} else {
				round = append(round, r)
			}
		}
		stmts = append(stmts, round)
		writes = rest
	}
	return stmts
}

func createArgs(rs []*writeReq) []any {
	n := len(rs)
	id, wf, st, owner := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	lease, ns := make([]int64, n), make([]int64, n)
	created, updated := make([]time.Time, n), make([]time.Time, n)
	body := make([][]byte, n)
	for i, r := range rs {
		id[i], wf[i], st[i], owner[i] = r.id, r.workflow, r.status, r.newOwner
		lease[i], ns[i] = r.lease, r.created.UnixNano()
		created[i], updated[i], body[i] = r.created, r.updated, r.body
	}
	return []any{id, wf, st, owner, lease, created, ns, updated, body}
}

func updateArgs(rs []*writeReq) []any {
	n := len(rs)
	id, owner, st, newOwner := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	version, lease := make([]int64, n), make([]int64, n)
	updated := make([]time.Time, n)
	body := make([][]byte, n)
	for i, r := range rs {
		id[i], version[i], owner[i], st[i], newOwner[i] = r.id, r.version, r.owner, r.status, r.newOwner
		lease[i], updated[i], body[i] = r.lease, r.updated, r.body
	}
	return []any{id, version, owner, st, newOwner, lease, updated, body}
}
