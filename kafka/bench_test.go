package kafka_test

import (
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/triggertest"
	"github.com/flux-go/flux/kafka"
)

// BenchmarkHandOff measures records/s from Kafka (kfake, four partitions)
// to stored runs in hand-off mode (runs stored, not executed: Workers -1),
// beside trigger's BenchmarkStart. The records are produced before the
// timer starts.
func BenchmarkHandOff(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			var s flux.Storage
			if kind == "sqlite" {
				s = triggertest.OpenSQLite(b, triggertest.SQLitePath(b))
			} else {
				s = triggertest.OpenPostgres(b, triggertest.PostgresSchema(b))
			}
			store := &triggertest.Creates{Storage: s}
			c := cluster(b, 4)
			produce(b, c, payloads(0, b.N)...)
			w, _ := triggertest.Flow()
			e := triggertest.Engine(b, store, -1)
			tr := newTrigger(b, e, w, nil)
			b.ResetTimer()
			start := time.Now()
			stop := consume(b, c, tr, kafka.Config{})
			for store.Created.Load() < int64(b.N) {
				time.Sleep(time.Millisecond) // polling for the last run
			}
			elapsed := time.Since(start)
			b.StopTimer()
			stop()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}
