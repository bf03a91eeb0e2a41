package natsjs_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/triggertest"
	"github.com/flux-go/flux/natsjs"
)

// creates counts the runs a store created and the creates refused because
// the run was stored already.
type creates struct {
	flux.Storage
	created, existed atomic.Int64
}

func (c *creates) Create(ctx context.Context, p driver.CreateParams) (driver.Written, error) {
	w, err := c.Storage.Create(ctx, p)
	switch {
	case err == nil:
		c.created.Add(1)
	case errors.Is(err, flux.ErrRunExists):
		c.existed.Add(1)
	}
	return w, err
}

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
			store := &creates{Storage: s}
			br := newBroker(b, embedded(b), nil)
			br.publish(b, payloads(0, b.N)...)
			w, _ := triggertest.Flow()
			e := triggertest.Engine(b, store, -1)
			tr := newTrigger(b, e, w, nil)
			b.ResetTimer()
			start := time.Now()
			stop := consume(b, br, tr, natsjs.Config{})
			deadline := start.Add(5 * time.Minute)
			for store.created.Load() < int64(b.N) {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d runs stored after 5 minutes", store.created.Load(), b.N)
				}
				time.Sleep(time.Millisecond) // polling the count
			}
			elapsed := time.Since(start)
			b.StopTimer()
			stop()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			if store.existed.Load() != 0 {
				b.Fatalf("%d messages handled again after their runs were stored", store.existed.Load())
			}
		})
	}
}
