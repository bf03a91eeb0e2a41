package fluxotel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/flux-go/flux"
)

// MaxPendingCount bounds how many pending runs one collection of
// flux.runs.pending reads from a store: a queue longer than that is
// reported as MaxPendingCount runs in all, spread over the workflows of the
// newest ones. It keeps a scrape cheap when the queue is long, which is
// exactly when scrapes must not add load to the store.
const MaxPendingCount = 10000

// pendingTimeout bounds the store queries of one collection.
const pendingTimeout = 5 * time.Second

// ObservePending makes the gauge flux.runs.pending report, at each
// collection, the runs of store that are pending: stored by [flux.Start]
// and not yet taken by an engine. It lists them (the headers only, a page
// of up to 1000 runs per query, at most [MaxPendingCount] runs in all) and
// counts them by workflow; a workflow seen once keeps reporting 0 when its
// queue is empty, so its series does not vanish. Call it once per store,
// usually with engine.Storage() after flux.NewEngine; [Instrumentation.Close]
// stops it. A store that cannot be listed makes the collection report the
// error to the OpenTelemetry error handler and observe nothing.
func (in *Instrumentation) ObservePending(store flux.Storage) error {
	if store == nil {
		return errors.New("fluxotel: ObservePending(nil): pass the engine's storage")
	}
	var (
		mu   sync.Mutex
		seen = make(map[string]bool)
	)
	reg, err := in.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		counts, err := countPending(ctx, store)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for wf := range counts {
			if len(seen) < maxMemo {
				seen[wf] = true
			}
		}
		for wf := range seen {
			if _, ok := counts[wf]; !ok {
				counts[wf] = 0
			}
		}
		for wf, n := range counts {
			o.ObserveInt64(in.runsPending, n, in.memo.get(memoKey{kind: memoRun, workflow: wf}).metricAttrs)
		}
		return nil
	}, in.runsPending)
	if err != nil {
		return fmt.Errorf("fluxotel: observing pending runs: %w", err)
	}
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		_ = reg.Unregister()
		return errors.New("fluxotel: ObservePending after Close")
	}
	in.pending = append(in.pending, reg)
	in.mu.Unlock()
	return nil
}

// countPending counts the pending runs of store by workflow, up to
// MaxPendingCount of them. Runs the store cannot decode are not counted:
// their workflow is unknown.
func countPending(ctx context.Context, store flux.Storage) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, pendingTimeout)
	defer cancel()
	counts := make(map[string]int64)
	f := flux.Filter{Status: []flux.Status{flux.StatusPending}, Limit: min(1000, MaxPendingCount)}
	for total := 0; total < MaxPendingCount; {
		f.Limit = min(f.Limit, MaxPendingCount-total)
		page, err := store.List(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("fluxotel: counting pending runs: %w", err)
		}
		for _, r := range page.Runs {
			counts[r.Workflow]++
		}
		total += len(page.Runs)
		if page.Next == "" || len(page.Runs) == 0 {
			break
		}
		f.Cursor = page.Next
	}
	return counts, nil
}

// leaseLost is the message of flux.ErrLeaseLost, which a trace event
// carries as text only.
var leaseLost = flux.ErrLeaseLost.Error()

// runInterrupted counts a run that stopped without finishing because its
// lease was lost. Its spans stay open: the run is not over, and its next
// start here ends them.
func (in *Instrumentation) runInterrupted(ev *flux.TraceEvent) {
	if !strings.Contains(ev.Err, leaseLost) {
		return
	}
	in.mu.Lock()
	closed := in.closed
	in.mu.Unlock()
	if closed {
		return
	}
	in.runsLeaseLost.Add(context.Background(), 1, in.memo.get(memoKey{kind: memoRun, workflow: ev.Workflow}).metricAttrs)
}
