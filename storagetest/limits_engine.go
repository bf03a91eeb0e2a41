package storagetest

import (
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
)

// limitEngineTests are engine-level tests of concurrency limits: engines
// sharing the store keep a workflow's limit between them.
var limitEngineTests = []testCase{
	{"PerKeyLimitOverAThousandRuns", perKeyLimitTest},
}

// perKeyLimitTest starts 1,000 runs for 10 customers of a workflow that
// runs one at a time per customer, executed by two engines of 16 workers
// sharing the store: no two runs of a customer overlap, neither as seen
// live nor in the attempts recorded, and every run completes.
func perKeyLimitTest(t *testing.T, h Harness) {
	const runs, customers = 1000, 10
	var mu sync.Mutex
	inFlight := map[string]int{}
	var overlaps []string
	w := flux.New[In, Data]("per-customer").
		ConcurrencyKey(1, func(in In) string { return fmt.Sprintf("c%d", in.N%customers) }).
		Step("work", func(x *ctxT) error {
			key := fmt.Sprintf("c%d", x.Input.N%customers)
			mu.Lock()
			inFlight[key]++
			if inFlight[key] > 1 {
				overlaps = append(overlaps, x.RunID())
			}
			mu.Unlock()
			for range 50 { // gives another run of the customer a chance to overlap
				runtime.Gosched()
			}
			mu.Lock()
			inFlight[key]--
			mu.Unlock()
			return nil
		})
	var engines []*flux.Engine
	for _, id := range []string{"limit-a", "limit-b"} {
		e, err := flux.NewEngine(flux.Config{Storage: h.Store, ID: id, Logger: slog.New(slog.DiscardHandler),
			LeaseDuration: time.Hour, RecoveryInterval: 50 * time.Millisecond, Workers: 16, PruneInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		if err := e.Register(w); err != nil {
			t.Fatal(err)
		}
		engines = append(engines, e)
	}
	ids := make([]string, 0, runs)
	keyOf := map[string]string{}
	for i := range runs {
		id, err := flux.Start(ctx(t), engines[i%2], w, In{N: i})
		if err != nil {
			t.Fatalf("Start %d: %v", i, err)
		}
		ids = append(ids, id)
		keyOf[id] = fmt.Sprintf("c%d", i%customers)
	}
	type span struct {
		run      string
		from, to time.Time
	}
	spans := map[string][]span{}
	for _, id := range ids {
		res, err := flux.Wait(ctx(t), engines[0], w, id)
		if err != nil {
			t.Fatalf("Wait %s: %v", id, err)
		}
		run, err := h.Store.Get(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != flux.StatusCompleted || len(run.Steps) != 1 || len(run.Steps[0].Attempts) != 1 {
			t.Fatalf("run %s: %s with %d nodes; want completed, its one step once", id, res.Status, len(run.Steps))
		}
		if want := keyOf[id]; run.ConcurrencyKey != want {
			t.Fatalf("run %s stored concurrency key %q, want %q", id, run.ConcurrencyKey, want)
		}
		a := run.Steps[0].Attempts[0]
		spans[run.ConcurrencyKey] = append(spans[run.ConcurrencyKey], span{id, a.StartedAt, a.StartedAt.Add(a.Duration)})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Fatalf("%d runs (first %v) started while another run of their customer ran", len(overlaps), overlaps[:min(len(overlaps), 3)])
	}
	if len(spans) != customers {
		t.Fatalf("runs of %d concurrency keys, want %d", len(spans), customers)
	}
	for key, ss := range spans {
		slices.SortFunc(ss, func(a, b span) int { return a.from.Compare(b.from) })
		for i := 1; i < len(ss); i++ {
			if ss[i].from.Before(ss[i-1].to) {
				t.Fatalf("customer %s: run %s started at %s, before run %s ended at %s", key, ss[i].run,
					ss[i].from.Format(time.RFC3339Nano), ss[i-1].run, ss[i-1].to.Format(time.RFC3339Nano))
			}
		}
	}
}
