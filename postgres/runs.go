package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
	"github.com/jackc/pgx/v5"
)

// leaseMicros turns a lease into the microseconds the SQL adds to the
// database's clock: positive stays positive, so that a tiny lease still
// counts as one.
func leaseMicros(d time.Duration) int64 {
	switch {
	case d < 0:
		return -1
	case d == 0:
		return 0
	}
	return max(1, d.Microseconds())
}

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
		return driver.Corrupt(h.ID, "its stored input or data is not JSON (postgres)")
	}
	return nil
}

// Create implements [driver.Store].
func (s *Store) Create(ctx context.Context, p driver.CreateParams) (driver.Written, error) {
	r := p.Run
	if r.ID == "" {
		return driver.Written{}, errors.New("postgres: run has no ID")
	}
	if err := sqlstore.CheckRun(r); err != nil {
		return driver.Written{}, fmt.Errorf("postgres: %w", err)
	}
	if err := sqlstore.CheckTime("WakeAt", r.WakeAt); err != nil {
		return driver.Written{}, fmt.Errorf("postgres: run %s: %w", r.ID, err)
	}
	res := s.submit(ctx, &writeReq{create: &p})
	switch {
	case res.err != nil:
		return driver.Written{}, fmt.Errorf("postgres: creating run %s: %w", r.ID, res.err)
	case !res.applied:
		return driver.Written{}, fmt.Errorf("%w: %s", flux.ErrRunExists, r.ID)
	}
	return driver.Written{Version: 1, LeaseUntil: sqlstore.Time(res.leaseUntil)}, nil
}

// Checkpoint implements [driver.Store].
func (s *Store) Checkpoint(ctx context.Context, p driver.CheckpointParams) (driver.Written, error) {
	if p.Header == nil {
		return driver.Written{}, fmt.Errorf("postgres: checkpoint of run %s without its header", p.ID)
	}
	h := p.Header
	if err := errors.Join(sqlstore.CheckTime("UpdatedAt", h.UpdatedAt), sqlstore.CheckTime("FinishedAt", h.FinishedAt),
		sqlstore.CheckTime("WakeAt", h.WakeAt)); err != nil {
		return driver.Written{}, fmt.Errorf("postgres: run %s: %w", p.ID, err)
	}
	for _, n := range p.Nodes {
		if n.Index < 0 || n.Index >= h.Nodes {
			return driver.Written{}, fmt.Errorf("postgres: checkpoint of run %s changes node %d of %d", p.ID, n.Index, h.Nodes)
		}
	}
	if err := checkConsume(&p); err != nil {
		return driver.Written{}, err
	}
	res := s.submit(ctx, &writeReq{checkpoint: &p})
	switch {
	case res.err != nil:
		return driver.Written{}, fmt.Errorf("postgres: updating run %s: %w", p.ID, res.err)
	case !res.applied:
		return driver.Written{}, s.whyNot(ctx, p.ID, p.Version, p.Owner)
	}
	return driver.Written{Version: res.version, LeaseUntil: sqlstore.Time(res.leaseUntil)}, nil
}

// whyNot tells why the compare-and-set of run id at version by owner did
// not apply.
func (s *Store) whyNot(ctx context.Context, id string, version int64, owner string) error {
	var v int64
	var o string
	err := s.pool.QueryRow(ctx, s.sql.why, id).Scan(&v, &o)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: %q", flux.ErrRunNotFound, id)
	case err != nil:
		return fmt.Errorf("postgres: updating run %s: the write did not apply, and reading why failed: %w", id, err)
	case o != owner && o != "":
		return fmt.Errorf("%w: run %s is owned by %s", flux.ErrLeaseLost, id, o)
	case v != version:
		return fmt.Errorf("%w: run %s is at version %d, not %d", flux.ErrConflict, id, v, version)
	}
	// It changed and changed back between the write and this read.
	return fmt.Errorf("%w: run %s was changed by another writer during the update", flux.ErrConflict, id)
}

// read runs f in a read-only repeatable-read transaction: it sees one
// state of the database.
func (s *Store) read(ctx context.Context, f func(tx pgx.Tx) error) error {
	if s.closed.Load() {
		return errClosed
	}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, f)
	if err != nil && !isFluxError(err) {
		return fmt.Errorf("postgres: reading: %w", err)
	}
	return err
}

// readLog reads the checkpoint rows of the run of header h with q.
func (s *Store) readLog(ctx context.Context, q pgx.Tx, h *sqlstore.Header) ([][]byte, error) {
	if err := checkHeader(h); err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, s.sql.logRows, h.ID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[[]byte])
}

// readRows reads the log and the signals of the run of header h with q and
// replays it.
func (s *Store) readRows(ctx context.Context, q pgx.Tx, h *sqlstore.Header) (*flux.Run, error) {
	bodies, err := s.readLog(ctx, q, h)
	if err != nil {
		return nil, err
	}
	run, err := sqlstore.Replay(h, bodies)
	if err != nil {
		return nil, err
	}
	if err := s.attachSignals(ctx, q, run); err != nil {
		return nil, err
	}
	return run, nil
}

// Get implements [driver.Store].
func (s *Store) Get(ctx context.Context, id string) (*flux.Run, error) {
	var run *flux.Run
	err := s.read(ctx, func(tx pgx.Tx) error {
		h, err := scanHeader(tx.QueryRow(ctx, s.sql.header, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %q", flux.ErrRunNotFound, id)
		}
		if err != nil {
			return err
		}
		run, err = s.readRows(ctx, tx, &h)
		return err
	})
	return run, err
}

// NodeData implements [driver.Store].
func (s *Store) NodeData(ctx context.Context, p driver.NodeDataParams) (json.RawMessage, error) {
	var data json.RawMessage
	err := s.read(ctx, func(tx pgx.Tx) error {
		h, err := scanHeader(tx.QueryRow(ctx, s.sql.header, p.ID))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %q", flux.ErrRunNotFound, p.ID)
		}
		if err != nil {
			return err
		}
		if p.Index < -1 || p.Index >= h.Nodes {
			return fmt.Errorf("%w: postgres: run %s has no node %d", errNoNode, p.ID, p.Index)
		}
		bodies, err := s.readLog(ctx, tx, &h)
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

// errNoNode marks an out-of-range node index, an answer rather than a
// database failure.
var errNoNode = errors.New("no such node")

// List implements [driver.Store]. Runs whose header does not decode are
// reported in RunPage.Corrupt and do not count towards the page size.
func (s *Store) List(ctx context.Context, f flux.Filter) (*flux.RunPage, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	after, err := driver.ParseCursor(f.Cursor)
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
			known = known && slicesContains(driver.Statuses, x)
		}
		if known {
			add("status IN (" + strings.Join(lits, ", ") + ")")
		} else {
			add("status = ANY(?)", all)
		}
	}
	if !f.Since.IsZero() {
		add("created_at >= ?", sqlstore.Nanos(f.Since))
	}
	if !f.Until.IsZero() {
		add("created_at < ?", sqlstore.Nanos(f.Until))
	}
	search := strings.TrimSpace(f.Search)
	if search != "" {
		args = append(args, search, driver.PrefixEnd(search), tsQuery(search))
	}
	base := len(args)
	size := f.PageSize()
	page := &flux.RunPage{}
	var last driver.Cursor // of the last run on the page, by its columns
	for {
		q, qa := s.sql.list, append([]any(nil), args...)
		w := append([]string(nil), where...)
		if after != nil {
			qa = append(qa, sqlstore.Nanos(after.CreatedAt), after.ID)
			w = append(w, fmt.Sprintf("(created_at, id) < ($%d, $%d)", base+1, base+2))
		}
		want := size - len(page.Runs) + 1
		order := fmt.Sprintf(" ORDER BY created_at DESC, id DESC LIMIT %d", want)
		if search != "" {
			// Each way of matching takes its newest page by an index of
			// its own (the primary key, runs_workflow_newest, the words
			// of the errors); the page is the newest of their union.
			c := strings.Join(append(w, "true"), " AND ")
			p := func(k int) string { return "$" + strconv.Itoa(base-3+k) }
			// (The prefix's parameters, unused there, must be typed.)
			words, err := s.searchErrors(ctx, p(1)+"::text <> '' AND "+p(2)+"::text <> '' AND "+c, p(3), qa, order, want)
			if err != nil {
				return nil, fmt.Errorf("postgres: searching runs: %w", err)
			}
			qa = append(qa, words)
			w = []string{p(3) + "::text IS NOT NULL", "id IN (" +
				// OFFSET 0 keeps the range by the primary key: the planner
				// would rather walk runs_newest and look at every run.
				"(SELECT id FROM (SELECT id, created_at FROM " + s.sql.runs + " WHERE id >= " + p(1) + " AND id < " + p(2) + " AND " + c + " OFFSET 0) m" + order + ") UNION " +
				"(SELECT id FROM " + s.sql.runs + " WHERE workflow = " + p(1) + " AND " + c + order + ") UNION " +
				"SELECT unnest($" + strconv.Itoa(len(qa)) + "::text[]))"}
		}
		if len(w) > 0 {
			q += " WHERE " + strings.Join(w, " AND ")
		}
		q += order
		// Planned for the values at hand (a search's plan depends on how
		// many runs its words match), not once for all.
		rows, err := s.pool.Query(ctx, q, append([]any{pgx.QueryExecModeExec}, qa...)...)
		if err != nil {
			return nil, fmt.Errorf("postgres: listing runs: %w", err)
		}
		got, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (sqlstore.Header, error) { return scanHeader(row) })
		if err != nil {
			return nil, fmt.Errorf("postgres: listing runs: %w", err)
		}
		for i := range got {
			h := &got[i]
			if len(page.Runs) == size {
				// There is more: the next page starts after the last run.
				page.Next = driver.MakeCursor(&flux.Run{ID: last.ID, CreatedAt: last.CreatedAt})
				return page, nil
			}
			after = &driver.Cursor{CreatedAt: sqlstore.Time(h.CreatedAt), ID: h.ID}
			if err := checkHeader(h); err != nil {
				page.Corrupt = append(page.Corrupt, err)
				continue
			}
			page.Runs = append(page.Runs, sqlstore.RunOf(h))
			last = *after
		}
		if len(got) < want {
			return page, nil
		}
	}
}

// fewMatches is how many runs whose errors match a search's words are few
// enough to sort.
const fewMatches = 2000

// searchErrors returns the IDs of the newest want runs whose errors have
// the words of the text-search query parameter tsq and that pass the
// condition c (with args). If the words match few runs, those are read by
// the words' index and sorted; if many, the newest runs are looked at one
// by one until want match. The planner cannot tell which is cheaper: the
// first query finds out.
func (s *Store) searchErrors(ctx context.Context, c, tsq string, args []any, order string, want int) ([]string, error) {
	few := "SELECT id, created_at FROM " + s.sql.runs + " WHERE " + tsq + " <> '' AND error <> ''" +
		" AND to_tsvector('simple', error) @@ to_tsquery('simple', " + tsq + ") AND " + c + " LIMIT " + strconv.Itoa(fewMatches+1)
	rows, err := s.pool.Query(ctx, few, append([]any{pgx.QueryExecModeExec}, args...)...)
	if err != nil {
		return nil, err
	}
	type hit struct {
		id      string
		created int64
	}
	var hits []hit
	var h hit
	if _, err := pgx.ForEachRow(rows, []any{&h.id, &h.created}, func() error { hits = append(hits, h); return nil }); err != nil {
		return nil, err
	}
	if len(hits) <= fewMatches {
		slices.SortFunc(hits, func(a, b hit) int {
			if a.created != b.created {
				return cmp.Compare(b.created, a.created)
			}
			return strings.Compare(b.id, a.id)
		})
		ids := make([]string, 0, min(want, len(hits)))
		for _, h := range hits[:min(want, len(hits))] {
			ids = append(ids, h.id)
		}
		return ids, nil
	}
	// (error || '' keeps the planner off the words' index: the walk is
	// the point.)
	walk := "SELECT id FROM " + s.sql.runs + " WHERE error <> '' AND to_tsvector('simple', error || '') @@ to_tsquery('simple', " +
		tsq + ") AND " + c + order
	rows, err = s.pool.Query(ctx, walk, append([]any{pgx.QueryExecModeExec}, args...)...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// tsQuery returns the text-search query of the words of a search, each
// matching as a prefix, or "" if it has none.
func tsQuery(search string) string {
	words := driver.QueryWords(search)
	for i, w := range words {
		words[i] = "'" + strings.ReplaceAll(w, "'", "''") + "':*"
	}
	return strings.Join(words, " & ")
}

func slicesContains(ss []flux.Status, s flux.Status) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Claim implements [driver.Store]. A run that does not decode is not
// claimed: the error wraps flux.ErrCorrupt.
func (s *Store) Claim(ctx context.Context, p driver.ClaimParams) (*flux.Run, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	var run *flux.Run
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		h, err := scanHeader(tx.QueryRow(ctx, s.sql.claim, p.ID, p.Owner, leaseMicros(p.Lease), driver.OwnerEngine(p.Owner)))
		if errors.Is(err, pgx.ErrNoRows) {
			var owner string
			var until int64
			err = tx.QueryRow(ctx, s.sql.claimWhy, p.ID).Scan(&owner, &until)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("%w: %q", flux.ErrRunNotFound, p.ID)
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: run %s is leased by %s until %s", flux.ErrRunActive, p.ID, owner,
				sqlstore.Time(until).Format(time.RFC3339Nano))
		}
		if err != nil {
			return err
		}
		run, err = s.readRows(ctx, tx, &h)
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
	for _, e := range []error{flux.ErrRunNotFound, flux.ErrRunActive, flux.ErrCorrupt, flux.ErrConflict, flux.ErrLeaseLost,
		flux.ErrRunFinished, errNoNode} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// readMany reads the checkpoint rows of runs ids, by run, in order.
func (s *Store) readMany(ctx context.Context, tx pgx.Tx, ids []string) (map[string][][]byte, error) {
	logs := make(map[string][][]byte, len(ids))
	rows, err := tx.Query(ctx, s.sql.manyLogs, ids)
	if err != nil {
		return nil, err
	}
	var id string
	var body []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &body}, func() error {
		logs[id] = append(logs[id], body)
		body = nil // the next row scans into a new slice
		return nil
	})
	return logs, err
}

// Extend implements [driver.Store].
func (s *Store) Extend(ctx context.Context, p driver.ExtendParams) ([]string, error) {
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
		if !slicesContainsString(kept, id) || p.Owner == "" {
			lost = append(lost, id)
		}
	}
	return lost, nil
}

func slicesContainsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Release implements [driver.Store].
func (s *Store) Release(ctx context.Context, p driver.ReleaseParams) error {
	if s.closed.Load() {
		return errClosed
	}
	tag, err := s.pool.Exec(ctx, s.sql.release, p.ID, p.Owner)
	if err != nil {
		return fmt.Errorf("postgres: releasing run %s: %w", p.ID, err)
	}
	if tag.RowsAffected() == 1 {
		// The run waits for an owner: tell the engines (best effort; they
		// also look on their own).
		_, _ = s.pool.Exec(ctx, "SELECT pg_notify($1, '')", s.channel)
		s.wakes.Signal()
		return nil
	}
	var v int64
	var o string
	if err := s.pool.QueryRow(ctx, s.sql.why, p.ID).Scan(&v, &o); errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %q", flux.ErrRunNotFound, p.ID)
	}
	return fmt.Errorf("%w: run %s is owned by %q, not %q", flux.ErrLeaseLost, p.ID, o, p.Owner)
}

// Cancel implements [driver.Store].
func (s *Store) Cancel(ctx context.Context, p driver.CancelParams) error {
	if s.closed.Load() {
		return errClosed
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var version int64
		var nodes int
		switch err := tx.QueryRow(ctx, s.sql.cancel, p.ID, p.Error, sqlstore.Nanos(p.At)).Scan(&version, &nodes); {
		case err == nil:
			_, err := tx.Exec(ctx, s.sql.insertLog, p.ID, version, sqlstore.EncodeCancel(nodes))
			return err
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		var st string
		switch err := tx.QueryRow(ctx, s.sql.status, p.ID).Scan(&st); {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("%w: %q", flux.ErrRunNotFound, p.ID)
		case err != nil:
			return err
		case st == string(flux.StatusCancelled):
			return nil
		}
		return fmt.Errorf("%w: cannot cancel run %s: it is %s", flux.ErrRunFinished, p.ID, st)
	})
	if err != nil && !isFluxError(err) {
		return fmt.Errorf("postgres: cancelling run %s: %w", p.ID, err)
	}
	return err
}

// Prune implements [driver.Store].
func (s *Store) Prune(ctx context.Context, p driver.PruneParams) (int, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		except := p.Except
		if except == nil {
			except = []string{}
		}
		rows, err := tx.Query(ctx, s.sql.pruneIDs, string(p.Status), sqlstore.Nanos(p.FinishedBefore), p.Workflow, except, p.PruneLimit())
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(ids) == 0 {
			return err
		}
		if _, err := tx.Exec(ctx, s.sql.deleteLogs, ids); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM "+s.sql.deleteTrace, ids); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.sql.deleteSignals, ids); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "DELETE FROM "+s.sql.runs+" WHERE id = ANY($1)", ids)
		n = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: pruning runs: %w", err)
	}
	return n, nil
}
