package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
)

// headerColumns are the columns of runs, in the order scanHeader reads them.
const headerColumns = `id, workflow, fingerprint, status, version, owner, lease_until, created_at, updated_at, finished_at,
	error, input, initial_data, nodes, done, attempts, failures, interrupted, at_node,
	wake_at, wait_key, concurrency_key, signal_seq`

// headerValues are the placeholders of headerColumns in an INSERT.
const headerValues = "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"

type scanner interface{ Scan(dest ...any) error }

func scanHeader(s scanner) (sqlstore.Header, error) {
	var h sqlstore.Header
	err := s.Scan(&h.ID, &h.Workflow, &h.Fingerprint, &h.Status, &h.Version, &h.Owner, &h.LeaseUntil, &h.CreatedAt,
		&h.UpdatedAt, &h.FinishedAt, &h.Error, &h.Input, &h.Initial, &h.Nodes, &h.Done, &h.Attempts, &h.Failures, &h.Interrupted, &h.AtNode,
		&h.WakeAt, &h.WaitKey, &h.ConcurrencyKey, &h.SignalSeq)
	return h, err
}

// checkHeader returns an error wrapping flux.ErrCorrupt if a header row
// cannot be a run's.
func checkHeader(h *sqlstore.Header) error {
	if !json.Valid(h.Input) || !json.Valid(h.Initial) || h.Nodes < 0 {
		return driver.Corrupt(h.ID, "its stored input or data is not JSON (sqlite)")
	}
	return nil
}

// querier runs queries: the read pool, a read transaction, or the writer's.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const (
	selectHeader = "SELECT " + headerColumns + " FROM runs WHERE id = ?"
	selectLog    = "SELECT body FROM checkpoints WHERE run_id = ? ORDER BY version"
	insertLog    = "INSERT INTO checkpoints (run_id, version, body) VALUES (?, ?, ?)"
)

// readRun reads the whole run id with q, which must see one state of the
// database (a transaction).
func readRun(ctx context.Context, q querier, id string) (*flux.Run, error) {
	h, err := scanHeader(q.QueryRowContext(ctx, selectHeader, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %q", flux.ErrRunNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: reading run %s: %w", id, err)
	}
	return readRows(ctx, q, &h)
}

// readLog reads the checkpoint rows of the run of header h, in order.
func readLog(ctx context.Context, q querier, h *sqlstore.Header) ([][]byte, error) {
	if err := checkHeader(h); err != nil {
		return nil, err
	}
	return collect(ctx, q, selectLog, []any{h.ID}, func(s scanner) (b []byte, err error) {
		err = s.Scan(&b)
		return b, err
	})
}

// readRows reads the log of the run of header h and replays it, and reads
// its signals if it has any.
func readRows(ctx context.Context, q querier, h *sqlstore.Header) (*flux.Run, error) {
	bodies, err := readLog(ctx, q, h)
	if err != nil {
		return nil, err
	}
	run, err := sqlstore.Replay(h, bodies)
	if err != nil {
		return nil, err
	}
	if run.Signals, err = readSignals(ctx, q, h); err != nil {
		return nil, err
	}
	return run, nil
}

func collect[T any](ctx context.Context, q querier, query string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: reading: %w", err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: reading: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: reading: %w", err)
	}
	return out, nil
}

// rowWriter runs statements: a migration's transaction.
type rowWriter interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// columns0002 are the columns of runs in schema 0002, the first of
// headerColumns: what the conversion of schema 0001 (migration 0002) writes,
// before later migrations added columns with their defaults.
const columns0002 = 19

// insertRows inserts a run's header, as schema 0002 has it, and its one
// checkpoint row. It is how migration 0002 writes converted runs; Create
// uses the writer's prepared statements.
func insertRows(ctx context.Context, db rowWriter, h *sqlstore.Header, body []byte) error {
	cols := strings.Split(headerColumns, ",")[:columns0002]
	if _, err := db.ExecContext(ctx, "INSERT INTO runs ("+strings.Join(cols, ",")+") VALUES ("+headerValues[:3*columns0002-2]+")",
		headerArgs(h)[:columns0002]...); err != nil {
		return err
	}
	_, err := db.ExecContext(ctx, insertLog, h.ID, h.Version, body)
	return err
}

func headerArgs(h *sqlstore.Header) []any {
	return []any{h.ID, h.Workflow, h.Fingerprint, h.Status, h.Version, h.Owner, h.LeaseUntil, h.CreatedAt, h.UpdatedAt,
		h.FinishedAt, h.Error, h.Input, h.Initial, h.Nodes, h.Done, h.Attempts, h.Failures, h.Interrupted, h.AtNode,
		h.WakeAt, h.WaitKey, h.ConcurrencyKey, h.SignalSeq}
}
