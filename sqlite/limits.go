package sqlite

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
)

// Concurrency limits (driver.Limit). A ClaimExpired counts and claims in
// one write transaction (BEGIN IMMEDIATE), which holds the database's
// write lock: no other claim, of this process or another, interleaves, so
// engines claiming at once never exceed a limit.
//
// The counts come from runs_counted, which holds the runs that count only.
// The pending runs a limit holds back are not skipped one by one in Go: a
// workflow whose limit is full in all is read from runs_counted alone, so
// its queue of pending runs, however long, is never read; the runs of a
// key that is full are left out by the query over runs_unfinished, which
// passes over their index entries without reading their rows.

// limitsOf returns the limits of p that bound some of p's workflows, by
// workflow.
func limitsOf(p driver.ClaimExpiredParams) map[string]driver.Limit {
	var limits map[string]driver.Limit
	for _, l := range p.Limits {
		if (l.Max <= 0 && l.PerKey <= 0) || !slices.Contains(p.Workflows, l.Workflow) {
			continue
		}
		if limits == nil {
			limits = make(map[string]driver.Limit)
		}
		limits[l.Workflow] = l
	}
	return limits
}

// tally is what a limit of one workflow allows, and how many of its runs
// count now (driver.Limit): in all, and by concurrency key.
type tally struct {
	limit driver.Limit
	total int
	keys  map[string]int
}

// countLimited counts the runs of the limited workflows.
func (t *txn) countLimited(limits map[string]driver.Limit) (map[string]*tally, error) {
	if len(limits) == 0 {
		return nil, nil
	}
	tallies := make(map[string]*tally, len(limits))
	for wf, l := range limits {
		c := &tally{limit: l, keys: map[string]int{}}
		rows, err := t.counted.QueryContext(bg, wf)
		if err != nil {
			return nil, fmt.Errorf("sqlite: counting the runs of workflow %s: %w", wf, err)
		}
		for rows.Next() {
			var key string
			var n int
			if err := rows.Scan(&key, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: counting the runs of workflow %s: %w", wf, err)
			}
			c.add(key, n)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, fmt.Errorf("sqlite: counting the runs of workflow %s: %w", wf, err)
		}
		tallies[wf] = c
	}
	return tallies, nil
}

func (c *tally) add(key string, n int) {
	c.total += n
	c.keys[key] += n
}

// full reports whether the limit admits no more runs of any key.
func (c *tally) full() bool { return c.limit.Max > 0 && c.total >= c.limit.Max }

// fullKeys returns the keys the limit admits no more runs of.
func (c *tally) fullKeys() []string {
	var keys []string
	for k, n := range c.keys {
		if c.limit.PerKey > 0 && n >= c.limit.PerKey {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// admit reports whether pending run c may be claimed within the limit,
// and if so counts it, and whether that filled the limit for its key. A
// run that has an owner (whose lease expired) counts already.
func (l *tally) admit(c *candidate) (ok, filled bool) {
	n := 0
	if c.owner == "" {
		n = 1
	}
	if (l.limit.Max > 0 && l.total+n > l.limit.Max) || (l.limit.PerKey > 0 && l.keys[c.key]+n > l.limit.PerKey) {
		return false, false
	}
	l.add(c.key, n)
	return true, n == 1 && (l.full() || (l.limit.PerKey > 0 && l.keys[c.key] >= l.limit.PerKey))
}

// candidate is a run ClaimExpired may claim: what decides it, and the
// header of a waiting run (read whole by its query).
type candidate struct {
	id, workflow, status, owner, key string
	createdAt                        int64
	head                             *sqlstore.Header
}

// expiredOf appends to cands up to limit (0: all) pending and running runs
// of workflow wf whose lease is free for owner, oldest first, within the
// limit of tally l (nil: none). engine is owner's engine ID, now the time.
//
// It walks runs_unfinished from wf's oldest run, leaving out the free
// pending runs of the keys that l's limit holds back; when a run it admits
// fills a key, it goes on after that run without that key's runs. Once l's
// limit is full in all, it takes the rest from runs_counted: the running
// runs (whose owner may have died) and the pending runs with an owner,
// however many free pending runs wait behind them.
func (t *txn) expiredOf(cands []candidate, wf, owner, engine string, now int64, limit int, l *tally) ([]candidate, error) {
	n := 0
	after, afterID := int64(math.MinInt64), ""
	for {
		stmt, held := t.expired, "[]"
		switch {
		case l != nil && l.full():
			stmt = t.expiredCounted
		case l != nil && len(l.fullKeys()) > 0:
			b, _ := json.Marshal(l.fullKeys()) // strings always marshal
			held = string(b)
		}
		rows, err := stmt.QueryContext(bg, wf, owner, held, after, afterID)
		if err != nil {
			return nil, fmt.Errorf("sqlite: finding the expired runs of workflow %s: %w", wf, err)
		}
		again := false
		for !again && (limit <= 0 || n < limit) && rows.Next() {
			var c candidate
			if err := rows.Scan(&c.id, &c.status, &c.owner, &c.key, &c.createdAt); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: finding the expired runs of workflow %s: %w", wf, err)
			}
			c.workflow, after, afterID = wf, c.createdAt, c.id
			if c.owner != "" && driver.OwnerEngine(c.owner) != engine {
				// Another engine's: claimable once its lease expired.
				var until int64
				if err := t.leaseOf.QueryRowContext(bg, c.id).Scan(&until); err != nil {
					rows.Close()
					return nil, fmt.Errorf("sqlite: reading the lease of run %s: %w", c.id, err)
				}
				if until > now {
					continue
				}
			}
			if l != nil && c.status == string(flux.StatusPending) {
				ok, filled := l.admit(&c)
				if !ok {
					continue
				}
				again = filled // the query leaves out what it holds back
			}
			cands = append(cands, c)
			n++
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, fmt.Errorf("sqlite: finding the expired runs of workflow %s: %w", wf, err)
		}
		if !again || (limit > 0 && n >= limit) {
			return cands, nil
		}
	}
}
