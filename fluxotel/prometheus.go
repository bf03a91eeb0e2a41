package fluxotel

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Prometheus is an [Instrumentation] whose metrics are served in the
// Prometheus exposition format. It is a [flux.TraceSink] (and
// [flux.CorruptReporter]) to put in flux.Config.Trace, alone or in a [Tee],
// and an [http.Handler] to mount at /metrics:
//
//	prom, err := fluxotel.NewPrometheus()
//	engine, err := flux.NewEngine(flux.Config{Trace: prom})
//	err = prom.ObservePending(engine.Storage())
//	http.Handle("/metrics", prom)
//	defer prom.Close() // after engine.Close
//
// The metrics are those of the package documentation, named as the
// OpenTelemetry Prometheus exporter names them: flux.runs.started becomes
// flux_runs_started_total, flux.step.duration flux_step_duration_seconds,
// and the attributes become the labels flux_workflow_name, flux_step_name
// and flux_step_outcome. They live in a registry of its own, not
// prometheus.DefaultRegisterer; [Prometheus.Registry] returns it, to add
// collectors such as the Go runtime's.
type Prometheus struct {
	*Instrumentation
	registry *prometheus.Registry
	provider *sdkmetric.MeterProvider
	handler  http.Handler
}

// NewPrometheus returns a Prometheus configured by opts, which are those of
// [New] except [WithMeterProvider]: its meter provider is its own, with the
// Prometheus exporter as its only reader. Spans still go to the tracer
// provider ([WithTracerProvider], by default otel.GetTracerProvider()).
//
// To export the same instruments by OTLP as well, build a meter provider
// with both readers (go.opentelemetry.io/otel/exporters/prometheus and an
// OTLP one), pass it to [New], and serve the Prometheus registry with
// promhttp.
func NewPrometheus(opts ...Option) (*Prometheus, error) {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.mp != nil {
		return nil, errors.New("fluxotel: NewPrometheus makes its own meter provider; use New with WithMeterProvider to bring one")
	}
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("fluxotel: creating the Prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	in, err := New(append(opts, WithMeterProvider(mp))...)
	if err != nil {
		_ = mp.Shutdown(context.Background())
		return nil, err
	}
	return &Prometheus{
		Instrumentation: in,
		registry:        reg,
		provider:        mp,
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError,
		}),
	}, nil
}

// ServeHTTP serves the current metrics in the Prometheus text format (or
// another format the scraper asks for). A store that
// [Instrumentation.ObservePending] cannot list leaves flux_runs_pending out;
// the other metrics are still served.
func (p *Prometheus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.handler.ServeHTTP(w, r)
}

// Registry returns the Prometheus registry the metrics are in.
func (p *Prometheus) Registry() *prometheus.Registry { return p.registry }

// Close closes the Instrumentation and shuts its meter provider down;
// after it the handler serves no Flux metrics. Close the engines that feed
// it first.
func (p *Prometheus) Close() error {
	return errors.Join(p.Instrumentation.Close(), p.provider.Shutdown(context.Background()))
}
