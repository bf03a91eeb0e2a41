package jsstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/jsstore"
)

type w1In struct {
	OrderID string `json:"orderId"`
}

type w1Data struct {
	Validated bool   `json:"validated"`
	Reserved  bool   `json:"reserved"`
	Note      string `json:"note"`
}

// w1 is workload W1: two steps and one commit, trivial work, small data.
var w1 = flux.New[w1In, w1Data]("w1").
	Step("validate", func(c *flux.Ctx[w1In, w1Data]) error { c.Data.Validated = true; return nil }).
	Step("reserve", func(c *flux.Ctx[w1In, w1Data]) error { c.Data.Reserved = true; return nil }).
	Commit("notify", func(c *flux.Ctx[w1In, w1Data]) error { c.Data.Note = "sent"; return nil })

// BenchmarkW1 runs W1 at concurrency 32 through one engine on an embedded
// server (replicas 1) and an embedded three-node cluster (replicas 3),
// with one partition and more, and reports steps/s.
func BenchmarkW1(b *testing.B) {
	single := embedded(b)
	three := cluster(b)
	for _, bc := range []struct {
		name       string
		replicas   int
		partitions int
	}{{"R1/P1", 1, 1}, {"R1/P4", 1, 4}, {"R3/P1", 3, 1}, {"R3/P3", 3, 3}} {
		b.Run(bc.name+"/C=32", func(b *testing.B) {
			u := single
			if bc.replicas > 1 {
				u = three[0]
			}
			s, err := jsstore.Open(context.Background(), connect(b, u), jsstore.Prefix(fmt.Sprintf("bench%d", prefixes.Add(1))),
				jsstore.Replicas(bc.replicas), jsstore.Partitions(bc.partitions))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			e, err := flux.NewEngine(flux.Config{Storage: s, Logger: slog.New(slog.DiscardHandler), PruneInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			ctx := context.Background()
			const c = 32
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range c {
				wg.Go(func() {
					for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
						if _, err := flux.Execute(ctx, e, w1, w1In{OrderID: "o"}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			b.ReportMetric(float64(3*b.N)/el.Seconds(), "steps/s")
			b.ReportMetric(float64(el.Microseconds())/1000*c/float64(b.N), "ms/run")
		})
	}
}
