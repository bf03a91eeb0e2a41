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
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
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

// writeReq is one Create or Checkpoint waiting for a group commit.
type writeReq struct {
	create     *driver.CreateParams
	checkpoint *driver.CheckpointParams

	done chan writeRes // buffered, receives exactly one result
}

func (r *writeReq) id() string {
	if r.create != nil {
		return r.create.Run.ID
	}
	return r.checkpoint.ID
}

type writeRes struct {
	applied    bool // false: the create's ID was taken, or the checkpoint's condition failed
	leaseUntil int64
	version    int64
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
		if (a.create != nil) != (b.create != nil) {
			if a.create != nil {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.id(), b.id())
	})
	// One statement affects a row once, so writes to the same run go in
	// later statements, in order.
	var stmts [][]*writeReq
	for i := 0; i < len(batch); {
		j := i + 1
		for j < len(batch) && (batch[j].create != nil) == (batch[i].create != nil) {
			j++
		}
		stmts = appendRounds(stmts, batch[i:j])
		i = j
	}

	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	b := &pgx.Batch{}
	// The statements are the same at every commit but for the length of
	// their arrays: the plan made once serves them all. Left to choose,
	// the server plans the CTEs anew each time.
	// READ COMMITTED: a checkpoint's update re-reads a row that a Signal
	// changed meanwhile (see checkpointSQL).
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	b.Queue("SET LOCAL plan_cache_mode = force_generic_plan")
	for _, st := range stmts {
		if st[0].create != nil {
			ps := make([]*driver.CreateParams, len(st))
			for i, r := range st {
				ps[i] = r.create
			}
			b.Queue(s.sql.create, createArgs(ps)...)
		} else {
			ps := make([]*driver.CheckpointParams, len(st))
			consume := false
			for i, r := range st {
				ps[i] = r.checkpoint
				consume = consume || len(r.checkpoint.Consume) > 0
			}
			if consume {
				// Only rounds that consume signals pay for the statement
				// that can.
				b.Queue(s.sql.checkpointConsume, append(checkpointArgs(ps), consumeArgs(ps)...)...)
			} else {
				b.Queue(s.sql.checkpoint, checkpointArgs(ps)...)
			}
		}
	}
	wakes := false
	for _, r := range batch {
		wakes = wakes || r.needsWake()
	}
	if wakes {
		b.Queue("SELECT pg_notify($1, '')", s.channel)
	}
	b.Queue("COMMIT")
	br := s.pool.SendBatch(ctx, b)
	res := make(map[*writeReq]writeRes, len(batch))
	var err error
	for range 2 { // BEGIN, SET
		if _, e := br.Exec(); err == nil {
			err = e
		}
	}
	for _, st := range stmts {
		byID := make(map[string]*writeReq, len(st))
		for _, r := range st {
			byID[r.id()] = r
			res[r] = writeRes{}
		}
		rows, qerr := br.Query()
		if qerr == nil {
			var id string
			var until, version int64
			_, qerr = pgx.ForEachRow(rows, []any{&id, &until, &version}, func() error {
				if r := byID[id]; r != nil {
					res[r] = writeRes{applied: true, leaseUntil: until, version: version}
				}
				return nil
			})
		}
		if err == nil {
			err = qerr
		}
	}
	if wakes {
		if _, e := br.Exec(); err == nil { // pg_notify
			err = e
		}
	}
	if _, e := br.Exec(); err == nil { // COMMIT
		err = e
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if wakes {
		s.wakes.Signal() // this process's engines, at once
	}
	created := 0
	for r, v := range res {
		if r.create != nil && v.applied {
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
// ANALYZE invalidates them so they are made again, with the primary keys.
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
		_, _ = s.pool.Exec(ctx, "ANALYZE "+s.sql.runs+", "+s.sql.checkpoints)
	}()
}

// appendRounds splits writes, sorted by ID, into groups without a repeated
// ID, keeping the order of the writes to each run.
func appendRounds(stmts [][]*writeReq, writes []*writeReq) [][]*writeReq {
	for len(writes) > 0 {
		var round, rest []*writeReq
		for i, r := range writes {
			if i > 0 && r.id() == writes[i-1].id() {
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

func createArgs(ps []*driver.CreateParams) []any {
	n := len(ps)
	id, wf, fp, st, owner, errs, atNode := make([]string, n), make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n)
	lease, created, updated, finished := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	input, initial := make([][]byte, n), make([][]byte, n)
	nodes, done, atts, fails, intr := make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
	body := make([][]byte, n)
	wakeAt, signalSeq := make([]int64, n), make([]int64, n)
	waitKey, concKey := make([]string, n), make([]string, n)
	for i, p := range ps {
		h := sqlstore.HeaderOf(p.Run)
		wakeAt[i], waitKey[i], concKey[i], signalSeq[i] = h.WakeAt, h.WaitKey, h.ConcurrencyKey, h.SignalSeq
		body[i] = sqlstore.EncodeCreate(p.Run, p.Data)
		intr[i] = int32(h.Interrupted)
		id[i], wf[i], fp[i], st[i], owner[i], errs[i], atNode[i] = h.ID, h.Workflow, h.Fingerprint, h.Status, h.Owner, h.Error, h.AtNode
		lease[i], created[i], updated[i], finished[i] = leaseMicros(p.Lease), h.CreatedAt, h.UpdatedAt, h.FinishedAt
		input[i], initial[i] = h.Input, h.Initial
		nodes[i], done[i], atts[i], fails[i] = int32(h.Nodes), int32(h.Done), int32(h.Attempts), int32(h.Failures)
	}
	return []any{id, wf, fp, st, owner, lease, created, updated, finished, errs, input, initial, nodes, done, atts, fails, intr, atNode, body,
		wakeAt, waitKey, concKey, signalSeq}
}

func checkpointArgs(ps []*driver.CheckpointParams) []any {
	n := len(ps)
	id, owner, st, errs, fp, atNode := make([]string, n), make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n)
	version, updated, finished, lease := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	nodes, done, atts, fails, intr := make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
	body := make([][]byte, n)
	wakeAt, signalSeq, waitKey := make([]int64, n), make([]int64, n), make([]string, n)
	for i, p := range ps {
		h := p.Header
		wakeAt[i], waitKey[i], signalSeq[i] = sqlstore.WakeNanos(h.Status, h.WakeAt), h.WaitKey, h.SignalSeq
		body[i] = sqlstore.EncodeCheckpoint(h.Nodes, p.Nodes)
		intr[i] = int32(h.Summary.Interrupted)
		id[i], version[i], owner[i], st[i], errs[i], fp[i] = p.ID, p.Version, p.Owner, string(h.Status), h.Error, h.Fingerprint
		updated[i], finished[i], lease[i] = sqlstore.Nanos(h.UpdatedAt), sqlstore.Nanos(h.FinishedAt), leaseMicros(p.Lease)
		nodes[i], done[i], atts[i], fails[i], atNode[i] = int32(h.Nodes), int32(h.Summary.Done), int32(h.Summary.Attempts),
			int32(h.Summary.Failures), h.Summary.Node
	}
	return []any{id, version, owner, st, errs, fp, updated, finished, nodes, done, atts, fails, atNode, lease, intr, body,
		wakeAt, waitKey, signalSeq}
}
