package natsjs_test

import (
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/triggertest"
	"github.com/flux-go/flux/natsjs"
)

// BenchmarkHandOff measures how fast messages already on a stream become
// stored runs: from Run's start until b.N runs are stored, with no engine
// executing them (hand-off alone).
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
			br := newBroker(b, embedded(b), nil)
			br.publish(b, payloads(0, b.N)...)
			w, _ := triggertest.Flow()
			e := triggertest.Engine(b, store, -1)
			tr := newTrigger(b, e, w, nil)
			b.ResetTimer()
			start := time.Now()
			stop := consume(b, br, tr, natsjs.Config{})
			deadline := start.Add(5 * time.Minute)
			for store.Created.Load() < int64(b.N) {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d runs stored after 5 minutes", store.Created.Load(), b.N)
				}
				time.Sleep(time.Millisecond) // polling the count
			}
			elapsed := time.Since(start)
			b.StopTimer()
			stop()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			if store.Existed.Load() != 0 {
				b.Fatalf("%d messages handled again after their runs were stored", store.Existed.Load())
			}
		})
	}
}
