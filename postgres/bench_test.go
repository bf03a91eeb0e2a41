package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/postgres"
	"github.com/flux-go/flux/storagetest"
)

// BenchmarkCheckpoint measures checkpoints: C goroutines, each advancing its
// own leased run of three nodes, as the engine does after each step.
func BenchmarkCheckpoint(b *testing.B) {
	for _, c := range []int{1, 32} {
		b.Run(fmt.Sprintf("C=%d", c), func(b *testing.B) {
			benchCheckpoint(b, c)
		})
	}
}

func benchCheckpoint(b *testing.B, concurrency int, opts ...postgres.Option) {
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
		if err := create(ctx, s, r, time.Minute); err != nil {
			b.Fatal(err)
		}
		r.Version = 1
		runs[i] = r
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for _, r := range runs {
		wg.Go(func() {
			for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
				i := int(n % 3)
				now := time.Now()
				p := driver.Patch{Offset: 9, Delete: 1, Insert: []byte(fmt.Sprint(n))}
				w, err := s.Checkpoint(ctx, driver.CheckpointParams{ID: r.ID, Owner: r.Owner, Version: r.Version, Lease: time.Minute,
					Header: &driver.Header{Status: flux.StatusRunning, UpdatedAt: now, Nodes: 3, Summary: flux.Summary{Nodes: 3, Attempts: int(n)}},
					Nodes: []driver.NodeChange{
						{Index: i, Name: r.Steps[i].Name, Kind: r.Steps[i].Kind, Status: flux.StatusCompleted, StartedAt: now, FinishedAt: now,
							Attempts: []flux.Attempt{{Number: int(n), StartedAt: now, Duration: time.Microsecond}},
							Data:     &driver.NodeData{Index: i, Patch: &p}},
						{Index: (i + 1) % 3, Name: r.Steps[(i+1)%3].Name, Kind: r.Steps[(i+1)%3].Kind, Status: flux.StatusRunning, InFlight: now},
					}})
				if err != nil {
					b.Error(err)
					return
				}
				r.Version = w.Version
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
	if batches, writes := postgres.BatchStats(s); batches > 0 {
		b.ReportMetric(float64(writes)/float64(batches), "writes/commit")
	}
}

// BenchmarkCheckpointWriters compares numbers of group-commit writers at
// concurrency 32.
func BenchmarkCheckpointWriters(b *testing.B) {
	for _, w := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) { benchCheckpoint(b, 32, postgres.Writers(w)) })
	}
}

// BenchmarkSearch1M measures Filter.Search over a million runs, kept in the
// schema flux_search_bench between runs of the benchmark (filling it takes
// a few minutes):
//
//	go test ./postgres -run '^$' -bench Search1M
func BenchmarkSearch1M(b *testing.B) {
	s, err := postgres.Open(context.Background(), dbURL(b), postgres.Schema("flux_search_bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storagetest.PopulateSearch(b, s, 1_000_000)
	if _, err := s.Pool().Exec(context.Background(), "ANALYZE flux_search_bench.runs"); err != nil {
		b.Fatal(err)
	}
	storagetest.BenchSearch(b, s, 1_000_000)
}
