package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
)

// leaseUntil is the storage's now + lease, in stored form.
func leaseUntil(lease time.Duration) int64 { return time.Now().Add(lease).UnixNano() }

// Create implements [driver.Store].
func (s *Store) Create(ctx context.Context, p driver.CreateParams) (driver.Written, error) {
	r := p.Run
	if r.ID == "" {
		return driver.Written{}, fmt.Errorf("sqlite: run has no ID")
	}
	if err := errors.Join(sqlstore.CheckRun(r), sqlstore.CheckTime("WakeAt", r.WakeAt)); err != nil {
		return driver.Written{}, fmt.Errorf("sqlite: %w", err)
	}
	for i := range r.Signals {
		if err := checkSignal(r.Signals[i].Payload, r.Signals[i].SentAt); err != nil {
			return driver.Written{}, fmt.Errorf("sqlite: run %s, signal %d: %w", r.ID, r.Signals[i].Seq, err)
		}
	}
	h := sqlstore.HeaderOf(r)
	h.Version, h.LeaseUntil = 1, 0
	var w driver.Written
	err := s.submit(ctx, func(t *txn) error {
		if r.Owner != "" {
			h.LeaseUntil = leaseUntil(p.Lease)
		}
		res, err := t.insertRun.ExecContext(bg, headerArgs(&h)...)
		if err != nil {
			return fmt.Errorf("sqlite: inserting run %s: %w", r.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("%w: %s", flux.ErrRunExists, r.ID)
		}
		if _, err := t.insertLog.ExecContext(bg, r.ID, 1, sqlstore.EncodeCreate(r, p.Data)); err != nil {
			return fmt.Errorf("sqlite: inserting run %s: %w", r.ID, err)
		}
		for i := range r.Signals {
			if err := t.insertSig(r.ID, &r.Signals[i]); err != nil {
				return err
			}
		}
		w = driver.Written{Version: 1, LeaseUntil: sqlstore.Time(h.LeaseUntil)}
		return nil
	})
	if err == nil && driver.NeedsOwner(r.Status, r.Owner) {
		s.wakes.Signal()
	}
	return w, err
}

// Checkpoint implements [driver.Store].
func (s *Store) Checkpoint(ctx context.Context, p driver.CheckpointParams) (driver.Written, error) {
	if p.Header == nil {
		return driver.Written{}, fmt.Errorf("sqlite: checkpoint of run %s without its header", p.ID)
	}
	h := p.Header
	if err := errors.Join(sqlstore.CheckTime("UpdatedAt", h.UpdatedAt), sqlstore.CheckTime("FinishedAt", h.FinishedAt),
		sqlstore.CheckTime("WakeAt", h.WakeAt)); err != nil {
		return driver.Written{}, fmt.Errorf("sqlite: run %s: %w", p.ID, err)
	}
	for k := range p.Nodes {
		if n := &p.Nodes[k]; n.Index < 0 || n.Index >= h.Nodes {
			return driver.Written{}, fmt.Errorf("sqlite: checkpoint of run %s changes node %d of %d", p.ID, n.Index, h.Nodes)
		}
	}
	// Encoded here, on the caller's goroutine: the writer's time is the
	// store's throughput.
	body := sqlstore.EncodeCheckpoint(h.Nodes, p.Nodes)
	status, updated, finished := string(h.Status), sqlstore.Nanos(h.UpdatedAt), sqlstore.Nanos(h.FinishedAt)
	wake := sqlstore.WakeNanos(h.Status, h.WakeAt)
	// A write by the run's owner that sets its lease or gives it up takes
	// the short way: an UPDATE that returns nothing (SQLite builds a table
	// for RETURNING). If the run stays running, the UPDATE also leaves
	// status and finished_at, and so the partial index, alone.
	owned := p.Owner != "" && p.Lease != 0
	running := owned && p.Lease > 0 && h.Status == flux.StatusRunning && finished == 0
	var w driver.Written
	err := s.submit(ctx, func(t *txn) error {
		var until int64
		if p.Lease > 0 {
			until = leaseUntil(p.Lease)
		}
		var lease, version int64
		applied := false
		if owned {
			var res sql.Result
			var err error
			if running {
				res, err = t.updateRunning.ExecContext(bg, h.Error, h.Fingerprint, updated, h.Nodes, h.Summary.Interrupted, until,
					h.Summary.Done, h.Summary.Attempts, h.Summary.Failures, h.Summary.Node, p.ID, p.Version, p.Owner, status, h.WaitKey)
			} else {
				stmt := t.updateOwned
				if h.Error == "" {
					stmt = t.updateOwnedClean
				}
				res, err = stmt.ExecContext(bg, status, h.Error, h.Fingerprint, updated, finished, h.Nodes,
					h.Summary.Interrupted, int64(p.Lease), until, h.Summary.Done, h.Summary.Attempts, h.Summary.Failures,
					h.Summary.Node, p.ID, p.Version, p.Owner, h.SignalSeq, wake, h.WaitKey)
			}
			if err != nil {
				return fmt.Errorf("sqlite: updating run %s: %w", p.ID, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("sqlite: updating run %s: %w", p.ID, err)
			}
			applied, lease, version = n == 1, until, p.Version+1
		}
		if !applied {
			err := t.updateRun.QueryRowContext(bg, status, h.Error, h.Fingerprint, updated,
				finished, h.Nodes, h.Summary.Interrupted, int64(p.Lease), until, h.Summary.Done, h.Summary.Attempts,
				h.Summary.Failures, h.Summary.Node, p.ID, p.Version, p.Owner, h.SignalSeq, wake, h.WaitKey).Scan(&lease, &version)
			if errors.Is(err, sql.ErrNoRows) {
				return t.whyNot(p.ID, p.Version, p.Owner)
			}
			if err != nil {
				return fmt.Errorf("sqlite: updating run %s: %w", p.ID, err)
			}
		}
		if _, err := t.insertLog.ExecContext(bg, p.ID, version, body); err != nil {
			return fmt.Errorf("sqlite: updating run %s: %w", p.ID, err)
		}
		if err := t.consumeSignals(p.ID, p.Consume); err != nil {
			return err
		}
		w = driver.Written{Version: version, LeaseUntil: sqlstore.Time(lease)}
		return nil
	})
	if err == nil && p.Lease < 0 && !h.Status.Final() {
		s.wakes.Signal()
	}
	return w, err
}

// whyNot explains why a compare-and-set of run id at version by owner
// changed nothing.
func (t *txn) whyNot(id string, version int64, owner string) error {
	var v int64
	var o string
	switch err := t.versionOwner.QueryRowContext(bg, id).Scan(&v, &o); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: %q", flux.ErrRunNotFound, id)
	case err != nil:
		return fmt.Errorf("sqlite: reading run %s: %w", id, err)
	case o != owner && o != "":
		return fmt.Errorf("%w: run %s is owned by %s", flux.ErrLeaseLost, id, o)
	case v != version:
		return fmt.Errorf("%w: run %s is at version %d, not %d", flux.ErrConflict, id, v, version)
	}
	return fmt.Errorf("sqlite: run %s at version %d owned by %q was not updated", id, version, o)
}

// isClosed reports whether Close was called.
func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// read runs f in a read transaction, which sees one state of the database.
func (s *Store) read(ctx context.Context, f func(tx *sql.Tx) error) error {
	if s.shut.Load() || s.isClosed() {
		return ErrClosed
	}
	tx, err := s.reads.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: reading: %w", err)
	}
	defer tx.Rollback()
	return f(tx)
}

// Get implements [driver.Store].
func (s *Store) Get(ctx context.Context, id string) (*flux.Run, error) {
	var run *flux.Run
	err := s.read(ctx, func(tx *sql.Tx) (err error) {
		run, err = readRun(ctx, tx, id)
		return err
	})
	return run, err
}

// NodeData implements [driver.Store].
func (s *Store) NodeData(ctx context.Context, p driver.NodeDataParams) (json.RawMessage, error) {
	var data json.RawMessage
	err := s.read(ctx, func(tx *sql.Tx) error {
		h, err := scanHeader(tx.QueryRowContext(ctx, selectHeader, p.ID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %q", flux.ErrRunNotFound, p.ID)
		}
		if err != nil {
			return fmt.Errorf("sqlite: reading run %s: %w", p.ID, err)
		}
		if p.Index < -1 || p.Index >= h.Nodes {
			return fmt.Errorf("sqlite: run %s has no node %d", p.ID, p.Index)
		}
		bodies, err := readLog(ctx, tx, &h)
		if err != nil {
			return err
		}
		l, err := sqlstore.ReplayLog(&h, bodies)
		if err != nil {
			return err
		}
		data, err = l.DataAt(&h, p.Index)
		return err
	})
	return data, err
}

// Claim implements [driver.Store].
func (s *Store) Claim(ctx context.Context, p driver.ClaimParams) (*flux.Run, error) {
	var run *flux.Run
	err := s.submit(ctx, func(t *txn) error {
		h, err := scanHeader(t.selectHeader.QueryRowContext(bg, p.ID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %q", flux.ErrRunNotFound, p.ID)
		}
		if err != nil {
			return fmt.Errorf("sqlite: reading run %s: %w", p.ID, err)
		}
		now := time.Now()
		if h.Owner != "" && h.Owner != p.Owner && now.UnixNano() < h.LeaseUntil && !driver.Supersedes(p.Owner, h.Owner) {
			return fmt.Errorf("%w: run %s is leased by %s until %s", flux.ErrRunActive, p.ID, h.Owner,
				sqlstore.Time(h.LeaseUntil).Format(time.RFC3339Nano))
		}
		if run, err = t.claimRun(&h, p.Owner, now.Add(p.Lease)); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return run, nil
}

// claimRun reads the run of header h whole and gives owner its lease.
func (t *txn) claimRun(h *sqlstore.Header, owner string, until time.Time) (*flux.Run, error) {
	run, err := readRows(bg, txnQuerier{t}, h)
	if err != nil {
		return nil, err
	}
	if err := t.claim.QueryRowContext(bg, owner, until.UnixNano(), h.ID).Scan(&run.Version); err != nil {
		return nil, fmt.Errorf("sqlite: claiming run %s: %w", h.ID, err)
	}
	run.Owner, run.LeaseUntil = owner, sqlstore.Time(until.UnixNano())
	return run, nil
}

// Extend implements [driver.Store].
func (s *Store) Extend(ctx context.Context, p driver.ExtendParams) ([]string, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if len(p.IDs) == 0 {
		return nil, nil
	}
	if p.Owner == "" {
		return slices.Clone(p.IDs), nil
	}
	ids, err := json.Marshal(p.IDs)
	if err != nil {
		return nil, err
	}
	var held map[string]bool
	err = s.submit(ctx, func(t *txn) error {
		held = make(map[string]bool, len(p.IDs))
		rows, err := t.extend.QueryContext(bg, leaseUntil(p.Lease), p.Owner, string(ids))
		if err != nil {
			return fmt.Errorf("sqlite: extending leases: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: extending leases: %w", err)
			}
			held[id] = true
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("sqlite: extending leases: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var lost []string
	for _, id := range p.IDs {
		if !held[id] {
			lost = append(lost, id)
		}
	}
	return lost, nil
}

// Release implements [driver.Store].
func (s *Store) Release(ctx context.Context, p driver.ReleaseParams) error {
	err := s.submit(ctx, func(t *txn) error {
		res, err := t.release.ExecContext(bg, p.ID, p.Owner)
		if err != nil {
			return fmt.Errorf("sqlite: releasing run %s: %w", p.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var v int64
		var o string
		if err := t.versionOwner.QueryRowContext(bg, p.ID).Scan(&v, &o); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %q", flux.ErrRunNotFound, p.ID)
		}
		return fmt.Errorf("%w: run %s is owned by %q, not %q", flux.ErrLeaseLost, p.ID, o, p.Owner)
	})
	if err == nil {
		s.wakes.Signal() // a finished run's lease is given back by its last checkpoint, not here
	}
	return err
}

// Cancel implements [driver.Store].
func (s *Store) Cancel(ctx context.Context, p driver.CancelParams) error {
	at := sqlstore.Nanos(p.At)
	return s.submit(ctx, func(t *txn) error {
		var version int64
		var nodes int
		switch err := t.cancel.QueryRowContext(bg, p.Error, at, at, p.ID).Scan(&version, &nodes); {
		case err == nil:
			if _, err := t.insertLog.ExecContext(bg, p.ID, version, sqlstore.EncodeCancel(nodes)); err != nil {
				return fmt.Errorf("sqlite: cancelling run %s: %w", p.ID, err)
			}
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("sqlite: cancelling run %s: %w", p.ID, err)
		}
		var st string
		switch err := t.status.QueryRowContext(bg, p.ID).Scan(&st); {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("%w: %q", flux.ErrRunNotFound, p.ID)
		case err != nil:
			return err
		case st == string(flux.StatusCancelled):
			return nil
		}
		return fmt.Errorf("%w: cannot cancel run %s: it is %s", flux.ErrRunFinished, p.ID, st)
	})
}

// Prune implements [driver.Store].
func (s *Store) Prune(ctx context.Context, p driver.PruneParams) (int, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	// By runs_created: a run that finished before the cut was created
	// before it. An index of its own would cost every run's completion a
	// write more.
	cut := sqlstore.Nanos(p.FinishedBefore)
	q := "SELECT id FROM runs WHERE created_at < ? AND status = ? AND finished_at < ?"
	args := []any{cut, string(p.Status), cut}
	if p.Workflow != "" {
		q, args = q+" AND workflow = ?", append(args, p.Workflow)
	}
	if len(p.Except) > 0 {
		except, err := json.Marshal(p.Except)
		if err != nil {
			return 0, err
		}
		q, args = q+" AND workflow NOT IN (SELECT value FROM json_each(?))", append(args, string(except))
	}
	q += " ORDER BY created_at LIMIT ?"
	args = append(args, p.PruneLimit())
	var n int
	err := s.submit(ctx, func(t *txn) error {
		ids, err := collect(bg, t.conn, q, args, func(s scanner) (id string, err error) {
			err = s.Scan(&id)
			return id, err
		})
		if err != nil {
			return err
		}
		list, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		if _, err := t.conn.ExecContext(bg, "DELETE FROM checkpoints WHERE run_id IN (SELECT value FROM json_each(?))", string(list)); err != nil {
			return fmt.Errorf("sqlite: pruning runs: %w", err)
		}
		if _, err := t.conn.ExecContext(bg, "DELETE FROM trace_events WHERE run_id IN (SELECT value FROM json_each(?))", string(list)); err != nil {
			return fmt.Errorf("sqlite: pruning runs' trace events: %w", err)
		}
		if _, err := t.conn.ExecContext(bg, "DELETE FROM signals WHERE run_id IN (SELECT value FROM json_each(?))", string(list)); err != nil {
			return fmt.Errorf("sqlite: pruning runs' signals: %w", err)
		}
		res, err := t.conn.ExecContext(bg, "DELETE FROM runs WHERE id IN (SELECT value FROM json_each(?))", string(list))
		if err != nil {
			return fmt.Errorf("sqlite: pruning runs: %w", err)
		}
		k, err := res.RowsAffected()
		n = int(k)
		return err
	})
	return n, err
}

// ftsQuery returns the FTS5 query of the words of a search, each matching
// as a prefix, or "" if it has none.
func ftsQuery(search string) string {
	words := driver.QueryWords(search)
	for i, w := range words {
		words[i] = `"` + strings.ReplaceAll(w, `"`, `""`) + `"*`
	}
	return strings.Join(words, " AND ")
}

// List implements [driver.Store].
func (s *Store) List(ctx context.Context, f flux.Filter) (*flux.RunPage, error) {
	if s.shut.Load() || s.isClosed() {
		return nil, ErrClosed
	}
	after, err := driver.ParseCursor(f.Cursor)
	if err != nil {
		return nil, err
	}
	// cond is the filter on the runs of table alias t, with its arguments.
	cond := func(t string) (string, []any) {
		where := []string{"1"}
		var args []any
		if f.Workflow != "" {
			where, args = append(where, t+"workflow = ?"), append(args, f.Workflow)
		}
		if len(f.Status) > 0 {
			where = append(where, t+"status IN (?"+strings.Repeat(", ?", len(f.Status)-1)+")")
			for _, st := range f.Status {
				args = append(args, string(st))
			}
		}
		if !f.Since.IsZero() {
			where, args = append(where, t+"created_at >= ?"), append(args, sqlstore.Nanos(f.Since))
		}
		if !f.Until.IsZero() {
			where, args = append(where, t+"created_at < ?"), append(args, sqlstore.Nanos(f.Until))
		}
		if after != nil {
			c := sqlstore.Nanos(after.CreatedAt)
			where, args = append(where, "("+t+"created_at < ? OR ("+t+"created_at = ? AND "+t+"id < ?))"), append(args, c, c, after.ID)
		}
		return strings.Join(where, " AND "), args
	}
	size := f.PageSize()
	const order = " ORDER BY created_at DESC, id DESC LIMIT ?"
	var q string
	var args []any
	if search := strings.TrimSpace(f.Search); search == "" {
		c, a := cond("")
		q, args = "SELECT "+headerColumns+" FROM runs WHERE "+c+order, append(a, size+1)
	} else {
		// Each way of matching takes its newest page by an index of its
		// own (the primary key, runs_workflow_created, the words of the
		// errors); the page is the newest of their union.
		var parts []string
		c, a := cond("")
		parts, args = append(parts, "SELECT id FROM (SELECT id FROM runs WHERE id >= ? AND id < ? AND "+c+order+")"),
			append(append([]any{search, driver.PrefixEnd(search)}, a...), size+1)
		c, a = cond("")
		parts, args = append(parts, "SELECT id FROM (SELECT id FROM runs WHERE workflow = ? AND "+c+order+")"),
			append(append(append(args, search), a...), size+1)
		if m := ftsQuery(search); m != "" {
			c, a = cond("r.")
			// The index's keys are the runs' creation times: it yields
			// the newest first, and stops at a page.
			parts = append(parts, `SELECT id FROM (SELECT r.id AS id FROM run_errors_fts f
				JOIN run_errors e ON e.id = f.rowid JOIN runs r ON r.id = e.run_id
				WHERE run_errors_fts MATCH ? AND `+c+`
				ORDER BY f.rowid DESC LIMIT ?)`)
			args = append(append(append(args, m), a...), size+1)
		}
		q = "SELECT " + headerColumns + " FROM runs WHERE id IN (" + strings.Join(parts, " UNION ") + ")" + order
		args = append(args, size+1)
	}

	rows, err := s.reads.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing runs: %w", err)
	}
	defer rows.Close()
	page := &flux.RunPage{Runs: []*flux.Run{}}
	n := 0
	var last sqlstore.Header
	for rows.Next() {
		if n == size {
			page.Next = driver.MakeCursor(&flux.Run{ID: last.ID, CreatedAt: sqlstore.Time(last.CreatedAt)})
			break
		}
		h, err := scanHeader(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: listing runs: %w", err)
		}
		n++
		last = h
		if err := checkHeader(&h); err != nil {
			page.Corrupt = append(page.Corrupt, err)
			continue
		}
		page.Runs = append(page.Runs, sqlstore.RunOf(&h))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing runs: %w", err)
	}
	return page, nil
}
