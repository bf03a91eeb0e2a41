package fluxotel_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/fluxotel"
)

type orderIn struct {
	Gift    bool
	Decline bool
}

type orderData struct{ Loaded, Charged bool }

// orderFlow retries "flaky" twice, skips "gift" unless asked for, and fails
// "charge" (after one retry) when the input says Decline.
func orderFlow() *flux.Workflow[orderIn, orderData] {
	type C = flux.Ctx[orderIn, orderData]
	return flux.New[orderIn, orderData]("orders").
		Step("load", func(c *C) error { c.Data.Loaded = true; return nil }).
		Step("flaky", func(c *C) error {
			if c.Attempt() < 3 {
				return fmt.Errorf("flaky: attempt %d", c.Attempt())
			}
			return nil
		}).
		Step("gift", func(c *C) error { return nil }, flux.When(func(c *C) bool { return c.Input.Gift })).
		Commit("charge", func(c *C) error {
			if c.Input.Decline {
				return errors.New("card declined")
			}
			c.Data.Charged = true
			return nil
		}, flux.Retries(1))
}

// outcomes derives from a run's recorded steps what each attempt's outcome
// must be: step name → outcome → count.
func outcomes(res *flux.Result[orderData]) map[string]map[string]int {
	out := make(map[string]map[string]int)
	for _, s := range res.Steps {
		m := make(map[string]int)
		out[s.Name] = m
		for i, a := range s.Attempts {
			switch {
			case a.Error == "":
				m[fluxotel.OutcomeCompleted]++
			case i == len(s.Attempts)-1 && s.Status == flux.StatusFailed:
				m[fluxotel.OutcomeError]++
			default:
				m[fluxotel.OutcomeRetry]++
			}
		}
	}
	return out
}

func TestRunsAndStepsBecomeSpansAndMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := engine(t, flux.Config{Trace: b.inst})
	w := orderFlow()
	ctx := context.Background()

	ok, err := flux.Execute(ctx, e, w, orderIn{Gift: true})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := flux.Execute(ctx, e, w, orderIn{Decline: true})
	var serr *flux.StepError
	if !errors.As(err, &serr) || serr.Step != "charge" {
		t.Fatalf("Execute(Decline) = %v, want a StepError of charge", err)
	}

	spans := b.spans.GetSpans()
	want := map[string]map[string]map[string]int{ok.ID: outcomes(ok), bad.ID: outcomes(bad)}
	total := 0
	for _, res := range []*flux.Result[orderData]{ok, bad} {
		run := runSpan(t, spans, res.ID)
		if run.Name != "flux.run orders" {
			t.Errorf("run span name %q, want %q", run.Name, "flux.run orders")
		}
		if got := attrString(run, fluxotel.AttrWorkflow); got != "orders" {
			t.Errorf("run %s: workflow attribute %q", res.ID, got)
		}
		if got := attrString(run, fluxotel.AttrRunStatus); got != string(res.Status) {
			t.Errorf("run %s: status attribute %q, want %q", res.ID, got, res.Status)
		}
		failed := res.Status == flux.StatusFailed
		if (run.Status.Code == codes.Error) != failed || hasException(run) != failed {
			t.Errorf("run %s (%s): span status %v, exception recorded %v", res.ID, res.Status, run.Status, hasException(run))
		}
		if failed && !strings.Contains(run.Status.Description, "card declined") {
			t.Errorf("run %s: status description %q does not name the error", res.ID, run.Status.Description)
		}

		kids := children(spans, run)
		total += 1 + len(kids)
		got := make(map[string]map[string]int)
		attempts := make(map[string][]int)
		for _, k := range kids {
			step := attrString(k, fluxotel.AttrStep)
			if k.Name != "flux.step "+step {
				t.Errorf("child span %q has step attribute %q", k.Name, step)
			}
			if k.StartTime.Before(run.StartTime) || k.EndTime.After(run.EndTime) {
				t.Errorf("%s [%v, %v] is outside its run [%v, %v]", k.Name, k.StartTime, k.EndTime, run.StartTime, run.EndTime)
			}
			idx := attrInt(k, fluxotel.AttrIndex)
			if res.Steps[idx].Name != step {
				t.Errorf("%s: index %d is %q", k.Name, idx, res.Steps[idx].Name)
			}
			if kind := attrString(k, fluxotel.AttrKind); kind != string(res.Steps[idx].Kind) {
				t.Errorf("%s: kind %q, want %q", k.Name, kind, res.Steps[idx].Kind)
			}
			if v, _ := attr(k.Attributes, fluxotel.AttrSkipped); v.AsBool() {
				if res.Steps[idx].Status != flux.StatusSkipped {
					t.Errorf("%s marked skipped, but the node is %s", k.Name, res.Steps[idx].Status)
				}
				got[step] = map[string]int{}
				continue
			}
			outcome := attrString(k, fluxotel.AttrOutcome)
			if got[step] == nil {
				got[step] = make(map[string]int)
			}
			got[step][outcome]++
			attempts[step] = append(attempts[step], attrInt(k, fluxotel.AttrAttempt))
			isErr := outcome != fluxotel.OutcomeCompleted
			if (k.Status.Code == codes.Error) != isErr || hasException(k) != isErr {
				t.Errorf("%s attempt %d (%s): status %v, exception %v", k.Name, attrInt(k, fluxotel.AttrAttempt), outcome, k.Status, hasException(k))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want[res.ID]) {
			t.Errorf("run %s: attempt spans by step and outcome\n got %v\nwant %v", res.ID, got, want[res.ID])
		}
		for step, as := range attempts {
			for i, a := range as {
				if a != i+1 {
					t.Errorf("run %s step %s: attempts %v, want 1..%d in order", res.ID, step, as, len(as))
					break
				}
			}
		}
	}
	if len(spans) != total {
		t.Errorf("%d spans exported, %d belong to the runs", len(spans), total)
	}
	if want[ok.ID]["gift"][fluxotel.OutcomeCompleted] != 1 || len(want[bad.ID]["gift"]) != 0 ||
		want[bad.ID]["charge"][fluxotel.OutcomeError] != 1 || want[ok.ID]["flaky"][fluxotel.OutcomeRetry] != 2 {
		t.Fatalf("the workflow did not retry, skip and fail as the test needs: %v", want)
	}

	rm := b.metrics(t)
	wf := fluxotel.AttrWorkflow.String("orders")
	for name, n := range map[string]int64{"flux.runs.started": 2, "flux.runs.completed": 1, "flux.runs.failed": 1, "flux.runs.cancelled": 0} {
		if got := counter(t, rm, name, wf); got != n {
			t.Errorf("%s = %d, want %d", name, got, n)
		}
	}
	wantHist := make(map[[2]string]uint64)
	wantRetries := make(map[string]int64)
	for _, byStep := range want {
		for step, m := range byStep {
			for outcome, n := range m {
				wantHist[[2]string{step, outcome}] += uint64(n)
				if outcome == fluxotel.OutcomeRetry {
					wantRetries[step] += int64(n)
				}
			}
		}
	}
	gotHist := make(map[[2]string]uint64)
	for _, dp := range histogram(t, rm, "flux.step.duration") {
		v, _ := dp.Attributes.Value(fluxotel.AttrWorkflow)
		if v.AsString() != "orders" {
			t.Errorf("step duration for workflow %q", v.AsString())
		}
		step, _ := dp.Attributes.Value(fluxotel.AttrStep)
		outcome, _ := dp.Attributes.Value(fluxotel.AttrOutcome)
		gotHist[[2]string{step.AsString(), outcome.AsString()}] += dp.Count
		if dp.Sum < 0 {
			t.Errorf("negative duration sum %v", dp.Sum)
		}
	}
	if fmt.Sprint(gotHist) != fmt.Sprint(wantHist) {
		t.Errorf("flux.step.duration counts\n got %v\nwant %v", gotHist, wantHist)
	}
	for _, step := range []string{"load", "flaky", "gift", "charge"} {
		if got := counter(t, rm, "flux.step.retries", wf, fluxotel.AttrStep.String(step)); got != wantRetries[step] {
			t.Errorf("flux.step.retries{%s} = %d, want %d", step, got, wantRetries[step])
		}
	}
}

func TestConcurrentRunsKeepTheirOwnSpans(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := engine(t, flux.Config{Trace: b.inst})
	w := orderFlow()
	const runs = 24
	results := make([]*flux.Result[orderData], runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			res, _ := flux.Execute(context.Background(), e, w, orderIn{Gift: i%2 == 0, Decline: i%3 == 0})
			results[i] = res
		})
	}
	wg.Wait()

	spans := b.spans.GetSpans()
	total := 0
	for _, res := range results {
		if res == nil {
			t.Fatal("a run was not created")
		}
		run := runSpan(t, spans, res.ID)
		kids := children(spans, run)
		want := 0
		for _, s := range res.Steps {
			want += max(len(s.Attempts), 1) // a skipped node has one span
		}
		if len(kids) != want {
			t.Errorf("run %s: %d child spans %v, want %d", res.ID, len(kids), names(kids), want)
		}
		for _, k := range kids {
			if got := attrString(k, fluxotel.AttrRunID); got != res.ID {
				t.Errorf("run %s has a child of run %s", res.ID, got)
			}
		}
		total += 1 + len(kids)
	}
	if len(spans) != total {
		t.Errorf("%d spans exported, %d belong to the runs", len(spans), total)
	}
	// Every run ended: Close has nothing left to end.
	if err := b.inst.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(b.spans.GetSpans()); n != total {
		t.Errorf("Close ended %d spans of finished runs", n-total)
	}
	if got := counter(t, b.metrics(t), "flux.runs.started", fluxotel.AttrWorkflow.String("orders")); got != runs {
		t.Errorf("flux.runs.started = %d, want %d", got, runs)
	}
}

// blockingFlow's "wait" step signals started and blocks until its context
// ends, unless release is closed.
func blockingFlow(started chan<- string, release <-chan struct{}) *flux.Workflow[struct{}, struct{}] {
	type C = flux.Ctx[struct{}, struct{}]
	return flux.New[struct{}, struct{}]("blocking").
		Step("first", func(c *C) error { return nil }).
		Step("wait", func(c *C) error {
			select {
			case <-release:
				return nil
			default:
			}
			started <- c.RunID()
			<-c.Done()
			return context.Cause(c)
		})
}

func TestCancelledRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := engine(t, flux.Config{Trace: b.inst})
	started := make(chan string, 1)
	w := blockingFlow(started, nil)
	done := make(chan error, 1)
	go func() {
		_, err := flux.Execute(context.Background(), e, w, struct{}{}, flux.RunID("cancel-me"))
		done <- err
	}()
	id := <-started
	if err := e.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, flux.ErrCancelled) {
		t.Fatalf("Execute = %v, want ErrCancelled", err)
	}

	spans := b.spans.GetSpans()
	run := runSpan(t, spans, id)
	if got := attrString(run, fluxotel.AttrRunStatus); got != string(flux.StatusCancelled) {
		t.Errorf("run status attribute %q, want cancelled", got)
	}
	if run.Status.Code == codes.Error {
		t.Errorf("a cancelled run has status %v; cancelling is not an error", run.Status)
	}
	var wait []tracetest.SpanStub
	for _, k := range children(spans, run) {
		if k.Name == "flux.step wait" {
			wait = append(wait, k)
		}
	}
	if len(wait) != 1 || attrString(wait[0], fluxotel.AttrOutcome) != fluxotel.OutcomeInterrupted {
		t.Fatalf("wait spans %v, want one with outcome interrupted", wait)
	}
	if wait[0].EndTime.After(run.EndTime) {
		t.Errorf("the interrupted attempt ends after its run")
	}
	rm := b.metrics(t)
	wf := fluxotel.AttrWorkflow.String("blocking")
	if got := counter(t, rm, "flux.runs.cancelled", wf); got != 1 {
		t.Errorf("flux.runs.cancelled = %d, want 1", got)
	}
	if got := counter(t, rm, "flux.runs.failed", wf); got != 0 {
		t.Errorf("flux.runs.failed = %d, want 0", got)
	}
	var interrupted uint64
	for _, dp := range histogram(t, rm, "flux.step.duration") {
		if v, _ := dp.Attributes.Value(fluxotel.AttrOutcome); v.AsString() == fluxotel.OutcomeInterrupted {
			interrupted += dp.Count
		}
	}
	if interrupted != 1 {
		t.Errorf("%d interrupted attempts recorded, want 1", interrupted)
	}
}

// An interrupted run sends no end event: its spans end when it starts
// again here, or at Close.
func TestInterruptedRunEndsOnRestartAndClose(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := engine(t, flux.Config{Trace: b.inst})
	started := make(chan string, 1)
	release := make(chan struct{})
	w := blockingFlow(started, release)

	interrupt := func(id string) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := flux.Execute(ctx, e, w, struct{}{}, flux.RunID(id))
			done <- err
		}()
		<-started
		cancel()
		if err := <-done; err == nil || errors.Is(err, flux.ErrCancelled) {
			t.Fatalf("Execute after the caller's context ended = %v, want an interruption", err)
		}
	}
	interrupt("again")
	if n := len(b.spans.GetSpans()); n != 1 { // only "first" ended
		t.Fatalf("%d spans ended while the run is interrupted, want 1", n)
	}
	close(release)
	if _, err := flux.Resume(context.Background(), e, w, "again"); err != nil {
		t.Fatal(err)
	}

	spans := b.spans.GetSpans()
	var runs []tracetest.SpanStub
	for _, s := range spans {
		if !s.Parent.IsValid() {
			runs = append(runs, s)
		}
	}
	if len(runs) != 2 {
		t.Fatalf("%d run spans for a run started twice, want 2", len(runs))
	}
	first, second := runs[0], runs[1]
	if attrString(first, fluxotel.AttrUnfinished) != "restarted" || attrString(second, fluxotel.AttrUnfinished) != "" {
		t.Errorf("unfinished attributes %q, %q; want restarted, none", attrString(first, fluxotel.AttrUnfinished), attrString(second, fluxotel.AttrUnfinished))
	}
	if attrString(second, fluxotel.AttrRunStatus) != string(flux.StatusCompleted) {
		t.Errorf("resumed run status %q", attrString(second, fluxotel.AttrRunStatus))
	}
	kids := children(spans, first)
	if len(kids) != 2 || attrString(kids[1], fluxotel.AttrUnfinished) != "restarted" {
		t.Errorf("spans of the interrupted start: %v", kids)
	}
	if kids := children(spans, second); len(kids) != 1 || kids[0].Name != "flux.step wait" {
		t.Errorf("the resumed start ran %v, want only wait", names(kids))
	}

	// A run still interrupted at Close is ended by Close; later events are
	// ignored.
	w2 := blockingFlow(started, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = flux.Execute(ctx, e, w2, struct{}{}, flux.RunID("left"))
	}()
	<-started
	cancel()
	<-done
	before := len(b.spans.GetSpans())
	if err := b.inst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.inst.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	spans = b.spans.GetSpans()
	if len(spans) != before+2 {
		t.Fatalf("Close ended %d spans, want the run and its attempt", len(spans)-before)
	}
	for _, s := range spans[before:] {
		if attrString(s, fluxotel.AttrUnfinished) != "closed" {
			t.Errorf("%s ended by Close without flux.unfinished=closed", s.Name)
		}
	}
	if _, err := flux.Execute(context.Background(), e, orderFlow(), orderIn{}); err != nil {
		t.Fatal(err)
	}
	if n := len(b.spans.GetSpans()); n != len(spans) {
		t.Errorf("%d spans made after Close", n-len(spans))
	}
}

// An Instrumentation that sees a run only from the middle (a run resumed in
// another process, a trace replayed from a file) starts its span lazily.
func TestRunWithoutStartEvent(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	e := engine(t, flux.Config{Trace: rec})
	res, _ := flux.Execute(context.Background(), e, orderFlow(), orderIn{Decline: true})
	events := rec.all()
	if len(events) < 3 || events[0].Type != flux.EventWorkflowStart {
		t.Fatalf("recorded events %v", events)
	}

	b := setup(t)
	for _, ev := range events[2:] { // no workflow:start, no first step:start
		b.inst.Emit(ev)
	}
	spans := b.spans.GetSpans()
	run := runSpan(t, spans, res.ID)
	if run.StartTime.After(events[2].Time) {
		t.Errorf("lazy run span starts at %v, after the first event it saw (%v)", run.StartTime, events[2].Time)
	}
	if run.Status.Code != codes.Error {
		t.Errorf("run span status %v, want Error", run.Status)
	}
	kids := children(spans, run)
	if len(kids)+1 != len(spans) {
		t.Errorf("%d spans, %d of them children of the run", len(spans), len(kids))
	}
	// events[2] is the end of "load", whose start was not seen: its span
	// goes back by the attempt's duration.
	load := kids[0]
	if load.Name != "flux.step load" || !load.StartTime.Equal(events[2].Time.Add(-events[2].Duration)) {
		t.Errorf("first child %s starts at %v, want %v", load.Name, load.StartTime, events[2].Time.Add(-events[2].Duration))
	}
}

// A When predicate that panics fails its node with a step:error that no
// step:start preceded.
func TestStepErrorWithoutStart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := engine(t, flux.Config{Trace: b.inst})
	type C = flux.Ctx[int, int]
	w := flux.New[int, int]("predicate").
		Step("a", func(c *C) error { return nil }).
		Step("b", func(c *C) error { return nil }, flux.When(func(c *C) bool { panic("bad predicate") }))
	res, err := flux.Execute(context.Background(), e, w, 1)
	if err == nil {
		t.Fatal("a panicking predicate did not fail the run")
	}
	spans := b.spans.GetSpans()
	run := runSpan(t, spans, res.ID)
	kids := children(spans, run)
	if len(kids) != 2 || kids[1].Name != "flux.step b" || kids[1].Status.Code != codes.Error ||
		attrString(kids[1], fluxotel.AttrOutcome) != fluxotel.OutcomeError {
		t.Fatalf("children %v; want a, then b failed", names(kids))
	}
	if len(spans) != 3 {
		t.Errorf("%d spans, want 3", len(spans))
	}
}

func TestMaxOpenRunsEvictsLeastRecentlyActive(t *testing.T) {
	t.Parallel()
	b := setup(t, fluxotel.WithMaxOpenRuns(2))
	t0 := time.Unix(1_700_000_000, 0)
	start := func(id string, at int) {
		b.inst.Emit(flux.TraceEvent{Type: flux.EventWorkflowStart, Time: t0.Add(time.Duration(at) * time.Second), RunID: id, Workflow: "w", Index: -1})
	}
	ended := func() map[string]string {
		m := make(map[string]string)
		for _, s := range b.spans.GetSpans() {
			m[attrString(s, fluxotel.AttrRunID)] = attrString(s, fluxotel.AttrUnfinished)
		}
		return m
	}
	start("r1", 1)
	start("r2", 2)
	start("r3", 3) // evicts r1
	b.inst.Emit(flux.TraceEvent{Type: flux.EventStepStart, Time: t0.Add(4 * time.Second), RunID: "r2", Workflow: "w", Step: "s", Attempt: 1})
	start("r4", 5) // evicts r3: r2 was active since
	if got := ended(); len(got) != 2 || got["r1"] != "evicted" || got["r3"] != "evicted" {
		t.Fatalf("ended runs %v, want r1 and r3 evicted", got)
	}
	for _, s := range b.spans.GetSpans() {
		if id := attrString(s, fluxotel.AttrRunID); id == "r1" && !s.EndTime.Equal(t0.Add(time.Second)) {
			t.Errorf("evicted r1 ends at %v, want its last event's time", s.EndTime)
		}
	}
	if err := b.inst.Close(); err != nil {
		t.Fatal(err)
	}
	got := ended()
	if len(b.spans.GetSpans()) != 5 || got["r2"] != "closed" || got["r4"] != "closed" {
		t.Errorf("after Close: %v (%d spans), want r2 with its attempt and r4 closed", got, len(b.spans.GetSpans()))
	}
}

// Events with odd values record something sensible and never panic.
func TestOddEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.inst.Emit(flux.TraceEvent{})                                                               // no type
	b.inst.Emit(flux.TraceEvent{Type: "step:teleport", RunID: "x"})                              // unknown type
	b.inst.Emit(flux.TraceEvent{Type: flux.EventStepComplete, Duration: -time.Second, Index: 3}) // no run ID, no time
	b.inst.Emit(flux.TraceEvent{Type: flux.EventWorkflowError})
	spans := b.spans.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans from one lazily started run with one step, want 2: %v", len(spans), names(spans))
	}
	for _, s := range spans {
		if s.EndTime.Before(s.StartTime) {
			t.Errorf("%s ends before it starts", s.Name)
		}
	}
	if spans[1].Status.Code != codes.Error || spans[1].Status.Description != string(flux.EventWorkflowError) {
		t.Errorf("run span status %v, want Error naming the event", spans[1].Status)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]fluxotel.Option{
		"nil tracer provider": fluxotel.WithTracerProvider(nil),
		"nil meter provider":  fluxotel.WithMeterProvider(nil),
		"zero max open runs":  fluxotel.WithMaxOpenRuns(0),
	} {
		if _, err := fluxotel.New(opt); err == nil || !strings.HasPrefix(err.Error(), "fluxotel: ") {
			t.Errorf("%s: New = %v, want an error", name, err)
		}
	}
	inst, err := fluxotel.New(nil) // the global providers, no-ops here
	if err != nil {
		t.Fatal(err)
	}
	e := engine(t, flux.Config{Trace: inst})
	if _, err := flux.Execute(context.Background(), e, orderFlow(), orderIn{}); err != nil {
		t.Fatal(err)
	}
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
}

type countSink struct {
	name string
	log  *[]string
}

func (c countSink) Emit(ev flux.TraceEvent) { *c.log = append(*c.log, c.name+":"+string(ev.Type)) }

func TestTee(t *testing.T) {
	t.Parallel()
	var log []string
	a, b, c := countSink{"a", &log}, countSink{"b", &log}, countSink{"c", &log}
	if got := fluxotel.Tee(nil, a, nil); got != flux.TraceSink(a) {
		t.Errorf("Tee of one sink = %v, want the sink itself", got)
	}
	fluxotel.Tee().Emit(flux.TraceEvent{Type: flux.EventStepStart}) // drops
	fluxotel.Tee(a, fluxotel.Tee(b, c)).Emit(flux.TraceEvent{Type: flux.EventStepStart})
	if want := []string{"a:step:start", "b:step:start", "c:step:start"}; fmt.Sprint(log) != fmt.Sprint(want) {
		t.Errorf("Tee delivered %v, want %v", log, want)
	}

	// With an engine: the recorder and the Instrumentation see the same run.
	bu := setup(t)
	rec := &recorder{}
	e := engine(t, flux.Config{Trace: fluxotel.Tee(rec, bu.inst)})
	res, err := flux.Execute(context.Background(), e, orderFlow(), orderIn{})
	if err != nil {
		t.Fatal(err)
	}
	spans := bu.spans.GetSpans()
	runSpan(t, spans, res.ID)
	starts := 0
	for _, ev := range rec.all() {
		if ev.Type == flux.EventStepStart || ev.Type == flux.EventStepSkipped {
			starts++
		}
	}
	if starts+1 != len(spans) {
		t.Errorf("%d step starts and skips recorded, %d spans", starts, len(spans))
	}
}

// Runs evicted while they execute go on with new spans; after Close every
// span that was started has ended.
func TestEvictionUnderConcurrency(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	inst, err := fluxotel.New(fluxotel.WithTracerProvider(tp), fluxotel.WithMaxOpenRuns(2))
	if err != nil {
		t.Fatal(err)
	}
	e := engine(t, flux.Config{Trace: inst})
	const runs = 16
	var arrived sync.WaitGroup
	arrived.Add(runs)
	allHere := make(chan struct{})
	go func() { arrived.Wait(); close(allHere) }()
	type C = flux.Ctx[int, int]
	w := flux.New[int, int]("meet").
		Step("meet", func(c *C) error { arrived.Done(); <-allHere; return nil }, flux.Retries(0)).
		Step("after", func(c *C) error { return nil })
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			if _, err := flux.Execute(context.Background(), e, w, i); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
	started, ended := len(rec.Started()), len(rec.Ended())
	if started != ended {
		t.Fatalf("%d spans started, %d ended", started, ended)
	}
	evicted := 0
	for _, s := range rec.Ended() {
		switch v := attrString(tracetest.SpanStubFromReadOnlySpan(s), fluxotel.AttrUnfinished); v {
		case "evicted":
			if !s.Parent().IsValid() {
				evicted++
			}
		case "":
		default:
			t.Errorf("span %s ended as %q", s.Name(), v)
		}
	}
	// All runs were open at once, at most 2 are kept.
	if evicted < runs-2 {
		t.Errorf("%d run spans evicted, want at least %d", evicted, runs-2)
	}
}

// TestCorruptRunsCounted: an Instrumentation, alone or in a Tee, is a
// flux.CorruptReporter whose reports count in flux.runs.corrupt.
func TestCorruptRunsCounted(t *testing.T) {
	b := setup(t)
	for _, s := range []flux.TraceSink{b.inst, fluxotel.Tee(b.inst, discard{})} {
		r, ok := s.(flux.CorruptReporter)
		if !ok {
			t.Fatalf("%T is not a flux.CorruptReporter", s)
		}
		r.RunCorrupt(flux.CorruptRun{RunID: "bad", Err: flux.ErrCorrupt})
	}
	if got := counter(t, b.metrics(t), "flux.runs.corrupt"); got != 2 {
		t.Fatalf("flux.runs.corrupt = %d, want 2", got)
	}
}

type discard struct{}

func (discard) Emit(flux.TraceEvent) {}

// A run that waits ends its span at the wait, marked waiting, so the span
// is exported now rather than at the wake (maybe days later); the wake
// starts a new run span that ends with the run.
func TestWaitingRunEndsItsSpan(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := engine(t, flux.Config{Trace: b.inst})
	flow := flux.New[struct{}, struct{ OK bool }]("approval").
		Step("ask", func(*flux.Ctx[struct{}, struct{ OK bool }]) error { return nil }).
		WaitSignal("wait", "ok", time.Hour, func(c *flux.Ctx[struct{}, struct{ OK bool }], r flux.Received) error {
			c.Data.OK = !r.TimedOut
			return nil
		}).
		Step("done", func(*flux.Ctx[struct{}, struct{ OK bool }]) error { return nil })
	ctx := context.Background()
	res, err := flux.Execute(ctx, e, flow, struct{}{})
	if !errors.Is(err, flux.ErrWaiting) {
		t.Fatalf("Execute: %v, want ErrWaiting", err)
	}
	waiting := runSpan(t, b.spans.GetSpans(), res.ID)
	if got := attrString(waiting, fluxotel.AttrRunStatus); got != "waiting" {
		t.Fatalf("run span of a waiting run: status %q, want waiting", got)
	}
	if got := attrString(waiting, fluxotel.AttrUnfinished); got != "" {
		t.Fatalf("run span of a waiting run marked unfinished %q", got)
	}
	if len(waiting.Events) == 0 || waiting.Events[len(waiting.Events)-1].Name != "waiting" {
		t.Fatalf("run span events %v, want a last one named waiting", waiting.Events)
	}
	if kids := names(children(b.spans.GetSpans(), waiting)); len(kids) != 1 || kids[0] != "flux.step ask" {
		t.Fatalf("children of the waiting span: %v, want the attempt of ask", kids)
	}

	if err := e.Signal(ctx, res.ID, "ok", nil); err != nil {
		t.Fatal(err)
	}
	done, err := flux.Wait(ctx, e, flow, res.ID)
	if err != nil || !done.Data.OK {
		t.Fatalf("Wait: %+v, %v", done, err)
	}
	var statuses []string
	for _, s := range b.spans.GetSpans() {
		if !s.Parent.IsValid() && attrString(s, fluxotel.AttrRunID) == res.ID {
			statuses = append(statuses, attrString(s, fluxotel.AttrRunStatus))
		}
	}
	if len(statuses) != 2 || statuses[0] != "waiting" || statuses[1] != "completed" {
		t.Fatalf("run spans of the run by status: %v, want [waiting completed]", statuses)
	}
}
