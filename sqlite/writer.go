package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/sqlstore"
)

// A write is a request to the writer goroutine. Its op runs inside the
// writer's transaction; the caller learns the outcome once that transaction
// committed.
type request struct {
	state atomic.Int32 // pending, taken or abandoned
	op    func(t *txn) error
	err   error
	done  chan struct{}
}

const (
	pending int32 = iota
	taken
	abandoned
)

// txn is what an op may use: the writer's connection, in a transaction.
type txn struct {
	*writeStmts
	conn *sql.Conn
}

// bg is the context of the writer's statements: a caller that gives up must
// not interrupt a batch holding other callers' writes.
var bg = context.Background()

// submit queues op for the writer and waits for its outcome. If ctx ends
// before the writer took the op, the op never runs.
func (s *Store) submit(ctx context.Context, op func(t *txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{op: op, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.queue = append(s.queue, r)
	s.mu.Unlock()
	s.signal()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(pending, abandoned) {
			return ctx.Err()
		}
		<-r.done // the writer has it: its outcome is the truth
		return r.err
	}
}

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// maxYieldBatch is the batch size above which the writer stops waiting for
// more writes.
const maxYieldBatch = 64

// yieldIdle is how many yields in a row that bring no write end the
// writer's wait for more. One was too few: a goroutine woken by the last
// commit often queues its write a yield or two later, and smaller batches
// cost the single writer more per write (W1 at C=32 on SQLite: 24,300 -
// 25,800 steps/s with 1, 29,800 - 30,200 with 4, in one sitting; one
// writer's latency alone is unchanged, each yield returning at once when
// nothing else is ready to run).
const yieldIdle = 4

// writer commits the queued writes in batches until the store is closed and
// the queue drained.
func (s *Store) writer() {
	defer close(s.exited)
	var batch []*request
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closed {
			s.mu.Unlock()
			<-s.wake
			s.mu.Lock()
		}
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return
		}
		// Let the goroutines that are about to write (woken by the last
		// batch, say) queue their writes while they keep coming: a batch
		// costs about as much for one write as for many. It stops after
		// yieldIdle yields without a new write, or at maxYieldBatch.
		for n, idle := 0, 0; idle < yieldIdle && len(s.queue) < maxYieldBatch; {
			if len(s.queue) > n {
				n, idle = len(s.queue), 0
			} else {
				idle++
			}
			s.mu.Unlock()
			runtime.Gosched()
			s.mu.Lock()
		}
		batch, s.queue = s.queue, batch[:0]
		s.mu.Unlock()

		live := batch[:0:0]
		for _, r := range batch {
			if r.state.CompareAndSwap(pending, taken) {
				live = append(live, r)
			}
		}
		s.batches.Add(1)
		s.batchedWrites.Add(int64(len(live)))
		for len(live) > 0 {
			live = s.commit(live)
		}
		clear(batch)
	}
}

// commit runs reqs in one transaction and reports their outcomes. If an op
// fails in a way that may have left the transaction unusable, commit rolls
// back, reports the failure to that op alone, and returns the others to be
// run again.
func (s *Store) commit(reqs []*request) (again []*request) {
	t := &txn{writeStmts: &s.w, conn: s.conn}
	if _, err := s.w.begin.ExecContext(bg); err != nil {
		finish(reqs, fmt.Errorf("sqlite: starting a transaction: %w", err))
		return nil
	}
	for i, r := range reqs {
		r.err = r.op(t)
		if r.err != nil && !isOutcome(r.err) {
			s.rollback()
			finish(reqs[i:i+1], r.err)
			return append(append([]*request(nil), reqs[:i]...), reqs[i+1:]...)
		}
	}
	if _, err := s.w.commit.ExecContext(bg); err != nil {
		s.rollback()
		finish(reqs, fmt.Errorf("sqlite: committing: %w", err))
		return nil
	}
	for _, r := range reqs {
		close(r.done)
	}
	return nil
}

func (s *Store) rollback() {
	// After some errors SQLite has already rolled back; then this fails,
	// harmlessly.
	_, _ = s.w.rollback.ExecContext(bg)
}

func finish(reqs []*request, err error) {
	for _, r := range reqs {
		r.err = err
		close(r.done)
	}
}

// isOutcome reports whether err is an answer of the Storage contract, from
// an op that wrote nothing, rather than a failure of the database.
func isOutcome(err error) bool {
	for _, e := range []error{flux.ErrConflict, flux.ErrLeaseLost, flux.ErrRunNotFound, flux.ErrRunExists, flux.ErrRunActive,
		flux.ErrCorrupt, flux.ErrRunFinished, flux.ErrScheduleNotFound} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// claimable is the condition on a run's lease that ClaimExpired takes it
// on: ?1 the claimant, who must not hold it, ?2 now, ?3 the claimant's
// engine ID. The lease is free, expired, or held by an earlier start of the
// same engine.
const claimable = `owner <> ?1 AND (owner = '' OR lease_until <= ?2 OR owner = ?3 OR substr(owner, 1, length(?3) + 1) = ?3 || '#')`

// writeStmts are the writer's statements, prepared on its connection.
type writeStmts struct {
	begin, commit, rollback *sql.Stmt

	insertRun, insertLog *sql.Stmt
	updateRun            *sql.Stmt // compare-and-set, returning the lease
	updateRunning        *sql.Stmt // compare-and-set of an owned running run that stays so
	updateOwned          *sql.Stmt // compare-and-set of an owned run, returning nothing
	updateOwnedClean     *sql.Stmt // the same, for a run without an error that stays so
	versionOwner         *sql.Stmt
	selectHeader         *sql.Stmt
	claim                *sql.Stmt
	expired              *sql.Stmt
	extend               *sql.Stmt
	release              *sql.Stmt
	cancel, status       *sql.Stmt

	expiredCounted, leaseOf  *sql.Stmt
	waiting                  *sql.Stmt // the waiting runs by wake_at
	selectLog, selectSignals *sql.Stmt
	counted                  *sql.Stmt // the runs a limit counts, by key
	signalRun, signalWaiters *sql.Stmt // a signal's update of its runs
	insertSignal, consume    *sql.Stmt
}

func (w *writeStmts) all() []**sql.Stmt {
	return []**sql.Stmt{&w.begin, &w.commit, &w.rollback, &w.insertRun, &w.insertLog, &w.updateRun, &w.updateRunning, &w.updateOwned, &w.updateOwnedClean, &w.versionOwner,
		&w.selectHeader, &w.claim, &w.expired, &w.extend, &w.release, &w.cancel, &w.status,
		&w.expiredCounted, &w.leaseOf, &w.waiting, &w.selectLog, &w.selectSignals, &w.counted, &w.signalRun, &w.signalWaiters, &w.insertSignal, &w.consume}
}

// stmtText is a statement of writeStmts and its SQL.
type stmtText struct {
	s   **sql.Stmt
	sql string
}

func (w *writeStmts) prepare(ctx context.Context, conn *sql.Conn) error {
	for _, p := range w.texts() {
		st, err := conn.PrepareContext(ctx, p.sql)
		if err != nil {
			w.close()
			return fmt.Errorf("preparing %q: %w", p.sql, err)
		}
		*p.s = st
	}
	return nil
}

// texts returns w's statements and their SQL.
func (w *writeStmts) texts() []stmtText {
	return []stmtText{
		{&w.begin, "BEGIN IMMEDIATE"},
		{&w.commit, "COMMIT"},
		{&w.rollback, "ROLLBACK"},
		{&w.insertRun, "INSERT INTO runs (" + headerColumns + ") VALUES (" + headerValues + ") ON CONFLICT (id) DO NOTHING"},
		{&w.insertLog, insertLog},
		// ?8 > 0 extends the stored owner's lease to ?9, ?8 < 0 releases it.
		// wake_at becomes ?18, the writer's, unless a signal came that the
		// writer had not seen (signal_seq above its ?17): then 0, due now.
		// Workflow and created_at are left alone: they are set by Create,
		// and an UPDATE naming them rewrites their indexes too.
		{&w.updateRun, `UPDATE runs SET status = ?1, error = ?2, fingerprint = ?3, updated_at = ?4, finished_at = ?5,
				nodes = ?6, done = ?10, attempts = ?11, failures = ?12, at_node = ?13, interrupted = ?7, version = version + 1,
				wake_at = CASE WHEN signal_seq > ?17 THEN 0 ELSE ?18 END, wait_key = ?19,
				lease_until = CASE WHEN ?8 > 0 AND owner <> '' THEN ?9 WHEN ?8 < 0 THEN 0 ELSE lease_until END,
				owner = CASE WHEN ?8 < 0 THEN '' ELSE owner END
			WHERE id = ?14 AND version = ?15 AND owner IN (?16, '') RETURNING lease_until, version`},
		// The short way for a running run's owner, when it stays running:
		// status, finished_at and error (columns of the partial index and
		// of the search) are compared, not set, and nothing is returned.
		// wake_at is 0 already: only a waiting run has another.
		{&w.updateRunning, `UPDATE runs SET fingerprint = ?2, updated_at = ?3, nodes = ?4, interrupted = ?5,
				lease_until = ?6, done = ?7, attempts = ?8, failures = ?9, at_node = ?10, version = version + 1, wait_key = ?15
			WHERE id = ?11 AND version = ?12 AND owner = ?13 AND status = ?14 AND finished_at = 0 AND error = ?1`},
		// The short way for a run's owner: ?8 > 0 sets the lease to ?9,
		// ?8 < 0 gives it up.
		{&w.updateOwned, `UPDATE runs SET status = ?1, error = ?2, fingerprint = ?3, updated_at = ?4, finished_at = ?5,
				nodes = ?6, done = ?10, attempts = ?11, failures = ?12, at_node = ?13, interrupted = ?7, version = version + 1,
				wake_at = CASE WHEN signal_seq > ?17 THEN 0 ELSE ?18 END, wait_key = ?19,
				lease_until = CASE WHEN ?8 > 0 THEN ?9 ELSE 0 END,
				owner = CASE WHEN ?8 < 0 THEN '' ELSE owner END
			WHERE id = ?14 AND version = ?15 AND owner = ?16`},
		// The same for a run with no error that keeps none: error is
		// compared, not set, so that the search's trigger is not run.
		{&w.updateOwnedClean, `UPDATE runs SET status = ?1, fingerprint = ?3, updated_at = ?4, finished_at = ?5,
				nodes = ?6, done = ?10, attempts = ?11, failures = ?12, at_node = ?13, interrupted = ?7, version = version + 1,
				wake_at = CASE WHEN signal_seq > ?17 THEN 0 ELSE ?18 END, wait_key = ?19,
				lease_until = CASE WHEN ?8 > 0 THEN ?9 ELSE 0 END,
				owner = CASE WHEN ?8 < 0 THEN '' ELSE owner END
			WHERE id = ?14 AND version = ?15 AND owner = ?16 AND error = ?2`},
		{&w.versionOwner, "SELECT version, owner FROM runs WHERE id = ?"},
		{&w.selectHeader, selectHeader},
		{&w.claim, "UPDATE runs SET owner = ?, lease_until = ?, version = version + 1 WHERE id = ? RETURNING version"},
		// The pending and running runs of workflow ?1 that ?2 does not
		// hold, after run (?4, ?5) in the order of their creation, but the
		// free pending runs of keys ?3: from runs_unfinished alone, their ID
		// and what decides whether ?2 may claim them. A run's row is read
		// only if another engine leases it, for lease_until, and if it is
		// claimed.
		{&w.expired, `SELECT id, status, owner, concurrency_key, created_at FROM runs INDEXED BY runs_unfinished
			WHERE workflow = ?1 AND status IN ('pending', 'running') AND owner <> ?2
			AND NOT (status = 'pending' AND owner = '' AND concurrency_key IN (SELECT value FROM json_each(?3)))
			AND (created_at, id) > (?4, ?5)
			ORDER BY created_at, id`},
		// The same but of the runs a limit counts only: of a workflow whose
		// limit is full, however many pending runs it holds back. The
		// condition is runs_counted's, word for word. (?3 is unused.)
		{&w.expiredCounted, `SELECT id, status, owner, concurrency_key, created_at FROM runs INDEXED BY runs_counted
			WHERE workflow = ?1 AND (status = 'running' OR (owner <> '' AND status IN ('pending', 'waiting')))
			AND status IN ('pending', 'running') AND owner <> ?2 AND (created_at, id) > (?4, ?5)
			ORDER BY created_at, id`},
		{&w.leaseOf, "SELECT lease_until FROM runs WHERE id = ?"},
		// By runs_waiting, earliest first, up to the first that is not
		// due (ClaimExpired stops there: its NextWake): never those after.
		{&w.waiting, `SELECT ` + headerColumns + ` FROM runs INDEXED BY runs_waiting
			WHERE status = 'waiting' AND wake_at < ` + strconv.FormatInt(sqlstore.NeverWake, 10) + `
			AND workflow IN (SELECT value FROM json_each(?4)) AND ` + claimable + `
			ORDER BY wake_at`},
		{&w.selectLog, selectLog},
		{&w.selectSignals, selectSignals},
		// The condition is runs_counted's, word for word.
		{&w.counted, `SELECT concurrency_key, count(*) FROM runs INDEXED BY runs_counted
			WHERE workflow = ? AND (status = 'running' OR (owner <> '' AND status IN ('pending', 'waiting')))
			GROUP BY concurrency_key`},
		// A signal to run ?1 with key ?2 ('' none) that it does not have.
		{&w.signalRun, `UPDATE runs SET signal_seq = signal_seq + 1,
				wake_at = CASE WHEN status = 'waiting' THEN 0 ELSE wake_at END
			WHERE id = ?1 AND status NOT IN ('completed', 'failed', 'cancelled')
			AND (?2 = '' OR NOT EXISTS (SELECT 1 FROM signals WHERE run_id = ?1 AND key = ?2 AND key <> ''))
			RETURNING id, signal_seq, status, owner, lease_until`},
		// The same to the unfinished runs listening for event ?1, by
		// runs_wait_key.
		{&w.signalWaiters, `UPDATE runs INDEXED BY runs_wait_key SET signal_seq = signal_seq + 1,
				wake_at = CASE WHEN status = 'waiting' THEN 0 ELSE wake_at END
			WHERE wait_key = ?1 AND wait_key <> '' AND status NOT IN ('completed', 'failed', 'cancelled')
			AND (?2 = '' OR NOT EXISTS (SELECT 1 FROM signals WHERE run_id = runs.id AND key = ?2 AND key <> ''))
			RETURNING id, signal_seq, status, owner, lease_until`},
		{&w.insertSignal, `INSERT INTO signals (run_id, seq, name, key, payload, sent_at, node) VALUES (?, ?, ?, ?, ?, ?, -1)`},
		{&w.consume, `UPDATE signals SET node = ?3 WHERE run_id = ?1 AND seq = ?2`},
		{&w.extend, `UPDATE runs SET lease_until = ?
			WHERE owner = ? AND id IN (SELECT value FROM json_each(?)) RETURNING id`},
		{&w.release, "UPDATE runs SET owner = '', lease_until = 0, version = version + 1 WHERE id = ? AND owner = ? AND owner <> ''"},
		{&w.cancel, `UPDATE runs SET status = 'cancelled', error = ?, updated_at = ?, finished_at = ?, owner = '', lease_until = 0,
				wake_at = 0, version = version + 1
			WHERE id = ? AND status NOT IN ('completed', 'failed', 'cancelled') RETURNING version, nodes`},
		{&w.status, "SELECT status FROM runs WHERE id = ?"},
	}
}

func (w *writeStmts) close() error {
	var errs []error
	for _, s := range w.all() {
		if *s != nil {
			errs = append(errs, (*s).Close())
		}
	}
	return errors.Join(errs...)
}
