package amqp_test

import (
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/amqp"
	"github.com/flux-go/flux/internal/triggertest"
)

// BenchmarkHandOff measures messages/s from a RabbitMQ queue to stored
// runs in hand-off mode (runs stored, not executed: Workers -1), beside
// trigger's BenchmarkStart, with the default Concurrency (16). The
// messages are published, persistent and confirmed, before the timer
// starts; the time runs from Run's start to the last run stored.
func BenchmarkHandOff(b *testing.B) {
	amqpURL(b)
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			var s flux.Storage
			if kind == "sqlite" {
				s = triggertest.OpenSQLite(b, triggertest.SQLitePath(b))
			} else {
				s = triggertest.OpenPostgres(b, triggertest.PostgresSchema(b))
			}
			store := &triggertest.Creates{Storage: s}
			queue, _ := declare(b)
			publish(b, queue, orders(0, b.N)...)
			w, _ := triggertest.Flow()
			e := triggertest.Engine(b, store, -1)
			tr := newTrigger(b, e, w, nil)
			b.ResetTimer()
			start := time.Now()
			stop := consume(b, tr, amqp.Config{Queue: queue})
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
