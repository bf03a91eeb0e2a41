package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
)

// A run's signals are rows of table signals, keyed by the run and their
// Seq. Its header keeps their count, signal_seq: a run that never had one
// (signal_seq 0) costs no read, and a signal's update of the header row is
// what decides its race with a Checkpoint to waiting (see driver.Header).

var _ driver.Signaler = (*Store)(nil)

// Signal implements [driver.Signaler]. It updates the header row of each
// run it delivers to (signal_seq, and wake_at 0 if the run waits), then
// stores the signal, in one transaction of the writer; it wakes the
// engines of this process if a run it delivered to waits with no lease.
func (s *Store) Signal(ctx context.Context, p driver.SignalParams) (int, error) {
	if p.RunID == "" && p.WaitKey == "" {
		return 0, fmt.Errorf("sqlite: signal %q has neither a RunID nor a WaitKey: name the run, or the event key its runs wait for", p.Name)
	}
	if err := checkSignal(p.Payload, p.At); err != nil {
		return 0, fmt.Errorf("sqlite: signal %q: %w", p.Name, err)
	}
	var n int
	var wake bool
	err := s.submit(ctx, func(t *txn) error {
		n, wake = 0, false
		var rows *sql.Rows
		var err error
		if p.RunID != "" {
			rows, err = t.signalRun.QueryContext(bg, p.RunID, p.Key)
		} else {
			rows, err = t.signalWaiters.QueryContext(bg, p.WaitKey, p.Key)
		}
		if err != nil {
			return fmt.Errorf("sqlite: signalling: %w", err)
		}
		type delivery struct {
			id       string
			seq      int64
			status   string
			owner    string
			leaseEnd int64
		}
		var got []delivery
		for rows.Next() {
			var d delivery
			if err := rows.Scan(&d.id, &d.seq, &d.status, &d.owner, &d.leaseEnd); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: signalling: %w", err)
			}
			got = append(got, d)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("sqlite: signalling: %w", err)
		}
		now := time.Now().UnixNano()
		for _, d := range got {
			sig := driver.Signal{Seq: d.seq, Name: p.Name, Key: p.Key, Payload: p.Payload, SentAt: p.At, Node: -1}
			if err := t.insertSig(d.id, &sig); err != nil {
				return err
			}
			if d.status == string(flux.StatusWaiting) && (d.owner == "" || d.leaseEnd <= now) {
				wake = true
			}
		}
		n = len(got)
		if n == 0 && p.RunID != "" {
			return t.whyNoSignal(p.RunID)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if wake {
		s.wakes.Signal()
	}
	return n, nil
}

// whyNoSignal explains why run id got no signal: it is unknown, finished,
// or has a signal of the key already, which is no error.
func (t *txn) whyNoSignal(id string) error {
	var st string
	switch err := t.status.QueryRowContext(bg, id).Scan(&st); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: %q", flux.ErrRunNotFound, id)
	case err != nil:
		return fmt.Errorf("sqlite: reading run %s: %w", id, err)
	case driver.Status(st).Final():
		return fmt.Errorf("%w: cannot signal run %s: it is %s", flux.ErrRunFinished, id, st)
	}
	return nil
}

// checkSignal returns an error for a signal that cannot be stored.
func checkSignal(payload json.RawMessage, at time.Time) error {
	if len(payload) > 0 && !json.Valid(payload) {
		return errors.New("its payload is not JSON: pass JSON, or no payload")
	}
	return sqlstore.CheckTime("SentAt", at)
}

// insertSig stores signal sig of run id.
func (t *txn) insertSig(id string, sig *driver.Signal) error {
	var payload []byte
	if len(sig.Payload) > 0 {
		payload = sig.Payload
	}
	if _, err := t.insertSignal.ExecContext(bg, id, sig.Seq, sig.Name, sig.Key, payload, sqlstore.Nanos(sig.SentAt)); err != nil {
		return fmt.Errorf("sqlite: storing signal %d of run %s: %w", sig.Seq, id, err)
	}
	if sig.Node != -1 {
		return t.consumeSignals(id, []driver.Consumed{{Seq: sig.Seq, Node: sig.Node}})
	}
	return nil
}

// consumeSignals marks signals of run id consumed, in a Checkpoint's
// transaction.
func (t *txn) consumeSignals(id string, cs []driver.Consumed) error {
	for _, c := range cs {
		res, err := t.consume.ExecContext(bg, id, c.Seq, c.Node)
		if err != nil {
			return fmt.Errorf("sqlite: marking signal %d of run %s consumed: %w", c.Seq, id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("sqlite: checkpoint of run %s consumes its signal %d, which it does not have (%v): consume the Seq of one of Run.Signals",
				id, c.Seq, err)
		}
	}
	return nil
}

const selectSignals = "SELECT seq, name, key, payload, sent_at, node FROM signals WHERE run_id = ? ORDER BY seq"

// readSignals reads the signals of the run of header h, if it had any.
func readSignals(ctx context.Context, q querier, h *sqlstore.Header) ([]driver.Signal, error) {
	if h.SignalSeq == 0 {
		return nil, nil
	}
	sigs, err := collect(ctx, q, selectSignals, []any{h.ID}, func(s scanner) (sig driver.Signal, err error) {
		var sent int64
		var payload []byte
		err = s.Scan(&sig.Seq, &sig.Name, &sig.Key, &payload, &sent, &sig.Node)
		if len(payload) > 0 {
			sig.Payload = payload
		}
		sig.SentAt = sqlstore.Time(sent)
		return sig, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: reading the signals of run %s: %w", h.ID, err)
	}
	return sigs, nil
}
