package flux_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
)

// 1,000 runs for 10 customers, one at a time per customer: no two runs of
// one customer ever overlap — checked as they run and from the recorded
// attempts — and all complete.
func TestConcurrencyKeyOneAtATime(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	inFlight := map[string]int{}
	overlaps := 0
	type job struct{ Customer string }
	w := flux.New[job, struct{}]("per-customer").
		ConcurrencyKey(1, func(j job) string { return j.Customer }).
		Step("work", func(c *flux.Ctx[job, struct{}]) error {
			mu.Lock()
			inFlight[c.Input.Customer]++
			if inFlight[c.Input.Customer] > 1 {
				overlaps++
			}
			mu.Unlock()
			for range 50 { // gives another run of the customer a chance to overlap
				runtime.Gosched()
			}
			mu.Lock()
			inFlight[c.Input.Customer]--
			mu.Unlock()
			return nil
		})
	e := quietEngine(t, flux.Config{Workers: 32})
	ids := make([]string, 0, 1000)
	for i := range 1000 {
		id, err := flux.Start(ctx, e, w, job{Customer: fmt.Sprintf("c%d", i%10)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	type span struct{ from, to time.Time }
	spans := map[string][]span{}
	for _, id := range ids {
		res, err := flux.Wait(ctx, e, w, id)
		if err != nil {
			t.Fatal(err)
		}
		run, err := e.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		a := res.Steps[0].Attempts[0]
		spans[run.ConcurrencyKey] = append(spans[run.ConcurrencyKey], span{a.StartedAt, a.StartedAt.Add(a.Duration)})
	}
	if overlaps != 0 {
		t.Fatalf("%d times a second run of a customer started while one ran", overlaps)
	}
	if len(spans) != 10 {
		t.Fatalf("runs of %d concurrency keys, want 10", len(spans))
	}
	for key, ss := range spans {
		slices.SortFunc(ss, func(a, b span) int { return a.from.Compare(b.from) })
		for i := 1; i < len(ss); i++ {
			if ss[i].from.Before(ss[i-1].to) {
				t.Fatalf("customer %s: an attempt started at %s before the previous one ended at %s", key,
					ss[i].from.Format(time.RFC3339Nano), ss[i-1].to.Format(time.RFC3339Nano))
			}
		}
	}
}
