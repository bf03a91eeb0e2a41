package fluxotel_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/fluxotel"
)

// A Prometheus goes in Config.Trace and is mounted at /metrics. This
// example scrapes it with httptest and prints a few values.
func ExampleNewPrometheus() {
	prom, err := fluxotel.NewPrometheus()
	if err != nil {
		log.Fatal(err)
	}
	defer prom.Close() // runs after engine.Close
	engine, err := flux.NewEngine(flux.Config{Trace: prom, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()
	if err := prom.ObservePending(engine.Storage()); err != nil {
		log.Fatal(err)
	}
	// In a service: http.Handle("/metrics", prom)

	type C = flux.Ctx[string, int]
	w := flux.New[string, int]("greet").
		Step("flaky", func(c *C) error {
			if c.Attempt() == 1 {
				return errors.New("first attempts fail")
			}
			return nil
		}, flux.NoBackoff()).
		Commit("send", func(c *C) error { return nil })
	for _, name := range []string{"ada", "grace"} {
		if _, err := flux.Execute(context.Background(), engine, w, name); err != nil {
			log.Fatal(err)
		}
	}

	rec := httptest.NewRecorder()
	prom.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range []string{"flux_runs_started_total", "flux_runs_completed_total", "flux_step_retries_total"} {
		fmt.Println(name, fams[name].GetMetric()[0].GetCounter().GetValue())
	}
	for _, m := range fams["flux_step_duration_seconds"].GetMetric() {
		var step, outcome string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "flux_step_name":
				step = l.GetValue()
			case "flux_step_outcome":
				outcome = l.GetValue()
			}
		}
		fmt.Printf("flux_step_duration_seconds_count{step=%q,outcome=%q} %d\n", step, outcome, m.GetHistogram().GetSampleCount())
	}
	// Output:
	// flux_runs_started_total 2
	// flux_runs_completed_total 2
	// flux_step_retries_total 2
	// flux_step_duration_seconds_count{step="flaky",outcome="completed"} 2
	// flux_step_duration_seconds_count{step="flaky",outcome="retry"} 2
	// flux_step_duration_seconds_count{step="send",outcome="completed"} 2
}
