package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
)

// headerColumns are the columns of runs, in the order scanHeader reads them.
const headerColumns = `id, workflow, fingerprint, status, version, owner, lease_until, created_at, updated_at, finished_at,
	error, input, initial_data, nodes, done, attempts, failures, interrupted, at_node`

type scanner interface{ Scan(dest ...any) error }

func scanHeader(s scanner) (sqlstore.Header, error) {
	var h sqlstore.Header
	err := s.Scan(&h.ID, &h.Workflow, &h.Fingerprint, &h.Status, &h.Version, &h.Owner, &h.LeaseUntil, &h.CreatedAt,
		&h.UpdatedAt, &h.FinishedAt, &h.Error, &h.Input, &h.Initial, &h.Nodes, &h.Done, &h.Attempts, &h.Failures, &h.Interrupted, &h.AtNode)
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
	selectHeader   = "SELECT " + headerColumns + " FROM runs WHERE id = ?"
	selectNodes    = "SELECT idx, name, kind, status, started_at, finished_at, in_flight FROM nodes WHERE run_id = ? ORDER BY idx"
	selectAttempts = "SELECT idx, number, started_at, duration, error, stack, interrupted FROM attempts WHERE run_id = ? ORDER BY idx, number"
	// The data rows up to node ?2 from the last snapshot among them on.
	selectData = `SELECT idx, snapshot, patch_offset, patch_delete, patch_insert FROM node_data
		WHERE run_id = ?1 AND idx <= ?2 AND idx >= coalesce(
			(SELECT max(idx) FROM node_data WHERE run_id = ?1 AND idx <= ?2 AND snapshot IS NOT NULL), -1)
		ORDER BY idx`
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

// readRows reads the rows of the run of header h and assembles it.
func readRows(ctx context.Context, q querier, h *sqlstore.Header) (*flux.Run, error) {
	if err := checkHeader(h); err != nil {
		return nil, err
	}
	nodes, err := collect(ctx, q, selectNodes, []any{h.ID}, func(s scanner) (n sqlstore.Node, err error) {
		err = s.Scan(&n.Index, &n.Name, &n.Kind, &n.Status, &n.StartedAt, &n.FinishedAt, &n.InFlight)
		return n, err
	})
	if err != nil {
		return nil, err
	}
	atts, err := collect(ctx, q, selectAttempts, []any{h.ID}, func(s scanner) (a sqlstore.Attempt, err error) {
		err = s.Scan(&a.Index, &a.Number, &a.StartedAt, &a.Duration, &a.Error, &a.Stack, &a.Interrupted)
		return a, err
	})
	if err != nil {
		return nil, err
	}
	datas, err := readData(ctx, q, h.ID, h.Nodes-1)
	if err != nil {
		return nil, err
	}
	if len(nodes) != h.Nodes {
		return nil, driver.Corrupt(h.ID, "it has %d nodes, %d are stored (sqlite)", h.Nodes, len(nodes))
	}
	r, err := sqlstore.Assemble(h, nodes, atts, datas)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return r, nil
}

// readData reads the data rows of run id up to node last, from the last
// snapshot among them on.
func readData(ctx context.Context, q querier, id string, last int) ([]sqlstore.Data, error) {
	return collect(ctx, q, selectData, []any{id, last}, func(s scanner) (d sqlstore.Data, err error) {
		err = s.Scan(&d.Index, &d.Snapshot, &d.Offset, &d.Delete, &d.Insert)
		return d, err
	})
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

// execer runs statements: the writer's transaction, or a migration's.
type rowWriter interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// insertRows inserts a run's header and rows. It is how a migration writes
// converted runs; Create uses the writer's prepared statements.
func insertRows(ctx context.Context, db rowWriter, h *sqlstore.Header, nodes []sqlstore.Node, atts []sqlstore.Attempt, datas []sqlstore.Data) error {
	if _, err := db.ExecContext(ctx, "INSERT INTO runs ("+headerColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		headerArgs(h)...); err != nil {
		return err
	}
	for _, n := range nodes {
		if _, err := db.ExecContext(ctx, upsertNode, nodeArgs(h.ID, &n)...); err != nil {
			return err
		}
	}
	for _, a := range atts {
		if _, err := db.ExecContext(ctx, insertAttempt, attemptArgs(h.ID, &a)...); err != nil {
			return err
		}
	}
	for _, d := range datas {
		if _, err := db.ExecContext(ctx, upsertData, dataArgs(h.ID, &d)...); err != nil {
			return err
		}
	}
	return nil
}

func headerArgs(h *sqlstore.Header) []any {
	return []any{h.ID, h.Workflow, h.Fingerprint, h.Status, h.Version, h.Owner, h.LeaseUntil, h.CreatedAt, h.UpdatedAt,
		h.FinishedAt, h.Error, h.Input, h.Initial, h.Nodes, h.Done, h.Attempts, h.Failures, h.Interrupted, h.AtNode}
}

const (
	upsertNode = `INSERT INTO nodes (run_id, idx, name, kind, status, started_at, finished_at, in_flight)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (run_id, idx) DO UPDATE SET name = excluded.name, kind = excluded.kind, status = excluded.status,
			started_at = excluded.started_at, finished_at = excluded.finished_at, in_flight = excluded.in_flight`
	insertAttempt = `INSERT INTO attempts (run_id, idx, number, started_at, duration, error, stack, interrupted)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	upsertData = `INSERT INTO node_data (run_id, idx, snapshot, patch_offset, patch_delete, patch_insert)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (run_id, idx) DO UPDATE SET snapshot = excluded.snapshot, patch_offset = excluded.patch_offset,
			patch_delete = excluded.patch_delete, patch_insert = excluded.patch_insert`
)

func nodeArgs(id string, n *sqlstore.Node) []any {
	return []any{id, n.Index, n.Name, n.Kind, n.Status, n.StartedAt, n.FinishedAt, n.InFlight}
}

func attemptArgs(id string, a *sqlstore.Attempt) []any {
	return []any{id, a.Index, a.Number, a.StartedAt, a.Duration, a.Error, a.Stack, a.Interrupted}
}

func dataArgs(id string, d *sqlstore.Data) []any {
	if d.Snapshot != nil {
		return []any{id, d.Index, d.Snapshot, 0, 0, nil}
	}
	return []any{id, d.Index, nil, d.Offset, d.Delete, d.Insert}
}
