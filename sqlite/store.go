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
)

// leaseUntil is the storage's now + lease, in stored form.
func leaseUntil(lease time.Duration) int64 { return time.Now().Add(lease).UnixNano() }

// Create implements [flux.Storage].
func (s *Store) Create(ctx context.Context, run *flux.Run, lease time.Duration) error {
	e, err := encode(run)
	if err != nil {
		return err
	}
	var until int64
	err = s.submit(ctx, func(t *txn) error {
		until = 0
		if e.owner != "" {
			until = leaseUntil(lease)
		}
		res, err := t.insert.ExecContext(bg, e.id, e.workflow, e.status, e.owner, until, e.createdAt, e.updatedAt, e.body)
		if err != nil {
			return fmt.Errorf("sqlite: inserting run %s: %w", e.id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("%w: %s", flux.ErrRunExists, e.id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	run.Version, run.LeaseUntil = 1, fromNanos(until)
	return nil
}

// isClosed reports whether Close was called.
func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Get implements [flux.Storage].
func (s *Store) Get(ctx context.Context, id string) (*flux.Run, error) {
	if s.shut.Load() || s.isClosed() {
		return nil, ErrClosed
	}
	var r row
	if err := r.scan(s.getRun.QueryRowContext(ctx, id)); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: %q", flux.ErrRunNotFound, id)
		}
		return nil, fmt.Errorf("sqlite: reading run %s: %w", id, err)
	}
	return r.run()
}

// Update implements [flux.Storage].
func (s *Store) Update(ctx context.Context, run *flux.Run, lease time.Duration) error {
	e, err := encode(run)
	if err != nil {
		return err
	}
	if lease < 0 {
		e.owner = ""
	}
	version := run.Version
	var until int64
	err = s.submit(ctx, func(t *txn) error {
		var err error
		var n int64
		if lease == 0 {
			err = t.updateKeep.QueryRowContext(bg, e.status, e.owner, e.updatedAt, e.body,
				e.id, version, run.Owner).Scan(&until)
			if n = 1; errors.Is(err, sql.ErrNoRows) {
				n, err = 0, nil
			}
		} else {
			until = 0
			if lease > 0 {
				until = leaseUntil(lease)
			}
			var res sql.Result
			if res, err = t.update.ExecContext(bg, e.status, e.owner, until, e.updatedAt, e.body,
				e.id, version, run.Owner); err == nil {
				n, err = res.RowsAffected()
			}
		}
		if err != nil {
			return fmt.Errorf("sqlite: updating run %s: %w", e.id, err)
		}
		if n == 0 {
			return t.whyNot(e.id, version, run.Owner)
		}
		return nil
	})
	if err != nil {
		return err
	}
	run.Version, run.Owner, run.LeaseUntil = version+1, e.owner, fromNanos(until)
	return nil
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

// Claim implements [flux.Storage].
func (s *Store) Claim(ctx context.Context, p flux.ClaimParams) (*flux.Run, error) {
	var run *flux.Run
	err := s.submit(ctx, func(t *txn) error {
		var r row
		if err := r.scan(t.selectRun.QueryRowContext(bg, p.ID)); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: %q", flux.ErrRunNotFound, p.ID)
			}
			return fmt.Errorf("sqlite: reading run %s: %w", p.ID, err)
		}
		now := time.Now()
		if r.owner != "" && r.owner != p.Owner && now.UnixNano() < r.leaseUntil && !flux.Supersedes(p.Owner, r.owner) {
			return fmt.Errorf("%w: run %s is leased by %s until %s", flux.ErrRunActive, p.ID, r.owner,
				fromNanos(r.leaseUntil).Format(time.RFC3339Nano))
		}
		var err error
		if run, err = r.run(); err != nil {
			return err
		}
		until := now.Add(p.Lease).UnixNano()
		if _, err := t.claim.ExecContext(bg, p.Owner, until, p.ID); err != nil {
			return fmt.Errorf("sqlite: claiming run %s: %w", p.ID, err)
		}
		run.Owner, run.LeaseUntil, run.Version = p.Owner, fromNanos(until), run.Version+1
		return nil
	})
	if err != nil {
		return nil, err
	}
	return run, nil
}

// ClaimExpired implements [flux.Storage]. Runs that cannot be decoded are
// left alone (Get reports them).
func (s *Store) ClaimExpired(ctx context.Context, p flux.ClaimExpiredParams) ([]*flux.Run, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if len(p.Workflows) == 0 {
		return nil, nil
	}
	wfs, err := json.Marshal(p.Workflows)
	if err != nil {
		return nil, err
	}
	var runs []*flux.Run
	err = s.submit(ctx, func(t *txn) error {
		runs = runs[:0]
		now := time.Now()
		// ?1 the claimant, ?2 now, ?3 its engine ID, ?4 the workflows.
		rows, err := t.expired.QueryContext(bg, p.Owner, now.UnixNano(), flux.OwnerEngine(p.Owner), string(wfs))
		if err != nil {
			return fmt.Errorf("sqlite: finding expired runs: %w", err)
		}
		for rows.Next() && (p.Limit <= 0 || len(runs) < p.Limit) {
			var r row
			if err := r.scan(rows); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: finding expired runs: %w", err)
			}
			if run, err := r.run(); err == nil {
				runs = append(runs, run)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("sqlite: finding expired runs: %w", err)
		}
		until := now.Add(p.Lease).UnixNano()
		for _, run := range runs {
			if _, err := t.claim.ExecContext(bg, p.Owner, until, run.ID); err != nil {
				return fmt.Errorf("sqlite: claiming run %s: %w", run.ID, err)
			}
			run.Owner, run.LeaseUntil, run.Version = p.Owner, fromNanos(until), run.Version+1
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return runs, nil
}

// Extend implements [flux.Storage].
func (s *Store) Extend(ctx context.Context, p flux.ExtendParams) ([]string, error) {
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

// List implements [flux.Storage].
func (s *Store) List(ctx context.Context, f flux.Filter) (*flux.RunPage, error) {
	if s.shut.Load() || s.isClosed() {
		return nil, ErrClosed
	}
	after, err := flux.ParseCursor(f.Cursor)
	if err != nil {
		return nil, err
	}
	var where []string
	var args []any
	if f.Workflow != "" {
		where, args = append(where, "workflow = ?"), append(args, f.Workflow)
	}
	if len(f.Status) > 0 {
		where = append(where, "status IN (?"+strings.Repeat(", ?", len(f.Status)-1)+")")
		for _, st := range f.Status {
			args = append(args, string(st))
		}
	}
	if !f.Since.IsZero() {
		where, args = append(where, "created_at >= ?"), append(args, clampNanos(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "created_at < ?"), append(args, clampNanos(f.Until))
	}
	if after != nil {
		c := clampNanos(after.CreatedAt)
		where, args = append(where, "(created_at < ? OR (created_at = ? AND id < ?))"), append(args, c, c, after.ID)
	}
	q := "SELECT " + runColumns + " FROM runs"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	size := f.PageSize()
	q += " ORDER BY created_at DESC, id DESC LIMIT ?"
	args = append(args, size+1)

	rows, err := s.reads.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing runs: %w", err)
	}
	defer rows.Close()
	page := &flux.RunPage{Runs: []*flux.Run{}}
	var last row
	n := 0
	for rows.Next() {
		if n == size {
			page.Next = flux.MakeCursor(&flux.Run{ID: last.id, CreatedAt: time.Unix(0, last.created)})
			break
		}
		if err := last.scan(rows); err != nil {
			return nil, fmt.Errorf("sqlite: listing runs: %w", err)
		}
		n++
		if run, err := last.run(); err != nil {
			page.Corrupt = append(page.Corrupt, err)
		} else {
			page.Runs = append(page.Runs, run)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing runs: %w", err)
	}
	return page, nil
}
