package fluxotel_test

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/fluxotel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bundle is what a test needs: an Instrumentation exporting to memory.
type bundle struct {
	inst   *fluxotel.Instrumentation
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
}

func setup(t *testing.T, opts ...fluxotel.Option) *bundle {
	t.Helper()
	b := &bundle{spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(b.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(b.reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	inst, err := fluxotel.New(append([]fluxotel.Option{fluxotel.WithTracerProvider(tp), fluxotel.WithMeterProvider(mp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Close() })
	b.inst = inst
	return b
}

// engine returns an engine tracing into sink, closed at the end of the test.
func engine(t *testing.T, cfg flux.Config) *flux.Engine {
	t.Helper()
	cfg.DefaultStepOptions = append([]flux.StepOption{flux.NoBackoff()}, cfg.DefaultStepOptions...)
	e, err := flux.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func attr(kvs []attribute.KeyValue, k attribute.Key) (attribute.Value, bool) {
	for _, kv := range kvs {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func attrString(s tracetest.SpanStub, k attribute.Key) string {
	v, _ := attr(s.Attributes, k)
	return v.AsString()
}

func attrInt(s tracetest.SpanStub, k attribute.Key) int {
	v, _ := attr(s.Attributes, k)
	return int(v.AsInt64())
}

// runSpan returns the one run span of run id.
func runSpan(t *testing.T, spans tracetest.SpanStubs, id string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Parent.IsValid() {
			continue
		}
		if attrString(s, fluxotel.AttrRunID) == id {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("run %s: %d run spans, want 1: %v", id, len(found), names(found))
	}
	return found[0]
}

// children returns the spans whose parent is s.
func children(spans tracetest.SpanStubs, s tracetest.SpanStub) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, c := range spans {
		if c.Parent.SpanID() == s.SpanContext.SpanID() && c.Parent.TraceID() == s.SpanContext.TraceID() {
			out = append(out, c)
		}
	}
	return out
}

func names(spans []tracetest.SpanStub) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func hasException(s tracetest.SpanStub) bool {
	for _, e := range s.Events {
		if e.Name == "exception" {
			return true
		}
	}
	return false
}

// metrics collects the current metric values.
func (b *bundle) metrics(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := b.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

func find(rm metricdata.ResourceMetrics, name string) (metricdata.Metrics, bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// counter returns the value of counter name for the data point whose
// attributes are exactly kvs; 0 if there is none.
func counter(t *testing.T, rm metricdata.ResourceMetrics, name string, kvs ...attribute.KeyValue) int64 {
	t.Helper()
	m, ok := find(rm, name)
	if !ok {
		return 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is a %T, want a Sum[int64]", name, m.Data)
	}
	want := attribute.NewSet(kvs...)
	for _, dp := range sum.DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Value
		}
	}
	return 0
}

// histogram returns the data points of histogram name by attribute set.
func histogram(t *testing.T, rm metricdata.ResourceMetrics, name string) []metricdata.HistogramDataPoint[float64] {
	t.Helper()
	m, ok := find(rm, name)
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	h, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s is a %T, want a Histogram[float64]", name, m.Data)
	}
	return h.DataPoints
}

// recorder is a trace sink that keeps the events it receives.
type recorder struct {
	mu     sync.Mutex
	events []flux.TraceEvent
}

func (r *recorder) Emit(ev flux.TraceEvent) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) all() []flux.TraceEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]flux.TraceEvent(nil), r.events...)
}
