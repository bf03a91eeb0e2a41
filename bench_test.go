package flux_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/flux-go/flux"
)

type benchIn struct {
	OrderID string `json:"orderId"`
}

type benchData struct {
	Validated bool   `json:"validated"`
	Reserved  bool   `json:"reserved"`
	Note      string `json:"note"`
}

// benchFlow is workload W1: two steps and one commit, trivial work, small data.
var benchFlow = flux.New[benchIn, benchData]("bench").
	Step("validate", func(c *flux.Ctx[benchIn, benchData]) error { c.Data.Validated = true; return nil }).
	Step("reserve", func(c *flux.Ctx[benchIn, benchData]) error { c.Data.Reserved = true; return nil }).
	Commit("notify", func(c *flux.Ctx[benchIn, benchData]) error { c.Data.Note = "sent"; return nil })

// BenchmarkExecute runs the 3-step workflow on memory storage and reports
// ns/step and allocs/step.
func BenchmarkExecute(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	report := func(b *testing.B, allocs uint64) {
		steps := float64(b.N * 3)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/steps, "ns/step")
		b.ReportMetric(steps/b.Elapsed().Seconds(), "steps/s")
		b.ReportMetric(float64(allocs)/steps, "allocs/step")
	}
	b.Run("sequential", func(b *testing.B) {
		e, _ := flux.NewEngine(flux.Config{Logger: quiet})
		defer e.Close()
		ctx := context.Background()
		b.ReportAllocs()
		ms0 := memStats()
		for b.Loop() {
			if _, err := flux.Execute(ctx, e, benchFlow, benchIn{OrderID: "o_1"}); err != nil {
				b.Fatal(err)
			}
		}
		report(b, memStats()-ms0)
	})
	b.Run("parallel", func(b *testing.B) {
		e, _ := flux.NewEngine(flux.Config{Logger: quiet})
		defer e.Close()
		ctx := context.Background()
		b.ReportAllocs()
		ms0 := memStats()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := flux.Execute(ctx, e, benchFlow, benchIn{OrderID: "o_1"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b, memStats()-ms0)
	})
}
