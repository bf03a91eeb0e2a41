package fluxotel_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/fluxotel"
)

// An Instrumentation goes in Config.Trace. In a service the providers
// export to a collector; this example keeps spans and metrics in memory and
// prints them.
func Example() {
	ctx := context.Background()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer tp.Shutdown(ctx)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	inst, err := fluxotel.New(fluxotel.WithTracerProvider(tp), fluxotel.WithMeterProvider(mp))
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close() // runs after engine.Close
	engine, err := flux.NewEngine(flux.Config{Trace: inst, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()

	type C = flux.Ctx[string, int]
	w := flux.New[string, int]("greet").
		Step("flaky", func(c *C) error {
			if c.Attempt() == 1 {
				return errors.New("first attempts fail")
			}
			return nil
		}, flux.NoBackoff()).
		Step("shout", func(c *C) error { return nil }, flux.When(func(c *C) bool { return c.Input == "loud" })).
		Commit("send", func(c *C) error { return nil })
	if _, err := flux.Execute(ctx, engine, w, "quiet"); err != nil {
		log.Fatal(err)
	}

	for _, s := range spans.GetSpans() {
		indent := ""
		if s.Parent.IsValid() {
			indent = "  "
		}
		fmt.Printf("%s%s %s\n", indent, s.Name, s.Status.Code)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
			fmt.Println(m.Name, sum.DataPoints[0].Value)
		}
	}
	// Output:
	//   flux.step flaky Error
	//   flux.step flaky Unset
	//   flux.step shout Unset
	//   flux.step send Unset
	// flux.run greet Unset
	// flux.runs.started 1
	// flux.runs.completed 1
	// flux.step.retries 1
}

// eventCounter is a trace sink that counts events by type.
type eventCounter map[flux.EventType]int

func (c eventCounter) Emit(ev flux.TraceEvent) { c[ev.Type]++ }

// Tee feeds several sinks, such as an Instrumentation and the NDJSON trace
// file, from one engine.
func ExampleTee() {
	inst, err := fluxotel.New() // the global providers
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()
	counts := eventCounter{}
	engine, err := flux.NewEngine(flux.Config{Trace: fluxotel.Tee(inst, counts)})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()

	w := flux.New[int, int]("double").
		Step("double", func(c *flux.Ctx[int, int]) error { *c.Data = 2 * c.Input; return nil })
	if _, err := flux.Execute(context.Background(), engine, w, 21); err != nil {
		log.Fatal(err)
	}
	fmt.Println(counts[flux.EventStepStart], counts[flux.EventStepComplete], counts[flux.EventWorkflowComplete])
	// Output: 1 1 1
}
