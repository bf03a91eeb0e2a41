package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
	"github.com/jackc/pgx/v5"
)

// ClaimExpired implements [driver.Store]. It reads, each by an index of its
// own, the pending and running runs whose lease is free, the waiting runs
// that are due (never those that are not), and, for each workflow with a
// limit, the pending runs the limit lets start, walked in creation order
// under a transaction-level advisory lock of the workflow, so that two
// engines claiming at once take turns and never exceed a limit. Runs that
// do not decode are left alone and reported.
func (s *Store) ClaimExpired(ctx context.Context, p driver.ClaimExpiredParams) (*driver.ClaimedRuns, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	out := &driver.ClaimedRuns{}
	if len(p.Workflows) == 0 {
		return out, nil
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 1 << 30
	}
	limits := limitsOf(p)
	limited := make([]string, len(limits))
	keys := make([]int64, len(limits))
	for i, l := range limits {
		limited[i], keys[i] = l.Workflow, s.limitKey(l.Workflow)
	}
	slices.Sort(keys)
	engine := driver.OwnerEngine(p.Owner)
	// READ COMMITTED: each statement sees what the claims before it
	// committed, the counts of a limit those of the engine that held its
	// lock before.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		*out = driver.ClaimedRuns{}
		// One round trip: the locks of the limits, then the runs to take
		// whatever the limits, and the next wake-up.
		b := &pgx.Batch{}
		if len(keys) > 0 {
			b.Queue(s.sql.lockLimits, keys)
		}
		b.Queue(s.sql.expired, p.Workflows, limit, p.Owner, engine, limited)
		b.Queue(s.sql.waitingDue, p.Workflows, limit, p.Owner, engine)
		b.Queue(s.sql.nextWake, p.Workflows, p.Owner, engine)
		heads, woken, next, err := s.readClaimBatch(tx.SendBatch(ctx, b), len(keys) > 0)
		if err != nil {
			return err
		}
		out.NextWake = next
		heads = append(heads, woken...)
		for _, l := range limits {
			more, err := s.claimLimited(ctx, tx, l, p.Owner, engine, limit, woken)
			if err != nil {
				return err
			}
			heads = append(heads, more...)
		}
		slices.SortFunc(heads, func(a, b sqlstore.Header) int {
			return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.ID, b.ID))
		})
		return s.claimHeaders(ctx, tx, heads[:min(len(heads), limit)], p, out)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claiming expired runs: %w", err)
	}
	return out, nil
}

// readClaimBatch reads the results of ClaimExpired's batch: the pending and
// running runs, the waiting runs due, and the next wake-up.
func (s *Store) readClaimBatch(br pgx.BatchResults, locks bool) (heads, woken []sqlstore.Header, next time.Time, err error) {
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	if locks {
		if _, err := br.Exec(); err != nil {
			return nil, nil, next, err
		}
	}
	collect := func() ([]sqlstore.Header, error) {
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(row pgx.CollectableRow) (sqlstore.Header, error) { return scanHeader(row) })
	}
	if heads, err = collect(); err != nil {
		return nil, nil, next, err
	}
	if woken, err = collect(); err != nil {
		return nil, nil, next, err
	}
	var n int64
	switch err := br.QueryRow().Scan(&n); {
	case err == nil:
		next = sqlstore.WakeTime(n)
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, nil, next, err
	}
	return heads, woken, next, nil
}

// limitsOf returns the limits of p that bound one of its workflows, one per
// workflow (the first given), by workflow.
func limitsOf(p driver.ClaimExpiredParams) []driver.Limit {
	var out []driver.Limit
	for _, l := range p.Limits {
		if (l.Max > 0 || l.PerKey > 0) && slices.Contains(p.Workflows, l.Workflow) &&
			!slices.ContainsFunc(out, func(o driver.Limit) bool { return o.Workflow == l.Workflow }) {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b driver.Limit) int { return cmp.Compare(a.Workflow, b.Workflow) })
	return out
}

// limitKey is the advisory lock that serialises the claims of a limited
// workflow's pending runs.
func (s *Store) limitKey(workflow string) int64 {
	h := fnv.New64a()
	h.Write([]byte("flux/postgres limit " + s.schema + "\x00" + workflow))
	return int64(h.Sum64())
}

// headers returns the header rows of query q.
func headers(ctx context.Context, tx pgx.Tx, q string, args ...any) ([]sqlstore.Header, error) {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (sqlstore.Header, error) { return scanHeader(row) })
}

// limitPage is how many pending runs of a limited workflow claimLimited
// reads at a time.
const limitPage = 64

// claimLimited returns up to want pending runs of l's workflow that l lets
// start, oldest first, locked; the caller holds the workflow's advisory
// lock. woken are the waiting runs this claim takes: they count once
// claimed. A pending run whose claimant left it is counted already, and is
// taken again while the counts are within bounds; free ones are taken while
// they stay within them, skipping those of full keys.
func (s *Store) claimLimited(ctx context.Context, tx pgx.Tx, l driver.Limit, owner, engine string, want int,
	woken []sqlstore.Header) ([]sqlstore.Header, error) {
	rows, err := tx.Query(ctx, s.sql.counted, l.Workflow)
	if err != nil {
		return nil, err
	}
	perKey := map[string]int{}
	var key string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&key, &n}, func() error { perKey[key] = n; return nil }); err != nil {
		return nil, err
	}
	total := 0
	for _, n := range perKey {
		total += n
	}
	for _, h := range woken {
		if h.Workflow == l.Workflow && h.Owner == "" {
			total++
			perKey[h.ConcurrencyKey]++
		}
	}
	fits := func(key string, add int) bool {
		return (l.Max <= 0 || total+add <= l.Max) && (l.PerKey <= 0 || perKey[key]+add <= l.PerKey)
	}
	var taken []sqlstore.Header
	left, err := headers(ctx, tx, s.sql.pendingLeased, l.Workflow, owner, engine, min(want, limitPage))
	if err != nil {
		return nil, err
	}
	for _, h := range left {
		if fits(h.ConcurrencyKey, 0) {
			taken = append(taken, h)
		}
	}
	full := []string{}
	for k, n := range perKey {
		if l.PerKey > 0 && n >= l.PerKey {
			full = append(full, k)
		}
	}
	afterAt, afterID := int64(math.MinInt64), ""
	for len(taken) < want && (l.Max <= 0 || total < l.Max) {
		page, err := headers(ctx, tx, s.sql.pendingFree, l.Workflow, afterAt, afterID, full, limitPage, owner)
		if err != nil {
			return nil, err
		}
		for _, h := range page {
			afterAt, afterID = h.CreatedAt, h.ID
			if len(taken) == want || (l.Max > 0 && total >= l.Max) {
				break
			}
			k := h.ConcurrencyKey
			if !fits(k, 1) {
				continue
			}
			taken = append(taken, h)
			total++
			perKey[k]++
			if l.PerKey > 0 && perKey[k] >= l.PerKey {
				full = append(full, k)
			}
		}
		if len(page) < limitPage {
			break
		}
	}
	return taken, nil
}

// claimHeaders claims the runs of heads, locked and in order, for p.Owner:
// those that decode go to out.Runs, in the order of heads, with their
// signals; the others to out.Corrupt.
func (s *Store) claimHeaders(ctx context.Context, tx pgx.Tx, heads []sqlstore.Header, p driver.ClaimExpiredParams,
	out *driver.ClaimedRuns) error {
	if len(heads) == 0 {
		return nil
	}
	ids := make([]string, len(heads))
	for i := range heads {
		ids[i] = heads[i].ID
	}
	logs, err := s.readMany(ctx, tx, ids)
	if err != nil {
		return err
	}
	var good []string
	byID := map[string]*flux.Run{}
	for i := range heads {
		h := &heads[i]
		var run *flux.Run
		err := checkHeader(h)
		if err == nil {
			run, err = sqlstore.Replay(h, logs[h.ID])
		}
		if err != nil {
			out.Corrupt = append(out.Corrupt, err)
			continue
		}
		good = append(good, h.ID)
		byID[h.ID] = run
	}
	if len(good) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, s.sql.claimIDs, good, p.Owner, leaseMicros(p.Lease))
	if err != nil {
		return err
	}
	var id string
	var version, until int64
	_, err = pgx.ForEachRow(rows, []any{&id, &version, &until}, func() error {
		run := byID[id]
		run.Owner, run.Version, run.LeaseUntil = p.Owner, version, sqlstore.Time(until)
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range good {
		out.Runs = append(out.Runs, byID[id])
	}
	return s.attachSignals(ctx, tx, out.Runs...)
}
