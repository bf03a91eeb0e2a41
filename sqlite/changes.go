package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
)

// Changes implements [driver.Store]: a position is the seq of a checkpoint
// row. One writer commits the rows in the order of their seq, so a reader
// never sees a row while one before it is still to come.
func (s *Store) Changes(ctx context.Context, p driver.ChangesParams) (*driver.ChangesPage, error) {
	var after int64
	if p.After != "" {
		v, err := strconv.ParseInt(p.After, 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("sqlite: change position %q is not one of this store's: pass the Position a Changes returned, or \"\"", p.After)
		}
		after = v
	}
	page := &driver.ChangesPage{Runs: []*driver.Run{}}
	err := s.read(ctx, func(tx *sql.Tx) error {
		var last int64
		if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM checkpoints").Scan(&last); err != nil {
			return fmt.Errorf("sqlite: reading changes: %w", err)
		}
		page.Position = strconv.FormatInt(last, 10)
		if p.After == "" || after >= last {
			return nil
		}
		limit := p.ChangesLimit()
		type change struct {
			id  string
			seq int64
		}
		changes, err := collect(ctx, tx, `SELECT run_id, max(seq) AS s FROM checkpoints WHERE seq > ? AND seq <= ?
			GROUP BY run_id ORDER BY s LIMIT ?`, []any{after, last, limit + 1},
			func(sc scanner) (c change, err error) {
				err = sc.Scan(&c.id, &c.seq)
				return c, err
			})
		if err != nil {
			return err
		}
		if len(changes) > limit {
			changes = changes[:limit]
			page.Position = strconv.FormatInt(changes[limit-1].seq, 10)
		}
		ids := make([]string, len(changes))
		for i, c := range changes {
			ids[i] = c.id
		}
		list, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		heads, err := collect(ctx, tx, "SELECT "+headerColumns+" FROM runs WHERE id IN (SELECT value FROM json_each(?))",
			[]any{string(list)}, scanHeader)
		if err != nil {
			return err
		}
		byID := make(map[string]*sqlstore.Header, len(heads))
		for i := range heads {
			byID[heads[i].ID] = &heads[i]
		}
		for _, c := range changes {
			h := byID[c.id]
			switch {
			case h == nil: // deleted since
			case checkHeader(h) != nil:
				page.Corrupt = append(page.Corrupt, checkHeader(h))
			default:
				page.Runs = append(page.Runs, sqlstore.RunOf(h))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}
