package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
)

// ClaimExpired implements [driver.Store]. It claims, oldest first, from
// two indexes: the pending and running runs whose lease is free, by
// runs_unfinished, workflow by workflow (see expiredOf), and the waiting
// runs that are due, by runs_waiting, which also gives NextWake. Neither
// reads the waiting runs that are not due, nor the pending runs that a
// full limit holds back.
func (s *Store) ClaimExpired(ctx context.Context, p driver.ClaimExpiredParams) (*driver.ClaimedRuns, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	out := &driver.ClaimedRuns{}
	if len(p.Workflows) == 0 {
		return out, nil
	}
	wfs, err := json.Marshal(p.Workflows)
	if err != nil {
		return nil, err
	}
	limits := limitsOf(p)
	workflows := slices.Compact(slices.Sorted(slices.Values(p.Workflows)))
	err = s.submit(ctx, func(t *txn) error {
		*out = driver.ClaimedRuns{}
		now := time.Now()
		// ?1 the claimant, ?2 now, ?3 its engine ID, ?4 the workflows.
		engine := driver.OwnerEngine(p.Owner)
		args := []any{p.Owner, now.UnixNano(), engine, string(wfs)}
		tallies, err := t.countLimited(limits)
		if err != nil {
			return err
		}
		// The woken runs first: they count for the limits of the pending
		// runs claimed with them, though no limit holds them back.
		heads, next, err := t.dueWaiting(args, p.Limit, now.UnixNano())
		if err != nil {
			return err
		}
		out.NextWake = next
		cands := make([]candidate, len(heads))
		for i := range heads {
			h := &heads[i]
			cands[i] = candidate{id: h.ID, workflow: h.Workflow, createdAt: h.CreatedAt, head: h}
			if l := tallies[h.Workflow]; l != nil && h.Owner == "" {
				l.add(h.ConcurrencyKey, 1)
			}
		}
		for _, wf := range workflows {
			if cands, err = t.expiredOf(cands, wf, p.Owner, engine, now.UnixNano(), p.Limit, tallies[wf]); err != nil {
				return err
			}
		}
		slices.SortFunc(cands, func(a, b candidate) int {
			return cmp.Or(cmp.Compare(a.createdAt, b.createdAt), cmp.Compare(a.id, b.id))
		})
		if p.Limit > 0 && len(cands) > p.Limit {
			cands = cands[:p.Limit]
		}
		until := now.Add(p.Lease)
		for _, c := range cands {
			h := c.head
			if h == nil {
				head, err := scanHeader(t.selectHeader.QueryRowContext(bg, c.id))
				if err != nil {
					return fmt.Errorf("sqlite: reading run %s: %w", c.id, err)
				}
				h = &head
			}
			run, err := t.claimRun(h, p.Owner, until)
			switch {
			case errors.Is(err, flux.ErrCorrupt):
				out.Corrupt = append(out.Corrupt, err)
			case err != nil:
				return err
			default:
				out.Runs = append(out.Runs, run)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// dueWaiting reads the headers of up to limit (0: all) waiting runs that
// are due and free, the earliest due first, and returns them with the
// wake time of the next one after them (zero if none): in the past if
// more are due than the limit let it take. args are those of the
// waiting statement; now is the time in stored form.
func (t *txn) dueWaiting(args []any, limit int, now int64) (heads []sqlstore.Header, next time.Time, err error) {
	rows, err := t.waiting.QueryContext(bg, args...)
	if err != nil {
		return nil, next, fmt.Errorf("sqlite: finding waiting runs that are due: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		h, err := scanHeader(rows)
		if err != nil {
			return nil, next, fmt.Errorf("sqlite: finding waiting runs that are due: %w", err)
		}
		if h.WakeAt > now || (limit > 0 && len(heads) == limit) {
			// The first not due, or one due beyond the limit: the next
			// look is at its time (at once if it is due).
			next = sqlstore.WakeTime(h.WakeAt)
			break
		}
		heads = append(heads, h)
	}
	if err := rows.Err(); err != nil {
		return nil, next, fmt.Errorf("sqlite: finding waiting runs that are due: %w", err)
	}
	return heads, next, nil
}

// txnQuerier is the writer's transaction as a querier: the reads it makes
// often run its prepared statements.
type txnQuerier struct{ t *txn }

func (q txnQuerier) stmt(query string) *sql.Stmt {
	switch query {
	case selectLog:
		return q.t.selectLog
	case selectSignals:
		return q.t.selectSignals
	case selectHeader:
		return q.t.selectHeader
	}
	return nil
}

func (q txnQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := q.stmt(query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.t.conn.QueryContext(ctx, query, args...)
}

func (q txnQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := q.stmt(query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.t.conn.QueryRowContext(ctx, query, args...)
}
