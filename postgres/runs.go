package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flux-go/flux"
	"github.com/jackc/pgx/v5"
)

// leaseMicros turns a lease into the microseconds the SQL adds to now():
// positive stays positive, so that a tiny lease still counts as one.
func leaseMicros(d time.Duration) int64 {
	switch {
	case d < 0:
		return -1
	case d == 0:
		return 0
	}
	return max(1, d.Microseconds())
}

func leaseTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// Create implements [flux.Storage].
func (s *Store) Create(ctx context.Context, run *flux.Run, lease time.Duration) error {
	body, err := json.Marshal(run)
	if err != nil {
		return fmt.Errorf("postgres: encoding run %s: %w", run.ID, err)
	}
	res := s.submit(ctx, &writeReq{
		create: true, id: run.ID, workflow: run.Workflow, status: string(run.Status), newOwner: run.Owner,
		lease: leaseMicros(lease), created: run.CreatedAt, updated: run.UpdatedAt, body: body,
	})
	switch {
	case res.err != nil:
		return fmt.Errorf("postgres: creating run %s: %w", run.ID, res.err)
	case !res.applied:
		return fmt.Errorf("%w: %s", flux.ErrRunExists, run.ID)
	}
	run.Version = 1
	run.LeaseUntil = leaseTime(res.leaseUntil)
	return nil
}

// Update implements [flux.Storage].
func (s *Store) Update(ctx context.Context, run *flux.Run, lease time.Duration) error {
	body, err := json.Marshal(run)
	if err != nil {
		return fmt.Errorf("postgres: encoding run %s: %w", run.ID, err)
	}
	owner := run.Owner
	if lease < 0 {
		owner = ""
	}
	res := s.submit(ctx, &writeReq{
		id: run.ID, version: run.Version, owner: run.Owner, newOwner: owner, status: string(run.Status),
		lease: leaseMicros(lease), updated: run.UpdatedAt, body: body,
	})
	switch {
	case res.err != nil:
		return fmt.Errorf("postgres: updating run %s: %w", run.ID, res.err)
	case !res.applied:
		return s.whyNotUpdated(ctx, run)
	}
	run.Version++
	run.Owner = owner
	run.LeaseUntil = leaseTime(res.leaseUntil)
	return nil
}

// whyNotUpdated tells why the compare-and-set of run did not apply.
func (s *Store) whyNotUpdated(ctx context.Context, run *flux.Run) error {
	var version int64
	var owner string
	err := s.pool.QueryRow(ctx, s.sql.why, run.ID).Scan(&version, &owner)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: %q", flux.ErrRunNotFound, run.ID)
	case err != nil:
		return fmt.Errorf("postgres: updating run %s: the write did not apply, and reading why failed: %w", run.ID, err)
	case owner != run.Owner && owner != "":
		return fmt.Errorf("%w: run %s is owned by %s", flux.ErrLeaseLost, run.ID, owner)
	case version != run.Version:
		return fmt.Errorf("%w: run %s is at version %d, not %d", flux.ErrConflict, run.ID, version, run.Version)
	}
	// It changed and changed back between the write and this read.
	return fmt.Errorf("%w: run %s was changed by another writer during the update", flux.ErrConflict, run.ID)
}

// Get implements [flux.Storage].
func (s *Store) Get(ctx context.Context, id string) (*flux.Run, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.pool.Query(ctx, s.sql.get, id)
	if err != nil {
		return nil, fmt.Errorf("postgres: reading run %s: %w", id, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanRow)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("%w: %q", flux.ErrRunNotFound, id)
	case err != nil:
		return nil, fmt.Errorf("postgres: reading run %s: %w", id, err)
	}
	return r.decode()
}

// row is a stored run before its body is decoded.
type row struct {
	id         string
	createdNS  int64
	version    int64
	owner      string
	leaseUntil *time.Time
	body       []byte
}

func scanRow(rows pgx.CollectableRow) (row, error) {
	var r row
	err := rows.Scan(&r.id, &r.createdNS, &r.version, &r.owner, &r.leaseUntil, &r.body)
	return r, err
}

// decode returns the run, or an error wrapping flux.ErrCorrupt naming it.
// The columns win over the body's copies of the same fields.
func (r *row) decode() (*flux.Run, error) {
	run := new(flux.Run)
	if err := json.Unmarshal(r.body, run); err != nil {
		return nil, fmt.Errorf("%w: run %s: stored body does not decode: %v", flux.ErrCorrupt, r.id, err)
	}
	run.ID, run.Version, run.Owner, run.LeaseUntil = r.id, r.version, r.owner, leaseTime(r.leaseUntil)
	return run, nil
}

// statuses are the statuses flux defines.
var statuses = []flux.Status{
	flux.StatusPending, flux.StatusRunning, flux.StatusWaiting, flux.StatusCompleted,
	flux.StatusFailed, flux.StatusCancelled, flux.StatusSkipped,
}

// List implements [flux.Storage]. Runs whose body does not decode are
// reported in RunPage.Corrupt and do not count towards the page size.
func (s *Store) List(ctx context.Context, f flux.Filter) (*flux.RunPage, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	after, err := flux.ParseCursor(f.Cursor)
	if err != nil {
		return nil, err
	}
	var where []string
	var args []any
	add := func(cond string, v ...any) {
		for _, x := range v {
			args = append(args, x)
			cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(args)), 1)
		}
		where = append(where, cond)
	}
	if f.Workflow != "" {
		add("workflow = ?", f.Workflow)
	}
	if len(f.Status) > 0 {
		// Known statuses go in as literals, so that the planner can use
		// the partial indexes.
		lits := make([]string, len(f.Status))
		all := make([]string, len(f.Status))
		known := true
		for i, x := range f.Status {
			lits[i], all[i] = "'"+string(x)+"'", string(x)
			known = known && slices.Contains(statuses, x)
		}
		if known {
			add("status IN (" + strings.Join(lits, ", ") + ")")
		} else {
			add("status = ANY(?)", all)
		}
	}
	if !f.Since.IsZero() {
		add("created_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("created_ns < ?", f.Until.UnixNano())
	}
	base := len(args)
	size := f.PageSize()
	page := &flux.RunPage{}
	var last flux.Cursor // of the last run on the page, by its columns
	for {
		q, qa := s.sql.list, slices.Clip(args)
		w := where
		if after != nil {
			qa = append(qa, after.CreatedAt.UnixNano(), after.ID)
			w = append(slices.Clip(w), fmt.Sprintf("(created_ns, id) < ($%d, $%d)", base+1, base+2))
		}
		if len(w) > 0 {
			q += " WHERE " + strings.Join(w, " AND ")
		}
		want := size - len(page.Runs) + 1
		q += fmt.Sprintf(" ORDER BY created_ns DESC, id DESC LIMIT %d", want)
		rows, err := s.pool.Query(ctx, q, qa...)
		if err != nil {
			return nil, fmt.Errorf("postgres: listing runs: %w", err)
		}
		got, err := pgx.CollectRows(rows, scanRow)
		if err != nil {
			return nil, fmt.Errorf("postgres: listing runs: %w", err)
		}
		for _, r := range got {
			if len(page.Runs) == size {
				// There is more: the next page starts after the last run.
				page.Next = flux.MakeCursor(&flux.Run{ID: last.ID, CreatedAt: last.CreatedAt})
				return page, nil
			}
			after = &flux.Cursor{CreatedAt: time.Unix(0, r.createdNS), ID: r.id}
			run, err := r.decode()
			if err != nil {
				page.Corrupt = append(page.Corrupt, err)
				continue
			}
			page.Runs = append(page.Runs, run)
			last = *after
		}
		if len(got) < want {
			return page, nil
		}
	}
}

// Claim implements [flux.Storage]. A run that does not decode is not
// claimed: the error wraps flux.ErrCorrupt.
func (s *Store) Claim(ctx context.Context, p flux.ClaimParams) (*flux.Run, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	var run *flux.Run
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, s.sql.claim, p.ID, p.Owner, leaseMicros(p.Lease), flux.OwnerEngine(p.Owner))
		if err != nil {
			return err
		}
		r, err := pgx.CollectExactlyOneRow(rows, scanRow)
		if errors.Is(err, pgx.ErrNoRows) {
			var owner string
			var until *time.Time
			err = tx.QueryRow(ctx, s.sql.claimWhy, p.ID).Scan(&owner, &until)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("%w: %q", flux.ErrRunNotFound, p.ID)
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: run %s is leased by %s until %s", flux.ErrRunActive, p.ID, owner,
				leaseTime(until).Format(time.RFC3339Nano))
		}
		if err != nil {
			return err
		}
		run, err = r.decode()
		return err
	})
	if err != nil {
		if isFluxError(err) {
			return nil, err
		}
		return nil, fmt.Errorf("postgres: claiming run %s: %w", p.ID, err)
	}
	return run, nil
}

func isFluxError(err error) bool {
	for _, e := range []error{flux.ErrRunNotFound, flux.ErrRunActive, flux.ErrCorrupt} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// ClaimExpired implements [flux.Storage]. Runs that do not decode are left
// alone (List reports them).
func (s *Store) ClaimExpired(ctx context.Context, p flux.ClaimExpiredParams) ([]*flux.Run, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if len(p.Workflows) == 0 {
		return nil, nil
	}
	var limit *int
	if p.Limit > 0 {
		limit = &p.Limit
	}
	var out []*flux.Run
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out = out[:0]
		byID := map[string]*flux.Run{}
		seen := []string{} // rows this transaction already locked
		for {
			rows, err := tx.Query(ctx, s.sql.expired, p.Workflows, seen, limit, p.Owner, flux.OwnerEngine(p.Owner))
			if err != nil {
				return err
			}
			var id string
			var body []byte
			n, bad := 0, false
			_, err = pgx.ForEachRow(rows, []any{&id, &body}, func() error {
				n++
				seen = append(seen, id)
				r := row{id: id, body: body}
				run, err := r.decode()
				if err != nil {
					bad = true
				} else {
					byID[id] = run
				}
				return nil
			})
			if err != nil {
				return err
			}
			if !bad || limit == nil || n < *limit {
				break
			}
			// Fill the places of the corrupt runs.
			left := p.Limit - len(byID)
			limit = &left
		}
		if len(byID) == 0 {
			return nil
		}
		ids := make([]string, 0, len(byID))
		for id := range byID {
			ids = append(ids, id)
		}
		rows, err := tx.Query(ctx, s.sql.claimIDs, ids, p.Owner, leaseMicros(p.Lease))
		if err != nil {
			return err
		}
		var id string
		var version int64
		var until *time.Time
		_, err = pgx.ForEachRow(rows, []any{&id, &version, &until}, func() error {
			run := byID[id]
			run.Owner, run.Version, run.LeaseUntil = p.Owner, version, leaseTime(until)
			out = append(out, run)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claiming expired runs: %w", err)
	}
	return out, nil
}

// Extend implements [flux.Storage].
func (s *Store) Extend(ctx context.Context, p flux.ExtendParams) ([]string, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if len(p.IDs) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, s.sql.extend, p.IDs, p.Owner, leaseMicros(p.Lease))
	if err != nil {
		return nil, fmt.Errorf("postgres: extending leases: %w", err)
	}
	kept, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: extending leases: %w", err)
	}
	var lost []string
	for _, id := range p.IDs {
		if !slices.Contains(kept, id) {
			lost = append(lost, id)
		}
	}
	return lost, nil
}
