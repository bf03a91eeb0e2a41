package flux

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/flux-go/flux/driver"
)

// Retention says how long finished runs are kept before the engine deletes
// them. The defaults follow River's: a day for runs that completed or were
// cancelled, a week for failed runs, which a person may still want to
// retry. Runs that have not finished are never deleted.
type Retention struct {
	// Completed is how long completed and cancelled runs are kept after
	// they finish: 0 means 24 hours; negative means forever.
	Completed time.Duration
	// Failed is how long failed runs are kept after they fail: 0 means 7
	// days; negative means forever.
	Failed time.Duration
}

// Default retention periods.
const (
	DefaultRetainCompleted = 24 * time.Hour
	DefaultRetainFailed    = 7 * 24 * time.Hour
	// DefaultPruneInterval is how often an engine deletes the runs past
	// their retention, unless Config.PruneInterval says otherwise.
	DefaultPruneInterval = time.Minute
	// pruneBatch is the most runs one Storage.Prune call deletes, so that
	// pruning holds the store's locks for short moments only.
	pruneBatch = 500
)

// or returns r with its zero fields taken from d.
func (r Retention) or(d Retention) Retention {
	if r.Completed == 0 {
		r.Completed = d.Completed
	}
	if r.Failed == 0 {
		r.Failed = d.Failed
	}
	return r
}

// period returns how long runs that ended with status s are kept, and
// whether they are deleted at all.
func (r Retention) period(s Status) (time.Duration, bool) {
	d := r.Completed
	if s == StatusFailed {
		d = r.Failed
	}
	return d, d > 0
}

// retention is an engine's resolved configuration.
type retention struct {
	all      Retention            // Config.Retention with defaults
	flows    map[string]Retention // Config.WorkflowRetention, completed by all
	interval time.Duration        // <0: no background pruning
}

func newRetention(cfg Config) (retention, error) {
	r := retention{
		all:      cfg.Retention.or(Retention{Completed: DefaultRetainCompleted, Failed: DefaultRetainFailed}),
		flows:    make(map[string]Retention, len(cfg.WorkflowRetention)),
		interval: cfg.PruneInterval,
	}
	for name, wr := range cfg.WorkflowRetention {
		if name == "" {
			return r, errors.New("flux: Config.WorkflowRetention has an entry for workflow \"\"; key it by the workflow's name")
		}
		r.flows[name] = wr.or(r.all)
	}
	if r.interval == 0 {
		r.interval = DefaultPruneInterval
	}
	return r, nil
}

// Prune deletes the finished runs that are past their retention as of now
// (Config.Retention, or the workflow's own in Config.WorkflowRetention),
// oldest first and in batches of a few hundred, and returns how many it
// deleted. Unless Config.PruneInterval is negative the engine calls it in
// the background with the current time; call it yourself to prune on your
// own schedule, or, in tests, with a clock of your own.
func (e *Engine) Prune(ctx context.Context, now time.Time) (int, error) {
	names := slices.Sorted(maps.Keys(e.retain.flows))
	total := 0
	for _, s := range []Status{StatusCompleted, StatusCancelled, StatusFailed} {
		// The workflows with their own retention, then all the others.
		for _, name := range names {
			n, err := e.pruneAll(ctx, now, e.retain.flows[name], driver.PruneParams{Status: s, Workflow: name})
			total += n
			if err != nil {
				return total, err
			}
		}
		n, err := e.pruneAll(ctx, now, e.retain.all, driver.PruneParams{Status: s, Except: names})
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// pruneAll deletes, batch by batch, the runs p selects that finished more
// than r's period for p.Status before now.
func (e *Engine) pruneAll(ctx context.Context, now time.Time, r Retention, p driver.PruneParams) (int, error) {
	keep, ok := r.period(p.Status)
	if !ok {
		return 0, nil
	}
	p.FinishedBefore, p.Limit = now.Add(-keep), pruneBatch
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := e.store.Prune(ctx, p)
		total += n
		if err != nil {
			return total, fmt.Errorf("flux: deleting %s runs finished before %s: %w", p.Status, p.FinishedBefore.Format(time.RFC3339), err)
		}
		if n < pruneBatch {
			return total, nil
		}
	}
}

// pruneLoop calls Prune every Config.PruneInterval until the engine closes.
func (e *Engine) pruneLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.retain.interval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-e.stop
		cancel()
	}()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		n, err := e.Prune(ctx, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			e.log.Warn("flux: deleting runs past their retention failed; the next pass retries",
				slog.Int("deleted", n), slog.Any("error", err))
		case n > 0:
			e.log.Debug("flux: deleted runs past their retention", slog.Int("deleted", n))
		}
	}
}
