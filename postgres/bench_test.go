package postgres_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/postgres"
)

// BenchmarkUpdate measures checkpoints: C goroutines, each advancing its own
// leased run of three nodes with Update, as the engine does after each step.
func BenchmarkUpdate(b *testing.B) {
	for _, c := range []int{1, 32} {
		b.Run(fmt.Sprintf("C=%d", c), func(b *testing.B) {
			benchUpdate(b, c)
		})
	}
}

func benchUpdate(b *testing.B, concurrency int, opts ...postgres.Option) {
	s := openStore(b, opts...)
	ctx := b.Context()
	runs := make([]*flux.Run, concurrency)
	for i := range runs {
		r := newRun(fmt.Sprintf("bench-%d", i), "w1", flux.StatusRunning, time.Now())
		r.Owner = "bench"
		r.Steps = []flux.StepState{
			{Name: "one", Kind: flux.KindStep, Status: flux.StatusPending},
			{Name: "two", Kind: flux.KindStep, Status: flux.StatusPending},
			{Name: "commit", Kind: flux.KindCommit, Status: flux.StatusPending},
		}
		if err := s.Create(ctx, r, time.Minute); err != nil {
			b.Fatal(err)
		}
		runs[i] = r
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for _, r := range runs {
		wg.Go(func() {
			for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
				st := &r.Steps[n%3]
				st.Status = flux.StatusCompleted
				st.Attempts = []flux.Attempt{{Number: 1, StartedAt: time.Now(), Duration: time.Microsecond}}
				r.Data = json.RawMessage(fmt.Sprintf(`{"total":%d}`, n))
				r.UpdatedAt = time.Now()
				if err := s.Update(ctx, r, 0); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
	if batches, writes := postgres.BatchStats(s); batches > 0 {
		b.ReportMetric(float64(writes)/float64(batches), "writes/commit")
	}
}

// BenchmarkUpdateWriters compares numbers of group-commit writers at
// concurrency 32.
func BenchmarkUpdateWriters(b *testing.B) {
	for _, w := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) { benchUpdate(b, 32, postgres.Writers(w)) })
	}
}
