package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/sqlite"
	"github.com/flux-go/flux/storagetest"
)

// benchRun is a run as the engine writes it in W1: three nodes, small data.
func benchRun(id string) *flux.Run {
	now := time.Now()
	return &flux.Run{
		ID: id, Workflow: "w1", Fingerprint: "sha256:0123456789abcdef", Status: flux.StatusRunning,
		Input: json.RawMessage(`{"orderId":"o-12345","amount":42}`),
		Data:  json.RawMessage(`{"reserved":true,"charged":false,"receipt":""}`),
		Steps: []flux.StepState{
			{Name: "reserve", Kind: flux.KindStep, Status: flux.StatusPending},
			{Name: "price", Kind: flux.KindStep, Status: flux.StatusPending},
			{Name: "charge", Kind: flux.KindCommit, Status: flux.StatusPending},
		},
		CreatedAt: now, UpdatedAt: now, Owner: "engine-1",
	}
}

// BenchmarkCheckpoint measures checkpoint throughput: C goroutines, each
// advancing its own run, as C concurrent runs do. Group commit puts the
// concurrent checkpoints in one transaction and one fsync.
func BenchmarkCheckpoint(b *testing.B) {
	for _, mode := range []string{"FULL", "NORMAL"} {
		for _, c := range []int{1, 32} {
			b.Run(fmt.Sprintf("sync=%s/C=%d", mode, c), func(b *testing.B) {
				s, _ := open(b, sqlite.Synchronous(mode))
				benchUpdates(b, s, c)
			})
		}
	}
}

func benchUpdates(b *testing.B, s flux.Storage, c int) {
	ctx := context.Background()
	runs := make([]*flux.Run, c)
	for i := range runs {
		runs[i] = benchRun(fmt.Sprintf("run-%d", i))
		w, err := s.Create(ctx, driver.CreateParams{Run: runs[i], Lease: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		runs[i].Version = w.Version
	}
	stats, _ := s.(interface{ BatchStats() (int64, int64) })
	var batches0, writes0 int64
	if stats != nil {
		batches0, writes0 = stats.BatchStats()
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for _, r := range runs {
		wg.Go(func() {
			for i := 0; n.Add(1) <= int64(b.N); i++ {
				// A step's checkpoint: the node completes with an attempt
				// and a small patch, the next one starts.
				now := time.Now()
				p := driver.Patch{Offset: 10, Delete: 4, Insert: []byte("true")}
				w, err := s.Checkpoint(ctx, driver.CheckpointParams{ID: r.ID, Owner: r.Owner, Version: r.Version, Lease: time.Minute,
					Header: &driver.Header{Status: flux.StatusRunning, Fingerprint: r.Fingerprint, UpdatedAt: now, Nodes: 3,
						Summary: flux.Summary{Nodes: 3, Done: 1, Attempts: i + 1}},
					Nodes: []driver.NodeChange{
						{Index: i % 3, Name: r.Steps[i%3].Name, Kind: r.Steps[i%3].Kind, Status: flux.StatusCompleted, StartedAt: now, FinishedAt: now,
							Attempts: []flux.Attempt{{Number: i + 1, StartedAt: now, Duration: time.Microsecond}},
							Data:     &driver.NodeData{Index: i % 3, Patch: &p}},
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
	if stats != nil {
		batches, writes := stats.BatchStats()
		b.ReportMetric(float64(writes-writes0)/float64(batches-batches0), "writes/batch")
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time the process used so far: on a busy machine
// cpu-ns/op shows the cost of a checkpoint when updates/s cannot.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGroupCommit is BenchmarkCheckpoint at more concurrency levels, with
// the default synchronous=FULL: how throughput grows with the batch.
func BenchmarkGroupCommit(b *testing.B) {
	for _, c := range []int{1, 4, 16, 32, 64} {
		b.Run(fmt.Sprintf("C=%d", c), func(b *testing.B) {
			s, _ := open(b)
			benchUpdates(b, s, c)
		})
	}
}

// BenchmarkSearch1M measures Filter.Search over a million runs, kept in
// flux-search-1m.db of the temporary directory between runs of the
// benchmark (filling it takes a minute or two):
//
//	go test ./sqlite -run '^$' -bench Search1M
func BenchmarkSearch1M(b *testing.B) {
	path := filepath.Join(os.TempDir(), "flux-search-1m.db")
	s, err := sqlite.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storagetest.PopulateSearch(b, s, 1_000_000)
	storagetest.BenchSearch(b, s, 1_000_000)
}
