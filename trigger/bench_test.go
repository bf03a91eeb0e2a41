package trigger_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/triggertest"
)

// BenchmarkStart is the baseline of the brokers' hand-off benchmarks:
// flux.Start alone, from 16 goroutines as a binding's default Concurrency,
// runs stored and not executed (Workers -1). It reports starts/s.
func BenchmarkStart(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			var store flux.Storage
			if kind == "sqlite" {
				store = triggertest.OpenSQLite(b, triggertest.SQLitePath(b))
			} else {
				store = triggertest.OpenPostgres(b, triggertest.PostgresSchema(b))
			}
			e := triggertest.Engine(b, store, -1)
			w, _ := triggertest.Flow()
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range 16 {
				wg.Go(func() {
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						o := triggertest.Order{OrderID: "o-" + strconv.Itoa(i), Amount: float64(i)}
						if _, err := flux.Start(ctx, e, w, o, flux.RunID("bench/"+strconv.Itoa(i))); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "starts/s")
		})
	}
}
