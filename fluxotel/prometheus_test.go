package fluxotel_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/fluxotel"
)

// Prometheus label names of the attributes.
const (
	lWorkflow = "flux_workflow_name"
	lStep     = "flux_step_name"
	lOutcome  = "flux_step_outcome"
)

// stealer is a memory store whose lease renewals report the runs with IDs
// starting with "stolen-" as taken by another owner.
type stealer struct{ *flux.MemoryStorage }

func (s stealer) Extend(ctx context.Context, p driver.ExtendParams) ([]string, error) {
	lost, err := s.MemoryStorage.Extend(ctx, p)
	for _, id := range p.IDs {
		if strings.HasPrefix(id, "stolen-") && !slices.Contains(lost, id) {
			lost = append(lost, id)
		}
	}
	return lost, err
}

// promRuns is what promSetup ran.
type promRuns struct {
	prom    *fluxotel.Prometheus
	ok, bad *flux.Result[orderData]
	queued  *flux.Engine // the engine that stored the pending runs
	pending []string     // their IDs
}

// promSetup runs through a Prometheus: an order that completes and one
// that fails (engine "main"), a run that is cancelled, a run whose lease is
// lost, and three runs left pending (engine "side", which executes nothing
// in the background, so the pending runs stay pending and the run that
// lost its lease is not taken up again).
func promSetup(t *testing.T) *promRuns {
	t.Helper()
	prom, err := fluxotel.NewPrometheus()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := prom.Close(); err != nil {
			t.Error(err)
		}
	})
	store := stealer{flux.NewMemoryStorage()}
	main := engine(t, flux.Config{Storage: store, Trace: prom, Logger: quietLogger()})
	side := engine(t, flux.Config{Storage: store, Trace: prom, Logger: quietLogger(), Workers: -1, LeaseDuration: 30 * time.Millisecond})
	if err := prom.ObservePending(store); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := &promRuns{prom: prom, queued: side}

	w := orderFlow()
	if r.ok, err = flux.Execute(ctx, main, w, orderIn{Gift: true}); err != nil {
		t.Fatal(err)
	}
	if r.bad, err = flux.Execute(ctx, main, w, orderIn{Decline: true}); err == nil {
		t.Fatal("Execute(Decline) succeeded")
	}

	started := make(chan struct{})
	block := flux.New[int, int]("blocks").Step("wait", func(c *flux.Ctx[int, int]) error {
		close(started)
		<-c.Done()
		return c.Err()
	})
	done := make(chan error, 1)
	go func() {
		_, err := flux.Execute(ctx, main, block, 0, flux.RunID("cancel-me"))
		done <- err
	}()
	<-started
	if err := main.Cancel(ctx, "cancel-me"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, flux.ErrCancelled) {
		t.Fatalf("cancelled run: %v, want ErrCancelled", err)
	}

	lease := flux.New[int, int]("leased").Step("hold", func(c *flux.Ctx[int, int]) error {
		<-c.Done() // until the heartbeat finds the lease gone
		return c.Err()
	})
	if _, err := flux.Execute(ctx, side, lease, 0, flux.RunID("stolen-1")); !errors.Is(err, flux.ErrLeaseLost) {
		t.Fatalf("run whose lease was taken: %v, want ErrLeaseLost", err)
	}

	queued := flux.New[int, int]("queued").Step("later", func(c *flux.Ctx[int, int]) error { return nil })
	for i := range 3 {
		id, err := flux.Start(ctx, side, queued, i)
		if err != nil {
			t.Fatal(err)
		}
		r.pending = append(r.pending, id)
	}
	return r
}

// scrape GETs the handler and parses the text format.
func scrape(t *testing.T, p *fluxotel.Prometheus) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want the text format", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parsing the scrape: %v\n%s", err, rec.Body)
	}
	return fams
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string)
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// values returns the samples of counter or gauge family name, by the label
// values named by keys joined with "/". It fails if a sample has other
// labels than keys.
func values(t *testing.T, fams map[string]*dto.MetricFamily, name string, typ dto.MetricType, keys ...string) map[string]float64 {
	t.Helper()
	mf := fams[name]
	if mf == nil {
		t.Fatalf("no metric family %s", name)
	}
	if mf.GetType() != typ {
		t.Fatalf("%s is a %v, want a %v", name, mf.GetType(), typ)
	}
	out := make(map[string]float64)
	for _, m := range mf.GetMetric() {
		out[key(t, name, m, keys)] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return out
}

func key(t *testing.T, name string, m *dto.Metric, keys []string) string {
	t.Helper()
	ls := labels(m)
	if got := slices.Sorted(maps.Keys(ls)); !slices.Equal(got, slices.Sorted(slices.Values(keys))) {
		t.Fatalf("%s has labels %v, want %v", name, got, keys)
	}
	var parts []string
	for _, k := range keys {
		parts = append(parts, ls[k])
	}
	return strings.Join(parts, "/")
}

func equal(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s\n got %v\nwant %v", what, got, want)
	}
}

func TestPrometheusServesRunAndStepMetrics(t *testing.T) {
	t.Parallel()
	r := promSetup(t)
	fams := scrape(t, r.prom)

	counter := dto.MetricType_COUNTER
	equal(t, "flux_runs_started_total", values(t, fams, "flux_runs_started_total", counter, lWorkflow),
		map[string]float64{"orders": 2, "blocks": 1, "leased": 1})
	equal(t, "flux_runs_completed_total", values(t, fams, "flux_runs_completed_total", counter, lWorkflow),
		map[string]float64{"orders": 1})
	equal(t, "flux_runs_failed_total", values(t, fams, "flux_runs_failed_total", counter, lWorkflow),
		map[string]float64{"orders": 1})
	equal(t, "flux_runs_cancelled_total", values(t, fams, "flux_runs_cancelled_total", counter, lWorkflow),
		map[string]float64{"blocks": 1})
	equal(t, "flux_runs_lease_lost_total", values(t, fams, "flux_runs_lease_lost_total", counter, lWorkflow),
		map[string]float64{"leased": 1})
	equal(t, "flux_runs_pending", values(t, fams, "flux_runs_pending", dto.MetricType_GAUGE, lWorkflow),
		map[string]float64{"queued": 3})
	if fams["flux_runs_corrupt_total"] != nil {
		t.Error("flux_runs_corrupt_total is served, but no run was corrupt")
	}

	// What the histogram and retries must hold, from the runs' records.
	wantHist := map[string]float64{
		// The cancelled attempt and the one cut off by the lost lease.
		"blocks/wait/" + fluxotel.OutcomeInterrupted: 1,
	}
	wantRetries := map[string]float64{}
	for _, res := range []*flux.Result[orderData]{r.ok, r.bad} {
		for step, byOutcome := range outcomes(res) {
			for outcome, n := range byOutcome {
				wantHist["orders/"+step+"/"+outcome] += float64(n)
				if outcome == fluxotel.OutcomeRetry {
					wantRetries["orders/"+step] += float64(n)
				}
			}
		}
	}
	if wantRetries["orders/flaky"] != 4 || wantHist["orders/charge/error"] != 1 || wantHist["orders/gift/completed"] != 1 {
		t.Fatalf("the orders did not retry, skip and fail as the test needs: %v", wantHist)
	}
	equal(t, "flux_step_retries_total", values(t, fams, "flux_step_retries_total", counter, lWorkflow, lStep), wantRetries)

	mf := fams["flux_step_duration_seconds"]
	if mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("flux_step_duration_seconds: %v, want a histogram", mf)
	}
	gotHist := make(map[string]float64)
	for _, m := range mf.GetMetric() {
		k := key(t, mf.GetName(), m, []string{lWorkflow, lStep, lOutcome})
		h := m.GetHistogram()
		gotHist[k] = float64(h.GetSampleCount())
		if h.GetSampleSum() < 0 || math.IsNaN(h.GetSampleSum()) {
			t.Errorf("%s: sum %v", k, h.GetSampleSum())
		}
		// Buckets are cumulative and end at the count; the parser turns
		// le="+Inf" into the count, so check the finite ones stay below.
		var prev uint64
		for _, b := range h.GetBucket() {
			if c := b.GetCumulativeCount(); c < prev || c > h.GetSampleCount() {
				t.Errorf("%s: bucket le=%v has %d after %d, count %d", k, b.GetUpperBound(), c, prev, h.GetSampleCount())
			}
			prev = b.GetCumulativeCount()
		}
		if len(h.GetBucket()) < 10 {
			t.Errorf("%s: %d buckets, want the package's boundaries", k, len(h.GetBucket()))
		}
	}
	// The cancelled attempt is recorded as interrupted; the attempt stopped
	// by the lost lease ends no span and records no duration (its run may
	// go on elsewhere).
	equal(t, "flux_step_duration_seconds counts", gotHist, wantHist)

	// Pending runs are counted at each scrape: cancel one, and a workflow
	// whose queue empties reports 0 rather than vanishing.
	ctx := context.Background()
	if err := r.queued.Cancel(ctx, r.pending[0]); err != nil {
		t.Fatal(err)
	}
	equal(t, "flux_runs_pending after a cancel", values(t, scrape(t, r.prom), "flux_runs_pending", dto.MetricType_GAUGE, lWorkflow),
		map[string]float64{"queued": 2})
	for _, id := range r.pending[1:] {
		if err := r.queued.Cancel(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	equal(t, "flux_runs_pending with none left", values(t, scrape(t, r.prom), "flux_runs_pending", dto.MetricType_GAUGE, lWorkflow),
		map[string]float64{"queued": 0})
}

func TestPrometheusRefusesAMeterProvider(t *testing.T) {
	t.Parallel()
	if _, err := fluxotel.NewPrometheus(fluxotel.WithMeterProvider(noop.NewMeterProvider())); err == nil {
		t.Error("NewPrometheus(WithMeterProvider) succeeded")
	}
	p, err := fluxotel.NewPrometheus()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ObservePending(nil); err == nil {
		t.Error("ObservePending(nil) succeeded")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.ObservePending(flux.NewMemoryStorage()); err == nil {
		t.Error("ObservePending after Close succeeded")
	}
	if n := len(scrape(t, p)); n != 0 {
		t.Errorf("a closed Prometheus serves %d families", n)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
