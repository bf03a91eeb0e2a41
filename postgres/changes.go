package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
)

// Changes implements [driver.Store]: a position is a transaction ID X such
// that every checkpoint row written by a transaction before X was
// reported. Rows are read up to the oldest transaction still running, so
// none that commits later can fall behind a position already given.
func (s *Store) Changes(ctx context.Context, p driver.ChangesParams) (*driver.ChangesPage, error) {
	var after int64
	if p.After != "" {
		v, err := strconv.ParseInt(p.After, 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("postgres: change position %q is not one of this store's: pass the Position a Changes returned, or \"\"", p.After)
		}
		after = v
	}
	page := &driver.ChangesPage{Runs: []*driver.Run{}}
	err := s.read(ctx, func(tx pgx.Tx) error {
		var upTo int64
		if err := tx.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").Scan(&upTo); err != nil {
			return err
		}
		page.Position = strconv.FormatInt(max(upTo, after), 10)
		if p.After == "" || after >= upTo {
			return nil
		}
		rows, err := tx.Query(ctx, "SELECT run_id, xid FROM "+s.sql.checkpoints+" WHERE xid >= $1 AND xid < $2 ORDER BY xid",
			after, upTo)
		if err != nil {
			return err
		}
		// Each run once, at its last write; a page ends between two
		// transactions, so that the position can say where.
		last := map[string]int64{}
		var order []string
		var id string
		var xid int64
		limit, cut, group := p.ChangesLimit(), int64(0), int64(-1)
		_, err = pgx.ForEachRow(rows, []any{&id, &xid}, func() error {
			if cut != 0 {
				return nil
			}
			if xid != group {
				if len(order) >= limit {
					cut = xid
					return nil
				}
				group = xid
			}
			if _, seen := last[id]; !seen {
				order = append(order, id)
			}
			last[id] = xid
			return nil
		})
		if err != nil {
			return err
		}
		if cut != 0 {
			page.Position = strconv.FormatInt(cut, 10)
		}
		slices.SortStableFunc(order, func(a, b string) int { return cmp.Compare(last[a], last[b]) })
		rows, err = tx.Query(ctx, s.sql.headers, order)
		if err != nil {
			return err
		}
		heads, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (sqlstore.Header, error) { return scanHeader(row) })
		if err != nil {
			return err
		}
		byID := make(map[string]*sqlstore.Header, len(heads))
		for i := range heads {
			byID[heads[i].ID] = &heads[i]
		}
		for _, id := range order {
			h := byID[id]
			switch err := checkHeaderIf(h); {
			case h == nil: // deleted since
			case err != nil:
				page.Corrupt = append(page.Corrupt, err)
			default:
				page.Runs = append(page.Runs, sqlstore.RunOf(h))
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, errClosed) {
			return nil, err
		}
		return nil, fmt.Errorf("postgres: reading changes: %w", err)
	}
	return page, nil
}

func checkHeaderIf(h *sqlstore.Header) error {
	if h == nil {
		return nil
	}
	return checkHeader(h)
}
