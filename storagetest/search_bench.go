package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// searchBase is when the first run of the search population was created;
// run i was created i milliseconds later.
var searchBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// searchRun returns run i of the search population: IDs shaped like the
// engine's (a UUIDv7, whose first 12 hex digits are the creation time in
// milliseconds), 20 workflows, one run in ten failed with a card decline
// and one in a thousand with a rarer error.
func searchRun(i int) *flux.Run {
	created := searchBase.Add(time.Duration(i) * time.Millisecond)
	ms := uint64(created.UnixMilli())
	id := fmt.Sprintf("%08x-%04x-7%03x-8%03x-%012x", ms>>16, ms&0xffff, i%4096, (i/4096)%4096, uint64(i)*2654435761%(1<<48))
	r := smallRun(id, fmt.Sprintf("wf-%02d", i%20), flux.StatusCompleted, created)
	switch {
	case i%1000 == 7:
		r.Status, r.Error = flux.StatusFailed, fmt.Sprintf("step post: ledger mismatch for account %d", i)
	case i%10 == 3:
		r.Status, r.Error = flux.StatusFailed, fmt.Sprintf("step charge: card declined, code %d", i%1000)
	}
	return r
}

// PopulateSearch makes sure store holds the n runs of the search
// population (see [BenchSearch]), creating them, 64 at a time, unless the
// last of them is there already: a store kept between benchmark runs is
// filled once.
func PopulateSearch(tb testing.TB, store flux.Storage, n int) {
	tb.Helper()
	ctx := context.Background()
	if _, err := store.Get(ctx, searchRun(n-1).ID); err == nil {
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var failed error
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				_, err := store.Create(ctx, driver.CreateParams{Run: searchRun(i)})
				if err != nil && !errors.Is(err, flux.ErrRunExists) {
					once.Do(func() { failed = err })
					return
				}
				if i%100000 == 0 && i > 0 {
					tb.Logf("search population: %d runs in %s", i, time.Since(start).Round(time.Second))
				}
			}
		})
	}
	wg.Wait()
	if failed != nil {
		tb.Fatalf("creating the search population: %v", failed)
	}
}

// BenchSearch measures List with a Filter.Search over the n runs of the
// search population in store (see [PopulateSearch]): the first page of 50
// newest-first matches of each kind of search, the matches checked.
func BenchSearch(b *testing.B, store flux.Storage, n int) {
	old := searchRun(n / 8) // far from the newest 10,000
	for _, c := range []struct {
		name   string
		search string
		want   func(*flux.Run) bool
	}{
		{"NoSearch", "", func(*flux.Run) bool { return true }},
		{"WholeID", old.ID, func(r *flux.Run) bool { return r.ID == old.ID }},
		{"IDPrefix8", old.ID[:8], func(r *flux.Run) bool { return r.ID[:8] == old.ID[:8] }},
		{"Workflow", "wf-07", func(r *flux.Run) bool { return r.Workflow == "wf-07" }},
		{"ErrorRareWord", "ledger", func(r *flux.Run) bool { return r.Status == flux.StatusFailed }},
		{"ErrorCommonWord", "declined", func(r *flux.Run) bool { return r.Status == flux.StatusFailed }},
		{"ErrorTwoWords", "declined 12", func(r *flux.Run) bool { return r.Status == flux.StatusFailed }},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			var got int
			for b.Loop() {
				p, err := store.List(ctx, flux.Filter{Search: c.search, Limit: 50})
				if err != nil {
					b.Fatal(err)
				}
				got = len(p.Runs)
				for _, r := range p.Runs {
					if !c.want(r) {
						b.Fatalf("search %q found run %s (%s, %s, %q), which does not match", c.search, r.ID, r.Workflow, r.Status, r.Error)
					}
				}
			}
			if got == 0 {
				b.Fatalf("search %q found nothing", c.search)
			}
			b.ReportMetric(float64(got), "runs/page")
		})
	}
}
