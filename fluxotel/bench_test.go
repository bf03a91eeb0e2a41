package fluxotel_test

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/fluxotel"
)

// benchInst returns an Instrumentation on no-op providers, or on the SDK
// with spans exported synchronously to a no-op exporter and metrics
// aggregated for a reader.
func benchInst(b *testing.B, sdk bool) *fluxotel.Instrumentation {
	b.Helper()
	opts := []fluxotel.Option{fluxotel.WithTracerProvider(tracenoop.NewTracerProvider()), fluxotel.WithMeterProvider(noop.NewMeterProvider())}
	if sdk {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		b.Cleanup(func() {
			_ = tp.Shutdown(context.Background())
			_ = mp.Shutdown(context.Background())
		})
		opts = []fluxotel.Option{fluxotel.WithTracerProvider(tp), fluxotel.WithMeterProvider(mp)}
	}
	inst, err := fluxotel.New(opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = inst.Close() })
	return inst
}

// BenchmarkEmitRun feeds the events of one three-step run per iteration,
// from parallel goroutines as concurrent runs do.
func BenchmarkEmitRun(b *testing.B) {
	for _, sdk := range []bool{false, true} {
		name := "noop"
		if sdk {
			name = "sdk"
		}
		b.Run(name, func(b *testing.B) {
			inst := benchInst(b, sdk)
			var next atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				prefix := "run-" + strconv.FormatInt(next.Add(1), 10) + "-"
				now := time.Now()
				for i := 0; pb.Next(); i++ {
					id := prefix + strconv.Itoa(i)
					inst.Emit(flux.TraceEvent{Type: flux.EventWorkflowStart, Time: now, RunID: id, Workflow: "bench", Index: -1})
					for s, step := range []string{"a", "b", "c"} {
						inst.Emit(flux.TraceEvent{Type: flux.EventStepStart, Time: now, RunID: id, Workflow: "bench", Step: step, Index: s, Attempt: 1})
						inst.Emit(flux.TraceEvent{Type: flux.EventStepComplete, Time: now, RunID: id, Workflow: "bench", Step: step, Index: s, Attempt: 1, Duration: time.Millisecond})
					}
					inst.Emit(flux.TraceEvent{Type: flux.EventWorkflowComplete, Time: now, RunID: id, Workflow: "bench", Index: -1, Status: flux.StatusCompleted})
				}
			})
		})
	}
}

// BenchmarkExecute measures what the Instrumentation adds to a three-step
// run on the in-memory engine.
func BenchmarkExecute(b *testing.B) {
	type C = flux.Ctx[int, int]
	w := flux.New[int, int]("bench").
		Step("a", func(c *C) error { *c.Data++; return nil }).
		Step("b", func(c *C) error { *c.Data++; return nil }).
		Step("c", func(c *C) error { *c.Data++; return nil })
	for _, mode := range []string{"none", "noop", "sdk"} {
		b.Run(mode, func(b *testing.B) {
			cfg := flux.Config{Logger: slog.New(slog.DiscardHandler)}
			if mode != "none" {
				cfg.Trace = benchInst(b, mode == "sdk")
			}
			e, err := flux.NewEngine(cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = e.Close() })
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := flux.Execute(context.Background(), e, w, 1); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
