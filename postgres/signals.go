package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A run's signals are rows of the signals table, numbered by seq from 1;
// the run's signal_seq is the number of them. A signal is stored under the
// lock of its run's row: the row is locked first, then the signal inserted
// with seq signal_seq + 1, then signal_seq incremented and, if the run
// waits, its wake_at set to 0. A Checkpoint to waiting locks the same row,
// so whichever of the two comes second sees the other (see checkpointSQL).

var _ driver.Signaler = (*Store)(nil)

// signalQueries are the statements of signals.
type signalQueries struct {
	lockRun, lockWaitKey      string
	insertSignal, bumpSignals string
	signalRows                string
}

func makeSignalQueries(r func(string) string) signalQueries {
	return signalQueries{
		lockRun: r(`SELECT status FROM {runs} WHERE id = $1 FOR UPDATE`),
		// By runs_wait_key, in ID order like every statement that locks
		// several runs.
		lockWaitKey: r(`SELECT id FROM {runs}
			WHERE wait_key = $1 AND wait_key <> '' AND status NOT IN ('completed', 'failed', 'cancelled')
			ORDER BY id FOR UPDATE`),
		// Of runs locked by the transaction: their signal_seq cannot move.
		insertSignal: r(`INSERT INTO {signals} (run_id, seq, name, key, payload, sent_at, node)
			SELECT id, signal_seq + 1, $2, $3, $4, $5, -1 FROM {runs}
			WHERE id = ANY($1) AND status NOT IN ('completed', 'failed', 'cancelled')
			ON CONFLICT (run_id, key) WHERE key <> '' DO NOTHING`),
		// The runs that got a signal from insertSignal are those that now
		// have one numbered signal_seq + 1. A waiting one becomes due at
		// once, and engines are told if no live lease holds it.
		bumpSignals: r(`WITH up AS (UPDATE {runs} x SET signal_seq = x.signal_seq + 1,
				wake_at = CASE WHEN x.status = 'waiting' THEN 0 ELSE x.wake_at END
			WHERE x.id = ANY($1) AND EXISTS (SELECT 1 FROM {signals} g WHERE g.run_id = x.id AND g.seq = x.signal_seq + 1)
			RETURNING x.status = 'waiting' AND (x.owner = '' OR x.lease_until <= {now}) AS claimable),
		n AS (SELECT pg_notify($2, '') FROM up WHERE claimable LIMIT 1)
		SELECT count(*), (SELECT count(*) FROM n) FROM up`),
		signalRows: r(`SELECT run_id, seq, name, key, payload, sent_at, node FROM {signals}
			WHERE run_id = ANY($1) ORDER BY run_id, seq`),
	}
}

// signalAttempts bounds the tries of a Signal that the server aborted to
// break a deadlock with a group commit (which locks many runs at once).
const signalAttempts = 3

// Signal implements [driver.Signaler]: p.RunID's signal takes one round
// trip to the server, a signal by wait key two.
func (s *Store) Signal(ctx context.Context, p driver.SignalParams) (int, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	switch {
	case p.RunID == "" && p.WaitKey == "":
		return 0, errors.New("postgres: a signal needs a run: set SignalParams.RunID, or WaitKey for the runs waiting for an event")
	case len(p.Payload) > 0 && !json.Valid(p.Payload):
		return 0, fmt.Errorf("postgres: the payload of signal %q is not valid JSON: marshal it with encoding/json", p.Name)
	}
	if err := sqlstore.CheckTime("the time of signal "+p.Name, p.At); err != nil {
		return 0, fmt.Errorf("postgres: %w", err)
	}
	var n, notified int
	var err error
	for range signalAttempts {
		if p.RunID != "" {
			n, notified, err = s.signalRun(ctx, p)
		} else {
			n, notified, err = s.signalWaitKey(ctx, p)
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "40P01" { // deadlock_detected
			break
		}
	}
	switch {
	case err != nil && isFluxError(err):
		return 0, err
	case err != nil && p.RunID != "":
		return 0, fmt.Errorf("postgres: signalling run %s: %w", p.RunID, err)
	case err != nil:
		return 0, fmt.Errorf("postgres: signalling the runs waiting for %q: %w", p.WaitKey, err)
	}
	if notified > 0 {
		s.wakes.Signal() // this process's engines, at once
	}
	return n, nil
}

// signalRun stores p's signal for run p.RunID in one pipelined
// transaction, and returns how many runs got it (0 or 1) and whether
// engines were told.
func (s *Store) signalRun(ctx context.Context, p driver.SignalParams) (n, notified int, err error) {
	ids := []string{p.RunID}
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	b.Queue(s.sql.lockRun, p.RunID)
	b.Queue(s.sql.insertSignal, ids, p.Name, p.Key, []byte(p.Payload), sqlstore.Nanos(p.At))
	b.Queue(s.sql.bumpSignals, ids, s.channel)
	b.Queue("COMMIT")
	br := s.pool.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := br.Exec(); err != nil {
		return 0, 0, err
	}
	var status string
	lockErr := br.QueryRow().Scan(&status)
	if lockErr != nil && !errors.Is(lockErr, pgx.ErrNoRows) {
		return 0, 0, lockErr
	}
	if _, err := br.Exec(); err != nil {
		return 0, 0, err
	}
	if err := br.QueryRow().Scan(&n, &notified); err != nil {
		return 0, 0, err
	}
	if _, err := br.Exec(); err != nil {
		return 0, 0, err
	}
	switch {
	case lockErr != nil:
		return 0, 0, fmt.Errorf("%w: %q", flux.ErrRunNotFound, p.RunID)
	case flux.Status(status).Final():
		return 0, 0, fmt.Errorf("%w: cannot signal run %s: it is %s", flux.ErrRunFinished, p.RunID, status)
	}
	return n, notified, nil
}

// signalWaitKey stores p's signal for every unfinished run waiting for
// p.WaitKey: it locks them, then stores the signals in one more round trip.
func (s *Store) signalWaitKey(ctx context.Context, p driver.SignalParams) (n, notified int, err error) {
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, s.sql.lockWaitKey, p.WaitKey)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(ids) == 0 {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(s.sql.insertSignal, ids, p.Name, p.Key, []byte(p.Payload), sqlstore.Nanos(p.At))
		b.Queue(s.sql.bumpSignals, ids, s.channel)
		br := tx.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return err
		}
		if err := br.QueryRow().Scan(&n, &notified); err != nil {
			_ = br.Close()
			return err
		}
		return br.Close()
	})
	return n, notified, err
}

// querier is what reads signals: a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// attachSignals sets the Signals of those of runs whose SignalSeq is above
// zero, read with q: a run never signalled costs no statement.
func (s *Store) attachSignals(ctx context.Context, q querier, runs ...*flux.Run) error {
	var ids []string
	for _, r := range runs {
		if r.SignalSeq > 0 {
			ids = append(ids, r.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := q.Query(ctx, s.sql.signalRows, ids)
	if err != nil {
		return err
	}
	byID := make(map[string][]driver.Signal, len(ids))
	var id, key string
	var g driver.Signal
	var sent int64
	var node int32
	_, err = pgx.ForEachRow(rows, []any{&id, &g.Seq, &g.Name, &key, &g.Payload, &sent, &node}, func() error {
		g.Key, g.SentAt, g.Node = key, sqlstore.Time(sent), int(node)
		byID[id] = append(byID[id], g)
		g.Payload = nil // the next row scans into a new slice
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range runs {
		if r.SignalSeq > 0 {
			r.Signals = byID[r.ID]
		}
	}
	return nil
}

// consumeArgs are the arrays of checkpointConsume's signals: run, seq and
// node of each signal the checkpoints of ps consume.
func consumeArgs(ps []*driver.CheckpointParams) []any {
	var ids []string
	var seqs []int64
	var nodes []int32
	for _, p := range ps {
		for _, c := range p.Consume {
			ids, seqs, nodes = append(ids, p.ID), append(seqs, c.Seq), append(nodes, int32(c.Node))
		}
	}
	return []any{ids, seqs, nodes}
}

// checkConsume returns an error for a Consume that cannot name a signal of
// the run.
func checkConsume(p *driver.CheckpointParams) error {
	for _, c := range p.Consume {
		if c.Seq < 1 {
			return fmt.Errorf("postgres: checkpoint of run %s consumes signal %d: signals are numbered from 1", p.ID, c.Seq)
		}
		if c.Node < -1 || c.Node >= p.Header.Nodes {
			return fmt.Errorf("postgres: checkpoint of run %s consumes signal %d by node %d of %d", p.ID, c.Seq, c.Node, p.Header.Nodes)
		}
	}
	return nil
}
